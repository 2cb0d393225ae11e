"""Array layouts at the layer boundary: where the batch, channel and spatial axes are.

Every rule in :mod:`infattn.stax` works on one canonical layout, ``(N, *spatial, C)``:
batch first, channels last, spatial axes in between *in the order they have in the
user's arrays*. Layers that accept neural-tangents' ``batch_axis``/``channel_axis`` or
convolution ``dimension_numbers`` move axes to the canonical layout when an array
enters and back when it leaves, so each rule has one implementation.

Kernels never need moving: their layout ``(N1, N2, s1, s1, s2, s2, ...)`` depends only
on the order of the spatial axes, which the canonical layout keeps.

A convolution's ``dimension_numbers = (lhs, rhs, out)`` name the axes of its input
(``N``, ``C`` and one letter per spatial axis), filter (``I``, ``O`` and the same
letters) and output. Following ``jax.lax.conv_general_dilated``, ``filter_shape``
and ``strides`` are listed in the order of the *filter's* spatial letters: with
``('NHWC', 'WHIO', 'NHWC')``, ``filter_shape=(3, 2)`` is 3 wide and 2 high.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array

SPATIAL_LETTERS = "".join(c for c in string.ascii_uppercase if c not in "NCIO")
"""Letters of the default spatial axes (neural-tangents' convention: ``A, B, D, ...``)."""


def normalize_axis(axis: int, ndim: int, name: str) -> int:
    """``axis`` as a non-negative index into ``ndim`` axes; raises naming ``name``.

    Example:
        >>> normalize_axis(-1, 4, "channel_axis"), normalize_axis(3, 4, "channel_axis")
        (3, 3)
    """
    if isinstance(axis, bool) or not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise ValueError(f"{name}: expected an axis of an array with {ndim} axes, got {axis!r}")
    return axis % ndim


def to_canonical_order(ndim: int, batch_axis: int, channel_axis: int | None) -> tuple[int, ...]:
    """The permutation taking an array with the given axes to ``(N, *spatial, C)``.

    ``channel_axis=None``: only the batch axis moves (to the front).

    Example:
        >>> to_canonical_order(4, 0, 1)  # NCHW -> NHWC
        (0, 2, 3, 1)
        >>> to_canonical_order(3, 1, None)
        (1, 0, 2)
    """
    b = normalize_axis(batch_axis, ndim, "batch_axis")
    if channel_axis is None:
        return (b, *(i for i in range(ndim) if i != b))
    c = normalize_axis(channel_axis, ndim, "channel_axis")
    if b == c:
        raise ValueError(
            f"channel_axis: expected an axis other than batch_axis={batch_axis}, got {channel_axis}"
        )
    return (b, *(i for i in range(ndim) if i not in (b, c)), c)


Axes = tuple[int, int | None]
"""``(batch_axis, channel_axis)`` of an array (``channel_axis=None``: no channel axis)."""

CANONICAL: Axes = (0, -1)


def canonical_axes(axes: Axes, ndim: int) -> tuple[int, int | None]:
    """``axes`` as non-negative indices into ``ndim`` axes.

    Example:
        >>> canonical_axes((0, -1), 3)
        (0, 2)
    """
    b = normalize_axis(axes[0], ndim, "batch_axis")
    return b, None if axes[1] is None else normalize_axis(axes[1], ndim, "channel_axis")


def to_canonical(x: Any, axes: Axes) -> Any:
    """An array with the given axes in the canonical layout ``(N, *spatial, C)``.

    ``channel_axis=None`` flattens every non-batch axis into channels (``(N, F)``), as
    neural-tangents does with inputs of a network that starts with ``Flatten``.

    Example:
        >>> to_canonical(jnp.zeros((3, 2, 5)), (1, 0)).shape  # (C, N, L)
        (2, 5, 3)
    """
    x = transpose(x, to_canonical_order(x.ndim, *axes))
    return x if axes[1] is not None else x.reshape(x.shape[0], -1)


def from_canonical_order(ndim: int, axes: Axes) -> tuple[int, ...]:
    """The permutation taking a canonical array to one with the given axes.

    Example:
        >>> from_canonical_order(4, (0, 1))  # NHWC -> NCHW
        (0, 3, 1, 2)
    """
    return inverse(to_canonical_order(ndim, *axes))


@dataclasses.dataclass(frozen=True)
class Boundary:
    """Where a layer's arrays keep their batch and channel axes.

    ``axes``: the inputs' ``(batch_axis, channel_axis)``; ``out_axes``: the outputs'
    (default ``axes``), or a function of the inputs' number of axes giving them;
    ``rank``: the number of axes the inputs must have (``None``: any), checked
    before any axis moves so that the error names the layer.
    """

    axes: Axes
    out_axes: Axes | Callable[[int], Axes] | None = None
    rank: int | None = None
    layer: str = ""
    """The layer's name, for error messages (set by ``make_layer``)."""

    def outputs(self, ndim: int) -> Axes:
        """The output axes for inputs with ``ndim`` axes."""
        out = self.axes if self.out_axes is None else self.out_axes
        return out(ndim) if callable(out) else out

    def check_rank(self, shape: Sequence[int]) -> None:
        """Raise unless inputs of ``shape`` have ``rank`` axes."""
        if self.rank is not None and len(shape) != self.rank:
            raise ValueError(
                f"inputs: {self.layer} needs inputs with {self.rank} axes (batch, "
                f"{self.rank - 2} spatial, channels); got shape {tuple(shape)}"
            )


def on_layout(init: Any, apply: Any, kernel: Any, boundary: Boundary):
    """A canonical-layout layer's ``init``, ``apply``, ``kernel`` on ``boundary``'s layout.

    The wrapped ``init`` and ``apply`` take shapes and arrays with batch and channel
    axes at ``boundary.axes`` and return them at ``boundary.outputs(ndim)`` (the
    layer's rules see the canonical layout). The wrapped ``kernel`` checks that the
    kernel it gets was computed for arrays with those axes (as neural-tangents does)
    and records the output axes in the kernel it returns.

    Example:
        >>> init, apply, kernel = on_layout(
        ...     lambda rng, s: (s[:-1] + (2,), ()), None, None, Boundary((1, 0), layer="Two"))
        >>> init(None, (4, 3, 5))[0]  # (C, N, L) -> (2, N, L)
        (2, 3, 5)
    """
    axes = boundary.axes

    def init_fn(rng, input_shape):
        boundary.check_rank(input_shape)
        order = to_canonical_order(len(input_shape), *axes)
        out_shape, params = init(rng, permute_shape(input_shape, order))
        back = from_canonical_order(len(out_shape), boundary.outputs(len(input_shape)))
        return permute_shape(out_shape, back), params

    def apply_fn(params, x, mask, **kwargs):
        boundary.check_rank(x.shape)
        y, out_mask = apply(params, to_canonical(x, axes), mask, **kwargs)
        return transpose(y, from_canonical_order(y.ndim, boundary.outputs(x.ndim))), out_mask

    def kernel_fn(k):
        boundary.check_rank(k.shape1)
        check_kernel_axes(k, axes, boundary.layer)
        out = kernel(k)
        b, c = canonical_axes(boundary.outputs(len(k.shape1)), len(out.shape1))
        return out.replace(batch_axis=b, channel_axis=-1 if c is None else c)

    return init_fn, apply_fn, kernel_fn


def check_kernel_axes(k: Any, axes: Axes, name: str) -> None:
    """Raise unless the kernel ``k`` was computed for arrays whose axes are ``axes``."""
    ndim = len(k.shape1)
    if not ndim:
        return
    want = canonical_axes(axes, ndim)
    have = canonical_axes((k.batch_axis, k.channel_axis), ndim)
    for i, key in enumerate(("batch_axis", "channel_axis")):
        if want[i] is not None and want[i] != have[i]:
            raise ValueError(
                f"{name}: {key}={axes[i]} but its inputs have {key}={have[i]} (the previous "
                "layer's output layout); the layers' batch_axis/channel_axis (or "
                "dimension_numbers) must agree"
            )


def inverse(order: Sequence[int]) -> tuple[int, ...]:
    """The inverse permutation.

    Example:
        >>> inverse((0, 2, 3, 1))
        (0, 3, 1, 2)
    """
    out = [0] * len(order)
    for i, o in enumerate(order):
        out[o] = i
    return tuple(out)


def permute_shape(shape: Sequence[int], order: Sequence[int]) -> tuple[int, ...]:
    """``shape`` permuted as ``jnp.transpose(x, order)`` permutes ``x``.

    Example:
        >>> permute_shape((2, 3, 4, 5), (0, 2, 3, 1))
        (2, 4, 5, 3)
    """
    return tuple(shape[i] for i in order)


def transpose(x: Any, order: Sequence[int]) -> Any:
    """``jnp.transpose`` that skips identity permutations and passes ``None`` through."""
    if x is None or tuple(order) == tuple(range(len(order))):
        return x
    return jnp.transpose(x, order)


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """Parsed convolution ``dimension_numbers``: ``lhs``, ``rhs``, ``out`` axis letters."""

    lhs: str
    rhs: str
    out: str

    @property
    def spatial(self) -> str:
        """Spatial letters in the input's order (the canonical spatial order)."""
        return "".join(c for c in self.lhs if c not in "NC")

    @property
    def filter_spatial(self) -> str:
        """Spatial letters in the filter's order (that of ``filter_shape`` and ``strides``)."""
        return "".join(c for c in self.rhs if c not in "IO")

    @property
    def out_spatial(self) -> str:
        """Spatial letters in the output's order."""
        return "".join(c for c in self.out if c not in "NC")

    def to_input_order(self, values: Sequence[Any]) -> tuple[Any, ...]:
        """Per-spatial-axis values listed in the filter's order, reordered as the input's.

        Example:
            >>> ConvSpec("NHWC", "WHIO", "NHWC").to_input_order((3, 2))
            (2, 3)
        """
        return tuple(values[self.filter_spatial.index(c)] for c in self.spatial)

    def to_filter_order(self, values: Sequence[Any]) -> tuple[Any, ...]:
        """The inverse of :meth:`to_input_order`.

        Example:
            >>> ConvSpec("NHWC", "WHIO", "NHWC").to_filter_order((2, 3))
            (3, 2)
        """
        return tuple(values[self.spatial.index(c)] for c in self.filter_spatial)

    @property
    def spatial_to_out(self) -> tuple[int, ...]:
        """For each output spatial axis, the input spatial axis it holds.

        Example:
            >>> ConvSpec("NHWC", "HWIO", "NWHC").spatial_to_out
            (1, 0)
        """
        return tuple(self.spatial.index(c) for c in self.out_spatial)

    @property
    def canonical(self) -> tuple[str, str, str]:
        """``dimension_numbers`` of the same convolution on canonical inputs and outputs."""
        lhs = "N" + self.spatial + "C"
        return lhs, self.rhs, lhs


def conv_spec(dimension_numbers: Any, n_spatial: int) -> ConvSpec:
    """Validate ``dimension_numbers`` for a convolution with ``n_spatial`` spatial axes.

    ``None`` means batch first, channels last, filter ``(*spatial, I, O)``.

    Example:
        >>> conv_spec(None, 2)
        ConvSpec(lhs='NABC', rhs='ABIO', out='NABC')
        >>> conv_spec(("NCHW", "OIHW", "NCHW"), 2).spatial
        'HW'
    """
    if dimension_numbers is None:
        letters = SPATIAL_LETTERS[:n_spatial]
        return ConvSpec("N" + letters + "C", letters + "IO", "N" + letters + "C")
    if (
        not isinstance(dimension_numbers, Sequence)
        or len(dimension_numbers) != 3
        or not all(isinstance(s, str) for s in dimension_numbers)
    ):
        raise ValueError(
            "dimension_numbers: expected None or three strings (input, filter, output), "
            f"e.g. ('NHWC', 'HWIO', 'NHWC'); got {dimension_numbers!r}"
        )
    lhs, rhs, out = (s.upper() for s in dimension_numbers)
    spec = ConvSpec(lhs, rhs, out)
    letters = sorted(spec.spatial)
    for name, s, fixed in (("input", lhs, "NC"), ("filter", rhs, "IO"), ("output", out, "NC")):
        rest = sorted(c for c in s if c not in fixed)
        if (
            len(s) != n_spatial + 2
            or len(set(s)) != len(s)
            or any(s.count(c) != 1 for c in fixed)
            or rest != letters
        ):
            raise ValueError(
                f"dimension_numbers: the {name} spec {s!r} must hold {fixed[0]!r}, {fixed[1]!r} "
                f"and the {n_spatial} spatial letters of the input spec {lhs!r} (one per axis of "
                f"filter_shape), each once; got {dimension_numbers!r}"
            )
    return spec
