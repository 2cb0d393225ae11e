"""How a layer is put together: the ``(init_fn, apply_fn, kernel_fn)`` triple.

Each layer is written as three small pure functions over explicit masks,

* ``init(rng, input_shape) -> (output_shape, params)``
* ``apply(params, x, mask, **kwargs) -> (y, mask)``; ``x``: ``(N, *spatial, C)``,
  ``mask``: ``(N, *spatial)`` booleans (``True`` = padding) or ``None``
* ``kernel(k: Kernel) -> Kernel``

and :func:`make_layer` turns them into the public triple with
neural-tangents' calling conventions: ``apply_fn(params, x, *, mask_constant=None)``
and ``kernel_fn(x1, x2=None, get=None, *, mask_constant=None)``. Combinators
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
import numpy as np

from infattn.kernel import Kernel
from infattn.stax import tiling

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
    pairwise: bool = True
    """The kernel entry of a pair of inputs depends on that pair alone (see tiling)."""


def make_layer(
    init: Callable, apply: Callable, kernel: Callable, name: str, pairwise: bool = True
) -> tuple[InitFn, ApplyFn, KernelFn]:
    """Wrap a layer's internal functions into the public triple."""
    parts = Parts(init, apply, kernel, pairwise)

    def init_fn(rng: Array, input_shape: Any) -> tuple[Any, Any]:
        return init(rng, input_shape)

    def apply_fn(params: Any, inputs: Any, *, mask_constant: float | None = None, **kwargs):
        x, mask = _split_masked(inputs, mask_constant)
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
    ):
        compute_ntk = get is None or "ntk" in _as_tuple(get)
        if isinstance(x1, Kernel) or (isinstance(x1, list) and isinstance(x1[0], Kernel)):
            return _select(kernel(x1), get)

        def to_kernel(a, b):
            return inputs_to_kernel(a, b, compute_ntk=compute_ntk, mask_constant=mask_constant)

        if x2 is None and pairwise:
            x = _as_input(x1, "x1")
            check_finite_inputs(x, mask_constant, "x1")
            t = tiling.tile_size(x.shape[0], math.prod(x.shape[1:-1]))
            if t is not None:
                return _select(tiling.symmetric_kernel(kernel, to_kernel, x, t), get)
        return _select(kernel(to_kernel(x1, x2)), get)

    for f in (init_fn, apply_fn, kernel_fn):
        f.__name__ = f"{name}.{f.__name__}"
    kernel_fn.layer = parts
    apply_fn.layer = parts
    return init_fn, apply_fn, kernel_fn


def parts_of(layer: Sequence[Callable]) -> Parts:
    """The internal functions of a layer triple built by this library."""
    if len(layer) != 3:
        raise TypeError(f"expected a (init_fn, apply_fn, kernel_fn) triple, got {len(layer)} items")
    parts = getattr(layer[2], "layer", None)
    if parts is None:
        raise TypeError(
            f"layer {getattr(layer[2], '__name__', layer[2])!r} was not built by infattn.stax; "
            "combinators need infattn layers"
        )
    return parts


def _as_tuple(get: str | tuple[str, ...]) -> tuple[str, ...]:
    return (get,) if isinstance(get, str) else tuple(get)


_KERNEL_FIELDS = (
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
)


@functools.lru_cache(maxsize=64)
def _namedtuple(fields: tuple[str, ...]) -> type:
    return collections.namedtuple("Kernel", fields)


def _select(k: Any, get: str | tuple[str, ...] | None) -> Any:
    if get is None:
        return k
    if isinstance(k, list):
        return [_select(ki, get) for ki in k]
    names = _as_tuple(get)
    for name in names:
        if name not in _KERNEL_FIELDS:
            raise ValueError(
                f"get: unknown kernel field {name!r}; expected one of {_KERNEL_FIELDS}"
            )
    if isinstance(get, str):
        return getattr(k, get)
    return _namedtuple(names)(*(getattr(k, n) for n in names))


def _all_none(x: Any) -> bool:
    return x is None or (isinstance(x, list) and all(m is None for m in x))


def _split_masked(inputs: Any, mask_constant: float | None) -> tuple[Any, Any]:
    if isinstance(inputs, list | tuple) and not isinstance(inputs, MaskedArray):
        pairs = [_split_masked(i, mask_constant) for i in inputs]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if isinstance(inputs, MaskedArray):
        return inputs.masked_value, inputs.mask
    x = jnp.asarray(inputs)
    check_finite_inputs(x, mask_constant, "inputs")
    return _mask_inputs(x, mask_constant)


def _entry_mask(x: Array, mask_constant: Any) -> Array:
    """Entries equal to ``mask_constant`` (NaN matches NaN); ``mask_constant`` may be traced."""
    mc = jnp.asarray(mask_constant, x.dtype)
    return (x == mc) | (jnp.isnan(mc) & jnp.isnan(x))


def _is_concrete(*xs: Any) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def check_finite_inputs(x: Array, mask_constant: Any, name: str) -> None:
    """Reject NaN/inf entries that are not the mask constant.

    Runs on concrete values only: under ``jit`` (traced inputs or a traced
    ``mask_constant``) it is skipped.
    """
    if not _is_concrete(x, mask_constant) or x.size == 0:
        return
    xn = np.asarray(x)
    bad = ~np.isfinite(xn)
    if mask_constant is not None:
        mc = float(mask_constant)
        bad &= ~(np.isnan(xn) if np.isnan(mc) else xn == mc)
    if bad.any():
        raise ValueError(
            f"{name}: {int(bad.sum())} entries are NaN or infinite; finite values were expected "
            "(pass mask_constant=... if they mark padding)"
        )


def inputs_to_kernel(
    x1: Any, x2: Any = None, *, compute_ntk: bool = True, mask_constant: float | None = None
) -> Kernel:
    """Covariances of the inputs: ``nngp[i, j, a, b] = <x1[i, a], x2[j, b]> / C``.

    ``x1``: ``(N1, *spatial, C)``, ``x2``: ``(N2, *spatial, C)`` or ``None``.
    Entries equal to ``mask_constant`` are padding: they are zeroed, and a
    position is masked when all its channels are padding.
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
            check_finite_inputs(x, mask_constant, name)
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
        x1_is_x2=x2 is None,
    )


def _as_input(x: Any, name: str) -> Array:
    if not hasattr(x, "shape"):
        raise TypeError(f"{name}: expected an array of shape (N, ..., C), got {type(x).__name__}")
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(
            f"{name}: expected at least 2 axes (batch, ..., channels), got shape {x.shape}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


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
