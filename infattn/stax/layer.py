"""How a layer is put together: the ``(init_fn, apply_fn, kernel_fn)`` triple.

Each layer is written as three small pure functions over explicit masks,

* ``init(rng, input_shape) -> (output_shape, params)``
* ``apply(params, x, mask, **kwargs) -> (y, mask)``; ``x``: ``(N, *spatial, C)``,
  ``mask``: ``(N, *spatial)`` booleans (``True`` = padding) or ``None``
* ``kernel(k: Kernel) -> Kernel``

and :func:`make_layer` turns them into the public triple with
neural-tangents' calling conventions: ``apply_fn(params, x, *, mask_constant=None)``
and ``kernel_fn(x1, x2=None, get=None, *, mask_constant=None, **kwargs)`` (extra
keywords such as ``Aggregate``'s ``pattern`` reach the rules through
:mod:`infattn.stax.call_kwargs`). Combinators
reach the three parts of their children through ``kernel_fn.layer``.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from infattn.kernel import Kernel
from infattn.stax import call_kwargs, layout, tiling
from infattn.stax.diagonal import MAYBE, Diagonal, keep_diagonals
from infattn.stax.positionwise import on_positions, per_position_kernel
from infattn.stax.replicates import with_replicates, with_standard_errors
from infattn.validation import as_array, canonical_get, check_finite, check_key

Array = jax.Array
InitFn = Callable[..., tuple[Any, Any]]
ApplyFn = Callable[..., Any]
KernelFn = Callable[..., Any]


class MaskedArray(NamedTuple):
    """Finite-network outputs with their padding mask (neural-tangents' type).

    ``masked_value``: ``(N, *spatial, C)``; ``mask``: ``(N, *spatial)``, ``True``
    at padding positions.
    """

    masked_value: Array
    mask: Array


@dataclasses.dataclass(frozen=True)
class Parts:
    """The three internal functions of a layer (see the module docstring)."""

    init: Callable[[Array, Any], tuple[Any, Any]]
    apply: Callable[..., tuple[Any, Any]]
    kernel: Callable[[Kernel], Kernel]
    """The kernel rule, replicates included (see :mod:`infattn.stax.replicates`)."""
    pairwise: bool = True
    """The kernel entry of a pair of inputs depends on that pair alone (see tiling)."""
    boundary: layout.Boundary | None = None
    """Where the layer's inputs keep their batch and channel axes (``None``: anywhere)."""
    positionwise: bool = False
    """The layer acts on each position alone (see :mod:`infattn.stax.positionwise`)."""
    diagonal: Diagonal | None = None
    """neural-tangents' ``diagonal_spatial`` requirement (``None``: none, transparent)."""
    diagonal_kernels: bool = False
    """The rule also takes spatially diagonal kernels (``Kernel.diagonal_spatial``)."""


def make_layer(
    init: Callable,
    apply: Callable,
    kernel: Callable,
    name: str,
    pairwise: bool = True,
    handles_replicates: bool = False,
    boundary: layout.Boundary | None = None,
    input_boundary: layout.Boundary | None = None,
    positionwise: bool = False,
    diagonal: Diagonal | None = None,
    diagonal_kernels: bool = False,
) -> tuple[InitFn, ApplyFn, KernelFn]:
    """Wrap a layer's internal functions into the public triple.

    ``kernel`` maps a Kernel (or a list, for branches) to a Kernel. Unless
    ``handles_replicates``, it never sees replicates: the wrapper applies it to
    the kernel and, mapped, to the kernel's replicates. Layers that make
    replicates (Monte Carlo layers) and combinators (whose children handle them)
    pass ``handles_replicates=True``. ``pairwise=False`` for a layer whose
    kernel entry of a pair depends on other inputs (it is never tiled).

    ``boundary``: where the layer's arrays keep their batch and channel axes; its
    three functions are written for the canonical layout ``(N, *spatial, C)`` and
    are moved to the boundary's axes by :func:`layout.on_layout`. ``input_boundary``:
    for combinators, the boundary of their first child that has one.
    ``positionwise``: the layer acts on each position alone (a position's outputs
    depend on that position's inputs only), so ``kernel_fn(..., diagonal_spatial=True)``
    is computed one position at a time (:mod:`infattn.stax.positionwise`). ``diagonal``:
    neural-tangents' ``diagonal_spatial`` requirement (:class:`Diagonal`; a network whose
    composed requirement is diagonal returns spatially diagonal kernels by default).
    ``diagonal_kernels``: ``kernel`` also takes (and keeps) spatially diagonal kernels,
    ``nngp`` ``(N1, N2, *spatial)`` (position-wise layers do, through
    :func:`~infattn.stax.positionwise.on_positions`); a model whose layers all do
    computes ``kernel_fn(..., diagonal_spatial=True)`` on diagonals from its inputs on.

    Example:
        >>> def init(rng, shape):
        ...     return shape, ()
        >>> def apply(params, x, mask, **kwargs):
        ...     return 2 * x, mask
        >>> def kernel(k):
        ...     return k.replace(nngp=4 * k.nngp, cov1=4 * k.cov1)
        >>> _, apply_fn, kernel_fn = make_layer(init, apply, kernel, "Double")
        >>> float(kernel_fn(jnp.ones((1, 3)), get="nngp")[0, 0])
        4.0
    """
    rule = on_positions(kernel) if positionwise else kernel
    rule = rule if handles_replicates else with_replicates(rule)
    if boundary is not None:
        boundary = dataclasses.replace(boundary, layer=name)
        init, apply, rule = layout.on_layout(init, apply, rule, boundary)
    parts = Parts(
        init,
        apply,
        rule,
        pairwise,
        boundary or input_boundary,
        positionwise,
        diagonal,
        diagonal_kernels or positionwise,
    )
    first = _first_boundary(parts)

    def init_fn(rng: Array, input_shape: Any) -> tuple[Any, Any]:
        return init(check_key(rng, "rng"), input_shape)

    def apply_fn(params: Any, inputs: Any, *, mask_constant: float | None = None, **kwargs):
        x, mask = _split_masked(inputs, mask_constant, first)
        y, out_mask = apply(params, x, mask, **kwargs)
        if out_mask is None or _all_none(out_mask):
            return y
        if isinstance(y, list):
            return [MaskedArray(a, m) for a, m in zip(y, out_mask, strict=True)]
        return MaskedArray(y, out_mask)

    def kernel_fn(
        x1: Any,
        x2: Any = None,
        get: str | tuple[str, ...] | None = None,
        *,
        mask_constant: float | None = None,
        diagonal_batch: bool | None = None,
        diagonal_spatial: bool | None = None,
        **kwargs: Any,
    ):
        if kwargs:  # neural-tangents passes them to every layer (Aggregate's pattern)
            if diagonal_batch is not None or diagonal_spatial is not None:
                raise NotImplementedError(
                    f"diagonal_batch/diagonal_spatial: not supported with {sorted(kwargs)}"
                )
            with call_kwargs.held(kwargs):
                return _kernel_of(parts, x1, x2, get, mask_constant)
        full_batch = _check_flag(diagonal_batch, "diagonal_batch") is False
        if _check_flag(diagonal_spatial, "diagonal_spatial") is None:
            diagonal_spatial = _diagonal_by_default(parts, x1)
        spatial = bool(_check_flag(diagonal_spatial, "diagonal_spatial"))
        if not (full_batch or spatial):
            return _kernel_of(parts, x1, x2, get, mask_constant)
        return _diagonal_kernel(parts, x1, x2, get, mask_constant, full_batch, spatial)

    for f in (init_fn, apply_fn, kernel_fn):
        f.__name__ = f"{name}.{f.__name__}"
    kernel_fn.layer = parts
    apply_fn.layer = parts
    return init_fn, apply_fn, kernel_fn


def _first_boundary(parts: Parts) -> layout.Boundary:
    """Where a network's inputs keep their axes: its first layer's boundary (or canonical)."""
    return parts.boundary or layout.Boundary(layout.CANONICAL)


def _diagonal_kernel(
    parts: Parts, x1: Any, x2: Any, get: Any, mask_constant: Any, full_batch: bool, spatial: bool
) -> Any:
    """``kernel_fn`` with ``diagonal_batch=False`` (full ``cov1``/``cov2``) or
    ``diagonal_spatial=True`` (spatial diagonals kept; per position when the model is
    position-wise)."""
    if isinstance(x1, Kernel | list | tuple):
        raise NotImplementedError(
            "diagonal_batch/diagonal_spatial: supported for a single array x1 (and x2), "
            f"got {type(x1).__name__}"
        )
    names = None if get is None else canonical_get(get, KERNEL_FIELDS)
    on_diagonals = spatial and parts.diagonal_kernels

    def one_pass(a: Any, b: Any, g: Any = None) -> Any:
        return _kernel_of(parts, a, b, g, mask_constant, on_diagonals)

    k = one_pass(x1, x2)
    ks = _as_list(k)
    covs = [None] * len(ks)
    if full_batch:
        nngps = [ki.nngp for ki in ks] if x2 is None else _as_list(one_pass(x1, None, "nngp"))
        cov2s = [None] * len(ks) if x2 is None else _as_list(one_pass(x2, None, "nngp"))
        covs = list(zip(nngps, cov2s, strict=True))
    kept = [keep_diagonals(ki, c, spatial) for ki, c in zip(ks, covs, strict=True)]
    return _select(kept if isinstance(k, list) else kept[0], names)


def _kernel_of(
    parts: Parts, x1: Any, x2: Any, get: Any, mask_constant: Any, on_diagonals: bool = False
) -> Any:
    """The kernel of ``parts`` on inputs (arrays, a list/tuple per branch, or Kernels):
    tiled when it can be, selected by ``get``; ``on_diagonals``: spatially diagonal from
    the inputs on (the whole model per position when it is position-wise)."""
    names = None if get is None else canonical_get(get, KERNEL_FIELDS)
    compute_ntk = names is None or "ntk" in names[1] or "ntk_se" in names[1]
    rule, first = parts.kernel, _first_boundary(parts)
    if isinstance(x1, Kernel) or (isinstance(x1, list) and isinstance(x1[0], Kernel)):
        return _select(with_standard_errors(rule(x1), keep_replicates=True), names)

    def to_kernel(a, b, axes=None):
        return inputs_to_kernel(
            a, b, compute_ntk=compute_ntk, mask_constant=mask_constant, axes=axes
        )

    def one_input(a, b, boundary=first):
        a, axes = _canonical_input(a, "x1", boundary)
        b = None if b is None else _canonical_input(b, "x2", boundary)[0]
        return a, b, axes

    if isinstance(x1, list | tuple):
        # one input per branch: each branch's first layer checks its input's rank
        boundary = dataclasses.replace(first, rank=None)
        x2 = [None] * len(x1) if x2 is None else x2
        _check_same_length(x1, x2)
        ks = [to_kernel(*one_input(a, b, boundary)) for a, b in zip(x1, x2, strict=True)]
        return _select(with_standard_errors(rule(ks)), names)
    x1, x2, axes = one_input(x1, x2)
    if on_diagonals and x1.ndim > 2 and (x2 is None or x2.shape[1:] == x1.shape[1:]):
        for x, label in ((x1, "x1"), (x2, "x2")):
            if x is not None:  # here: the positions are traced (vmap)
                check_finite(x, label, mask_constant)
        per_position = rule if parts.positionwise else _identity
        k = per_position_kernel(
            per_position, functools.partial(to_kernel, axes=axes), x1, x2, _same_inputs(x1, x2)
        )
        k = k if parts.positionwise else rule(k)
        return _select(with_standard_errors(k), names)
    if parts.pairwise and not call_kwargs.active():
        tiled = _tiled_kernel(rule, functools.partial(to_kernel, axes=axes), x1, x2, mask_constant)
        if tiled is not None:
            return _select(tiled, names)
    return _select(with_standard_errors(rule(to_kernel(x1, x2, axes))), names)


def _tiled_kernel(
    rule: Callable, to_kernel: Callable, x1: Any, x2: Any, mask_constant: Any
) -> Kernel | None:
    """``rule`` on the inputs' kernel from tiles (:mod:`tiling`), or ``None`` when the
    inputs are too small to tile (or ``x2``'s example shape differs from ``x1``'s)."""
    positions = math.prod(x1.shape[1:-1])
    if x2 is None:
        check_finite(x1, "x1", mask_constant)
        t = tiling.tile_size(x1.shape[0], positions)
        return None if t is None else tiling.symmetric_kernel(rule, to_kernel, x1, t)
    sizes = tiling.tile_sizes(x1.shape[0], x2.shape[0], positions)
    if sizes is None or x2.shape[1:] != x1.shape[1:]:
        return None
    check_finite(x1, "x1", mask_constant)
    check_finite(x2, "x2", mask_constant)
    k = tiling.rectangular_kernel(rule, to_kernel, x1, x2, sizes)
    return k.replace(x1_is_x2=_same_inputs(x1, x2))


def _identity(k: Kernel) -> Kernel:
    return k


def parts_of(layer: Sequence[Callable]) -> Parts:
    """The internal functions of a layer triple built by this library.

    Example:
        >>> from infattn import stax
        >>> parts_of(stax.Relu()).pairwise
        True
    """
    if len(layer) != 3:
        raise TypeError(f"expected a (init_fn, apply_fn, kernel_fn) triple, got {len(layer)} items")
    parts = getattr(layer[2], "layer", None)
    if parts is None:
        raise TypeError(
            f"layer {getattr(layer[2], '__name__', layer[2])!r} was not built by infattn.stax; "
            "combinators need infattn layers"
        )
    return parts


KERNEL_FIELDS = (
    "nngp",
    "ntk",
    "cov1",
    "cov2",
    "mask1",
    "mask2",
    "shape1",
    "shape2",
    "is_gaussian",
    "x1_is_x2",
    "nngp_se",
    "ntk_se",
)
"""The names ``get`` accepts."""


@functools.lru_cache(maxsize=64)
def _returned_tuple(fields: tuple[str, ...]) -> type:
    """The type a tuple ``get`` returns: neural-tangents' ``AnalyticKernel`` namedtuple."""
    return collections.namedtuple("AnalyticKernel", fields)


def _select(k: Any, names: tuple[bool, tuple[str, ...]] | None) -> Any:
    """The fields ``names`` (from :func:`canonical_get`) of ``k`` or of each Kernel of a list."""
    if names is None:
        return k
    if isinstance(k, list):
        return [_select(ki, names) for ki in k]
    single, fields = names
    if single:
        return getattr(k, fields[0])
    return _returned_tuple(fields)(*(getattr(k, n) for n in fields))


def _as_list(x: Any) -> list:
    return x if isinstance(x, list) else [x]


def _diagonal_by_default(parts: Parts, x1: Any) -> bool | None:
    """``True`` where neural-tangents returns spatially diagonal kernels unasked (arrays only)."""
    if isinstance(x1, Kernel | list | tuple) or parts.diagonal is None:
        return None
    # a YES output comes from global pooling or Flatten: no spatial axes left to keep
    diagonal = parts.diagonal
    return (diagonal.diagonal and diagonal.output == MAYBE) or None


def _check_flag(value: Any, name: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{name}: expected True, False or None, got {value!r}")
    return value


def _all_none(x: Any) -> bool:
    return x is None or (isinstance(x, list) and all(m is None for m in x))


def _split_masked(
    inputs: Any, mask_constant: float | None, boundary: layout.Boundary
) -> tuple[Any, Any]:
    """Inputs (an array, a ``MaskedArray`` or a list of them, one per branch) and masks.

    Masks are canonical, ``(N, *spatial)``, whatever axes the inputs have.
    """
    if isinstance(inputs, list | tuple) and not isinstance(inputs, MaskedArray):
        # one input per branch: each branch's first layer checks its input's rank
        boundary = dataclasses.replace(boundary, rank=None)
        pairs = [_split_masked(i, mask_constant, boundary) for i in inputs]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if isinstance(inputs, MaskedArray):
        return inputs.masked_value, inputs.mask
    x = as_array(inputs, "inputs", 0, "an array or a list of arrays (one per branch)")
    check_finite(x, "inputs", mask_constant)
    if mask_constant is None:
        return x, None
    boundary.check_rank(x.shape)
    entry = _entry_mask(x, mask_constant)
    mask = layout.to_canonical(entry, boundary.axes)
    return jnp.where(entry, jnp.zeros((), x.dtype), x), jnp.all(mask, axis=-1)


def _canonical_input(x: Any, name: str, boundary: layout.Boundary) -> tuple[Array, tuple[int, int]]:
    """``x`` in the canonical layout, and the axes it had (non-negative) to record."""
    x = _as_input(x, name)
    boundary.check_rank(x.shape)
    b, c = layout.canonical_axes(boundary.axes, x.ndim)
    return layout.to_canonical(x, boundary.axes), (b, 1 - b if c is None else c)


def _check_same_length(x1: Sequence[Any], x2: Sequence[Any]) -> None:
    if not isinstance(x2, list | tuple) or len(x2) != len(x1):
        raise ValueError(
            f"x2: with a list of {len(x1)} inputs x1 (one per branch), x2 must be None or a "
            f"list of as many arrays; got {type(x2).__name__}"
        )


def _entry_mask(x: Array, mask_constant: Any) -> Array:
    """Entries equal to ``mask_constant`` (NaN matches NaN); ``mask_constant`` may be traced."""
    mc = jnp.asarray(mask_constant, x.dtype)
    return (x == mc) | (jnp.isnan(mc) & jnp.isnan(x))


def inputs_to_kernel(
    x1: Any,
    x2: Any = None,
    *,
    compute_ntk: bool = True,
    mask_constant: float | None = None,
    axes: tuple[int, int] | None = None,
) -> Kernel:
    """Covariances of the inputs: ``nngp[i, j, a, b] = <x1[i, a], x2[j, b]> / C``.

    ``x1``: ``(N1, *spatial, C)``, ``x2``: ``(N2, *spatial, C)`` or ``None``.
    Entries equal to ``mask_constant`` are padding: they are zeroed, and a
    position is masked when all its channels are padding. ``axes``: the
    ``(batch_axis, channel_axis)`` the inputs had before they were moved to this
    canonical layout, recorded in the kernel (default: the canonical ones).

    Example:
        >>> k = inputs_to_kernel(jnp.ones((2, 3, 4)), mask_constant=None)
        >>> k.nngp.shape, k.cov1.shape, k.cov2 is None
        ((2, 2, 3, 3), (2, 3, 3), True)
    """
    x1 = _as_input(x1, "x1")
    if x2 is not None:
        x2 = _as_input(x2, "x2")
        if x2.shape[1:] != x1.shape[1:]:
            raise ValueError(
                f"x2: non-batch shape {x2.shape[1:]} differs from x1's {x1.shape[1:]}; "
                "x1 and x2 must share every axis but the batch"
            )
    for x, name in ((x1, "x1"), (x2, "x2")):
        if x is not None:
            check_finite(x, name, mask_constant)
    x1, mask1 = _mask_inputs(x1, mask_constant)
    x2, mask2 = _mask_inputs(x2, mask_constant) if x2 is not None else (None, None)
    cov1 = _self_cov(x1)
    cov2 = None if x2 is None else _self_cov(x2)
    nngp = _cross_cov(x1, x1 if x2 is None else x2)
    ntk = jnp.zeros_like(nngp) if compute_ntk else None
    return Kernel(
        nngp=nngp,
        ntk=ntk,
        cov1=cov1,
        cov2=cov2,
        mask1=mask1,
        mask2=mask2,
        shape1=tuple(x1.shape),
        shape2=tuple((x1 if x2 is None else x2).shape),
        is_gaussian=False,
        x1_is_x2=_same_inputs(x1, x2),
        batch_axis=0 if axes is None else axes[0],
        channel_axis=x1.ndim - 1 if axes is None else axes[1],
    )


def _same_inputs(x1: Array, x2: Array | None) -> bool:
    """``x2`` is ``None`` or, concretely, equals ``x1`` (neural-tangents' ``x1_is_x2``).

    Traced inputs compare as different (the flag is static).
    """
    if x2 is None:
        return True
    if x1.shape != x2.shape or isinstance(x1, jax.core.Tracer) or isinstance(x2, jax.core.Tracer):
        return False
    return bool(jnp.all(jnp.abs(x1 - x2) < 1e-12))


def _as_input(x: Any, name: str) -> Array:
    return as_array(x, name, 2, "an array of shape (N, ..., C)")


def _mask_inputs(x: Array, mask_constant: float | None) -> tuple[Array, Array | None]:
    if mask_constant is None:
        return x, None
    entry = _entry_mask(x, mask_constant)
    return jnp.where(entry, jnp.zeros((), x.dtype), x), jnp.all(entry, axis=-1)


def _spatial_letters(n: int) -> tuple[str, str]:
    letters = "abcdefgh"[:n]
    return letters, letters.upper()


def _cross_cov(x1: Array, x2: Array) -> Array:
    """``(N1, N2, *S)`` interleaved: ``<x1[i, s], x2[j, s']> / C``."""
    lo, up = _spatial_letters(x1.ndim - 2)
    out = "ij" + "".join(a + b for a, b in zip(lo, up, strict=True))
    return jnp.einsum(f"i{lo}z,j{up}z->{out}", x1, x2) / x1.shape[-1]


def _self_cov(x: Array) -> Array:
    """``(N, *S)`` interleaved: ``<x[i, s], x[i, s']> / C``."""
    lo, up = _spatial_letters(x.ndim - 2)
    out = "i" + "".join(a + b for a, b in zip(lo, up, strict=True))
    return jnp.einsum(f"i{lo}z,i{up}z->{out}", x, x) / x.shape[-1]
