"""Dense and convolutional layers, and their kernel rules.

NTK parameterisation (the default): weights ~ N(0, 1), the forward pass
multiplies by ``W_std / sqrt(fan_in)`` and adds ``b_std * b``. Then
``nngp' = W_std^2 nngp + b_std^2`` and ``ntk' = nngp' + W_std^2 ntk``.
Standard parameterisation folds ``W_std / sqrt(fan_in)`` into the weights, so
the NTK picks up the finite fan-in (neural-tangents' convention, with the width
multipliers ``s``).

A convolution with filter ``F`` averages the full spatial covariance along its
diagonals: ``Sigma'_{a,b} = W_std^2 / |F| sum_{t in F} Sigma_{a+t, b+t} + b_std^2``,
separately along each spatial axis; zero padding contributes zeros.
:class:`ConvSetup` holds what every convolution shares (arguments, filter spec,
scaling, output axis order); ``conv_transpose.py`` and ``conv_local.py`` build on it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax

from infattn.kernel import Kernel
from infattn.stax import layout, taps, windows
from infattn.stax.diagonal import Diagonal
from infattn.stax.layer import make_layer
from infattn.validation import check_axes, check_choice, check_std, check_width

_PARAMETERIZATIONS = ("ntk", "standard")


def affine(
    mat: jax.Array | None, W_std: float, b_std: float | None, pattern: Any = 1.0
) -> jax.Array | None:
    """``W_std^2 * mat + b_std^2 * pattern`` (``None`` passes through).

    ``pattern``: where the bias covariance is (``1.0``: everywhere; an untied bias
    puts an indicator of the spatial diagonal here).
    """
    if mat is None:
        return None
    out = W_std**2 * mat
    return out if b_std is None else out + b_std**2 * pattern


def linear_kernel(
    k: Kernel,
    W_std: float,
    b_std: float | None,
    parameterization: str,
    fan_in: float,
    transform=lambda m, batch_ndim: m,
    bias_pattern: Callable[[jax.Array, int], Any] | None = None,
) -> Kernel:
    """Shared rule of Dense and the convolutions: ``transform`` is the spatial part.

    ``bias_pattern(m, batch_ndim)``: where the bias covariance goes in the
    transformed ``m`` (default everywhere, a tied bias).
    """

    def lin(m, batch_ndim):
        return None if m is None else transform(m, batch_ndim)

    def where(m, batch_ndim):
        return 1.0 if bias_pattern is None or m is None else bias_pattern(m, batch_ndim)

    nngp = lin(k.nngp, 2)
    ntk = lin(k.ntk, 2)
    cov1, cov2 = lin(k.cov1, 1), lin(k.cov2, 1)
    cov1 = affine(cov1, W_std, b_std, where(cov1, 1))
    cov2 = affine(cov2, W_std, b_std, where(cov2, 1))
    if parameterization == "ntk":
        nngp = affine(nngp, W_std, b_std, where(nngp, 2))
        if ntk is not None:
            ntk = nngp + W_std**2 * ntk
    else:
        if ntk is not None:
            shift = 0.0 if b_std is None else where(ntk, 2)
            ntk = fan_in * nngp + W_std**2 * ntk + shift
        nngp = affine(nngp, W_std, b_std, where(nngp, 2))
    return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=True)


def scale_output(
    y: jax.Array,
    b: jax.Array | None,
    fan_in: float,
    W_std: float,
    b_std: float | None,
    parameterization: str,
    s: tuple[int, int],
) -> jax.Array:
    """A linear layer's output ``y`` (unscaled weights) scaled, plus the bias ``b``."""
    if parameterization == "ntk":
        y = y * (W_std / fan_in**0.5)
        return y if b is None else y + b_std * b
    y = y / s[0] ** 0.5
    return y if b is None else y + b


def standard_params(W, b, fan_in, W_std, b_std, parameterization, s):
    """Standard parameterisation folds ``W_std / sqrt(fan_in / s[0])`` and ``b_std`` in."""
    if parameterization != "standard":
        return W, b
    return W * W_std / (fan_in / s[0]) ** 0.5, None if b is None else b * b_std


def Dense(
    out_dim: int,
    W_std: float = 1.0,
    b_std: float | None = None,
    batch_axis: int = 0,
    channel_axis: int = -1,
    parameterization: str = "ntk",
    s: tuple[int, int] = (1, 1),
):
    """Fully connected layer acting on the channel axis.

    Input ``(N, *spatial, C)`` -> output ``(N, *spatial, out_dim)`` (or the same
    axes at ``batch_axis``, ``channel_axis``); the kernel keeps its layout
    ``(N1, N2, *S)``.

    Example:
        >>> import numpy as np
        >>> _, _, kernel_fn = Dense(8, W_std=2.0, b_std=0.5)
        >>> float(kernel_fn(np.ones((1, 3)), get="nngp")[0, 0])  # 2^2 * 1 + 0.5^2
        4.25
    """
    check_width(out_dim, "out_dim")
    check_std(W_std, "W_std")
    check_std(b_std, "b_std", optional=True)
    parameterization = check_choice(
        parameterization.lower(), _PARAMETERIZATIONS, "parameterization"
    )
    check_axes("Dense", batch_axis=batch_axis, channel_axis=channel_axis)
    width = out_dim * (s[1] if parameterization == "standard" else 1)

    def init(rng, input_shape):
        n_in = input_shape[-1]
        k1, k2 = jax.random.split(rng)
        W = jax.random.normal(k1, (n_in, width))
        b = (
            None
            if b_std is None
            else jax.random.normal(k2, (1,) * (len(input_shape) - 1) + (width,))
        )
        params = standard_params(W, b, n_in, W_std, b_std, parameterization, s)
        return (*input_shape[:-1], width), params

    def apply(params, x, mask, **kwargs):
        W, b = params
        check_channels(x, W.shape[0], "Dense")
        y = taps.tokenwise(x, W)
        b = taps.per_example(b, x.shape[0])
        return scale_output(y, b, x.shape[-1], W_std, b_std, parameterization, s), mask

    def kernel(k):
        k = linear_kernel(k, W_std, b_std, parameterization, k.shape1[-1] / s[0])
        return with_width(k, width).remask()

    return make_layer(
        init,
        apply,
        kernel,
        "Dense",
        boundary=layout.Boundary((batch_axis, channel_axis)),
        positionwise=True,
        diagonal=Diagonal(),
    )


@dataclasses.dataclass(frozen=True)
class ConvSetup:
    """The validated arguments of a convolution (Conv, ConvTranspose, ConvLocal).

    ``filter_shape``, ``strides``: in the filter spec's order (the user's);
    :attr:`filter_in`, :attr:`strides_in`: the same in the input's spatial order,
    that of the canonical layout the rules work in. Output spatial axes follow the
    output spec: :meth:`to_output` and :meth:`kernel_to_output` move them there.
    """

    name: str
    out_chan: int
    filter_shape: tuple[int, ...]
    strides: tuple[int, ...]
    padding: str
    W_std: float
    b_std: float | None
    spec: layout.ConvSpec
    parameterization: str
    s: tuple[int, int]

    @property
    def n_spatial(self) -> int:
        return len(self.filter_shape)

    @property
    def filter_in(self) -> tuple[int, ...]:
        return self.spec.to_input_order(self.filter_shape)

    @property
    def strides_in(self) -> tuple[int, ...]:
        return self.spec.to_input_order(self.strides)

    @property
    def width(self) -> int:
        """The number of output channels of the finite layer."""
        return self.out_chan * (self.s[1] if self.parameterization == "standard" else 1)

    def fan_in(self, n_in: int) -> int:
        return n_in * math.prod(self.filter_shape)

    def scale(self, y: jax.Array, b: jax.Array | None, n_in: int) -> jax.Array:
        """The output of the unscaled convolution ``y`` scaled, plus the bias."""
        p = (self.W_std, self.b_std, self.parameterization, self.s)
        return scale_output(y, b, self.fan_in(n_in), *p)

    def params(self, W: jax.Array, b: jax.Array | None, n_in: int):
        """Standard normal ``W``, ``b`` as the parameterisation stores them."""
        p = (self.W_std, self.b_std, self.parameterization, self.s)
        return standard_params(W, b, self.fan_in(n_in), *p)

    @property
    def _spatial_order(self) -> tuple[int, ...]:
        return (0, *(1 + i for i in self.spec.spatial_to_out), self.n_spatial + 1)

    def to_output(self, y: Any, mask: Any) -> tuple[Any, Any]:
        """Canonical output ``y`` ``(N, *spatial, C)`` and mask with the output spec's order."""
        order = self._spatial_order
        return layout.transpose(y, order), layout.transpose(mask, order[:-1])

    def output_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """A canonical output shape with the output spec's spatial order."""
        return layout.permute_shape(shape, self._spatial_order)

    def kernel_to_output(self, m: Any, batch_ndim: int, diagonal_spatial: bool = False) -> Any:
        """A kernel ``(*B, s1, s1', ...)`` with its spatial pairs in the output spec's order
        (``diagonal_spatial``: ``(*B, s1, s2, ...)``, one axis per spatial axis)."""
        order = self.spec.spatial_to_out
        if not diagonal_spatial:
            order = (*(2 * i + j for i in order for j in (0, 1)),)
        return layout.transpose(m, (*range(batch_ndim), *(batch_ndim + i for i in order)))

    def kernel(self, k: Kernel, transform, out_spatial, out_mask, bias_pattern=None) -> Kernel:
        """The rule: ``transform`` (input order), then the output order, masks, remask.

        ``out_spatial``: the output's spatial sizes in the input's order; ``out_mask``:
        a canonical mask ``(N, *spatial)`` -> the output's (input order). A spatially
        diagonal ``k`` (``k.diagonal_spatial``) keeps that layout: ``transform`` and
        ``bias_pattern`` then get ``(*B, s1, s2, ...)``.
        """

        def spatial(m, batch_ndim):
            return self.kernel_to_output(transform(m, batch_ndim), batch_ndim, k.diagonal_spatial)

        fan_in = self.fan_in(k.shape1[-1]) / self.s[0]
        p = (self.W_std, self.b_std, self.parameterization)
        k = linear_kernel(k, *p, fan_in, spatial, bias_pattern)
        new = layout.permute_shape(out_spatial, self.spec.spatial_to_out)

        def mask(m):
            return None if m is None else self.to_output(None, out_mask(m))[1]

        return k.replace(
            shape1=(k.shape1[0], *new, self.width),
            shape2=(k.shape2[0], *new, self.width),
            mask1=mask(k.mask1),
            mask2=mask(k.mask2),
        ).remask()

    def make(self, init, apply, kernel, diagonal: Diagonal | None = None, diagonal_kernels=False):
        """The public triple, on the layout of ``dimension_numbers``.

        ``diagonal``: neural-tangents' requirement (default: a shared-weight convolution's,
        whose output has non-zero off-diagonal entries). ``diagonal_kernels``: ``kernel``
        also takes spatially diagonal kernels (see :func:`make_layer`).
        """
        spec = self.spec
        boundary = layout.Boundary(
            (spec.lhs.index("N"), spec.lhs.index("C")),
            (spec.out.index("N"), spec.out.index("C")),
            self.n_spatial + 2,
        )
        diagonal = Diagonal() if diagonal is None else diagonal
        return make_layer(
            init,
            apply,
            kernel,
            self.name,
            boundary=boundary,
            diagonal=diagonal,
            diagonal_kernels=diagonal_kernels,
        )


def conv_setup(
    name: str,
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None,
    padding: str,
    W_std: float,
    b_std: float | None,
    dimension_numbers: tuple[str, str, str] | None,
    parameterization: str,
    s: tuple[int, int],
) -> ConvSetup:
    """Validate a convolution's arguments (neural-tangents' ``Conv`` signature).

    Example:
        >>> c = conv_setup("Conv", 4, (3, 2), None, "same", 1.0, None,
        ...                ("NHWC", "WHIO", "NHWC"), "ntk", (1, 1))
        >>> c.filter_in, c.strides, c.padding
        ((2, 3), (1, 1), 'SAME')
    """
    check_width(out_chan, "out_chan")
    check_std(W_std, "W_std")
    check_std(b_std, "b_std", optional=True)
    filter_shape, strides = windows.check_window(filter_shape, strides, "filter_shape")
    padding = windows.check_padding(padding)
    parameterization = check_choice(
        parameterization.lower(), _PARAMETERIZATIONS, "parameterization"
    )
    spec = layout.conv_spec(dimension_numbers, len(filter_shape))
    return ConvSetup(
        name, out_chan, filter_shape, strides, padding, W_std, b_std, spec, parameterization, s
    )


def init_filter(c: ConvSetup, rng: jax.Array, n_in: int, sizes: dict[str, int], bias_shape):
    """Standard normal weights and bias, as the parameterisation stores them.

    The weights in the filter spec's layout (``sizes``: of the spatial letters, and of
    ``I`` when it is not ``n_in``), the bias of ``bias_shape`` (``None`` without ``b_std``).
    """
    k1, k2 = jax.random.split(rng)
    sizes = {"I": n_in, "O": c.width, **sizes}
    W = jax.random.normal(k1, tuple(sizes[a] for a in c.spec.rhs))
    b = None if c.b_std is None else jax.random.normal(k2, bias_shape)
    return c.params(W, b, n_in)


def Conv(
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    W_std: float = 1.0,
    b_std: float | None = None,
    dimension_numbers: tuple[str, str, str] | None = None,
    parameterization: str = "ntk",
    s: tuple[int, int] = (1, 1),
):
    """Convolution over the spatial axes of ``(N, *spatial, C)`` inputs (1-D, 2-D, ...).

    ``padding``: ``'VALID'``, ``'SAME'`` (zero padding, XLA's convention) or
    ``'CIRCULAR'`` (periodic, see :mod:`infattn.stax.windows`).
    ``dimension_numbers``: ``(input, filter, output)`` axis letters as in
    ``jax.lax.conv_general_dilated``; ``filter_shape`` and ``strides`` follow the
    filter's spatial letters (see :mod:`infattn.stax.layout`). The filter is stored
    in the filter spec's layout, the output's spatial axes in the output spec's order.
    With ``diagonal_spatial=True`` the kernel's diagonal is convolved directly (a
    diagonal stays one: each output position averages its window's diagonal).

    Example:
        >>> import jax.numpy as jnp
        >>> _, _, kernel_fn = Conv(4, (3, 2), dimension_numbers=("NHWC", "WHIO", "NHWC"))
        >>> kernel_fn(jnp.ones((2, 5, 4, 3)), get="nngp").shape  # 5-2+1 high, 4-3+1 wide
        (2, 2, 4, 4, 2, 2)
    """
    c = conv_setup(
        "Conv",
        out_chan,
        filter_shape,
        strides,
        padding,
        W_std,
        b_std,
        dimension_numbers,
        parameterization,
        s,
    )
    n_sp = c.n_spatial
    win = windows.Windows(c.filter_in, c.strides_in, c.padding)

    def init(rng, input_shape):
        sizes = dict(zip(c.spec.filter_spatial, c.filter_shape, strict=True))
        params = init_filter(c, rng, input_shape[-1], sizes, (1,) * (n_sp + 1) + (c.width,))
        out_shape = (input_shape[0], *win.out_spatial(input_shape[1:-1]), c.width)
        return c.output_shape(out_shape), params

    def apply(params, x, mask, **kwargs):
        W, b = params
        n_in = x.shape[-1]
        check_channels(x, W.shape[c.spec.rhs.index("I")], "Conv")
        if c.padding == "CIRCULAR":
            x = win.pad(x, range(1, n_sp + 1))
            pads = [(0, 0)] * n_sp
        else:
            pads = c.spec.to_filter_order(win.pads(x.shape[1:-1]))
        y = taps.conv(x, W, c.strides, pads, c.spec.canonical)
        y = c.scale(y, taps.per_example(b, x.shape[0]), n_in)
        return c.to_output(y, None if mask is None else win.mask(mask))

    def kernel(k):
        out_spatial = win.out_spatial(k.spatial_shape)
        shared = functools.partial(win.shared, diagonal_spatial=k.diagonal_spatial)
        return c.kernel(k, shared, out_spatial, win.mask)

    return c.make(init, apply, kernel, diagonal_kernels=True)


def with_width(k: Kernel, width: int) -> Kernel:
    """``k`` for outputs with ``width`` channels (shapes only)."""
    return k.replace(shape1=(*k.shape1[:-1], width), shape2=(*k.shape2[:-1], width))


def check_channels(x: jax.Array, expected: int, layer: str) -> None:
    """Raise unless ``x`` has ``expected`` channels (the number ``init`` was given)."""
    if x.shape[-1] != expected:
        raise ValueError(
            f"inputs: {layer} was initialised for {expected} input channels, got inputs of "
            f"shape {tuple(x.shape)} with {x.shape[-1]} channels"
        )
