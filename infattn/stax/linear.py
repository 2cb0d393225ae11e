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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax

from infattn.kernel import Kernel
from infattn.stax import layout, taps, windows
from infattn.stax.layer import make_layer
from infattn.validation import check_axes, check_choice, check_std, check_width

_PARAMETERIZATIONS = ("ntk", "standard")


def affine(mat: jax.Array | None, W_std: float, b_std: float | None) -> jax.Array | None:
    """``W_std^2 * mat + b_std^2`` (``None`` passes through)."""
    if mat is None:
        return None
    out = W_std**2 * mat
    return out if b_std is None else out + b_std**2


def linear_kernel(
    k: Kernel,
    W_std: float,
    b_std: float | None,
    parameterization: str,
    fan_in: float,
    transform=lambda m, batch_ndim: m,
) -> Kernel:
    """Shared rule of Dense and Conv: ``transform`` is the spatial part (identity for Dense)."""

    def lin(m, batch_ndim):
        return None if m is None else transform(m, batch_ndim)

    nngp = lin(k.nngp, 2)
    ntk = lin(k.ntk, 2)
    cov1 = affine(lin(k.cov1, 1), W_std, b_std)
    cov2 = affine(lin(k.cov2, 1), W_std, b_std)
    if parameterization == "ntk":
        nngp = affine(nngp, W_std, b_std)
        if ntk is not None:
            ntk = nngp + W_std**2 * ntk
    else:
        if ntk is not None:
            ntk = fan_in * nngp + W_std**2 * ntk + (0.0 if b_std is None else 1.0)
        nngp = affine(nngp, W_std, b_std)
    return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=True)


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

    def init(rng, input_shape):
        n_in = input_shape[-1]
        width = out_dim * (s[1] if parameterization == "standard" else 1)
        k1, k2 = jax.random.split(rng)
        W = jax.random.normal(k1, (n_in, width))
        b = (
            None
            if b_std is None
            else jax.random.normal(k2, (1,) * (len(input_shape) - 1) + (width,))
        )
        if parameterization == "standard":
            W = W * W_std / (n_in / s[0]) ** 0.5
            b = None if b is None else b * b_std
        return (*input_shape[:-1], width), (W, b)

    def apply(params, x, mask, **kwargs):
        W, b = params
        _check_channels(x, W.shape[0], "Dense")
        y = taps.tokenwise(x, W)
        b = taps.per_example(b, x.shape[0])
        if parameterization == "ntk":
            y = y * (W_std / x.shape[-1] ** 0.5)
            if b is not None:
                y = y + b_std * b
        else:
            y = y / s[0] ** 0.5
            if b is not None:
                y = y + b
        return y, mask

    def kernel(k):
        k = linear_kernel(k, W_std, b_std, parameterization, k.shape1[-1] / s[0])
        return _with_width(k, out_dim * (s[1] if parameterization == "standard" else 1)).remask()

    boundary = layout.Boundary((batch_axis, channel_axis))
    return make_layer(init, apply, kernel, "Dense", boundary=boundary, positionwise=True)


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

    Example:
        >>> import jax.numpy as jnp
        >>> _, _, kernel_fn = Conv(4, (3, 2), dimension_numbers=("NHWC", "WHIO", "NHWC"))
        >>> kernel_fn(jnp.ones((2, 5, 4, 3)), get="nngp").shape  # 5-2+1 high, 4-3+1 wide
        (2, 2, 4, 4, 2, 2)
    """
    check_width(out_chan, "out_chan")
    check_std(W_std, "W_std")
    check_std(b_std, "b_std", optional=True)
    filter_shape = tuple(filter_shape)
    if not filter_shape or any(not isinstance(f, int) or f < 1 for f in filter_shape):
        raise ValueError(f"filter_shape: expected positive integers, got {filter_shape!r}")
    strides = (1,) * len(filter_shape) if strides is None else tuple(strides)
    if len(strides) != len(filter_shape) or any(t < 1 for t in strides):
        raise ValueError(
            f"strides: expected {len(filter_shape)} positive integers, got {strides!r}"
        )
    padding = check_choice(padding.upper(), windows.PADDINGS, "padding")
    parameterization = check_choice(
        parameterization.lower(), _PARAMETERIZATIONS, "parameterization"
    )
    n_sp = len(filter_shape)
    spec = layout.conv_spec(dimension_numbers, n_sp)
    filter_size = math.prod(filter_shape)
    # per spatial axis, in the input's order (the canonical one of the rules below)
    win = windows.Windows(spec.to_input_order(filter_shape), spec.to_input_order(strides), padding)
    spatial_order = (0, *(1 + i for i in spec.spatial_to_out), n_sp + 1)
    pair_order = (*(2 * i + j for i in spec.spatial_to_out for j in (0, 1)),)
    width = out_chan * (s[1] if parameterization == "standard" else 1)

    def init(rng, input_shape):
        n_in = input_shape[-1]
        sizes = {"I": n_in, "O": width, **dict(zip(spec.filter_spatial, filter_shape, strict=True))}
        k1, k2 = jax.random.split(rng)
        W = jax.random.normal(k1, tuple(sizes[c] for c in spec.rhs))
        b = None if b_std is None else jax.random.normal(k2, (1,) * (n_sp + 1) + (width,))
        if parameterization == "standard":
            W = W * W_std / (n_in * filter_size / s[0]) ** 0.5
            b = None if b is None else b * b_std
        out_shape = (input_shape[0], *win.out_spatial(input_shape[1:-1]), width)
        return layout.permute_shape(out_shape, spatial_order), (W, b)

    def apply(params, x, mask, **kwargs):
        W, b = params
        _check_channels(x, W.shape[spec.rhs.index("I")], "Conv")
        spatial = x.shape[1:-1]
        if padding == "CIRCULAR":
            x = win.pad(x, range(1, n_sp + 1))
            pads = [(0, 0)] * n_sp
        else:
            pads = spec.to_filter_order(win.pads(spatial))
        y = taps.conv(x, W, strides, pads, spec.canonical)
        b = taps.per_example(b, x.shape[0])
        if parameterization == "ntk":
            y = y * (W_std / (x.shape[-1] * filter_size) ** 0.5)
            if b is not None:
                y = y + b_std * b
        else:
            y = y / s[0] ** 0.5
            if b is not None:
                y = y + b
        mask = None if mask is None else win.mask(mask)
        return layout.transpose(y, spatial_order), layout.transpose(mask, spatial_order[:-1])

    def shared(m, batch_ndim):
        order = (*range(batch_ndim), *(batch_ndim + i for i in pair_order))
        return layout.transpose(win.shared(m, batch_ndim), order)

    def kernel(k):
        spatial = k.spatial_shape
        k = linear_kernel(
            k, W_std, b_std, parameterization, k.shape1[-1] * filter_size / s[0], shared
        )
        new_spatial = layout.permute_shape(win.out_spatial(spatial), spec.spatial_to_out)

        def new_mask(m):
            return None if m is None else layout.transpose(win.mask(m), spatial_order[:-1])

        k = k.replace(
            shape1=(k.shape1[0], *new_spatial, width),
            shape2=(k.shape2[0], *new_spatial, width),
            mask1=new_mask(k.mask1),
            mask2=new_mask(k.mask2),
        )
        return k.remask()

    return make_layer(
        init,
        apply,
        kernel,
        "Conv",
        boundary=layout.Boundary(
            (spec.lhs.index("N"), spec.lhs.index("C")),
            (spec.out.index("N"), spec.out.index("C")),
            n_sp + 2,
        ),
    )


def _with_width(k: Kernel, width: int) -> Kernel:
    return k.replace(shape1=(*k.shape1[:-1], width), shape2=(*k.shape2[:-1], width))


def _check_channels(x: jax.Array, expected: int, layer: str) -> None:
    if x.shape[-1] != expected:
        raise ValueError(
            f"inputs: {layer} was initialised for {expected} input channels, got inputs of "
            f"shape {tuple(x.shape)} with {x.shape[-1]} channels"
        )
