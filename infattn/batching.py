"""``batch``: a kernel function computed block by block (neural-tangents' ``nt.batch``).

``batch(kernel_fn, batch_size)`` cuts ``x1`` and ``x2`` into batches of
``batch_size`` examples, calls ``kernel_fn`` on every pair of batches and assembles
the blocks: pair kernels (``nngp``, ``ntk``, their standard errors, empirical
kernels) along both batch axes, per-example fields (``cov1``, ``mask1``; ``cov2``,
``mask2``) along one. Entries of a closed-form kernel depend on their pair of inputs
only, so the result equals the unbatched kernel while peak memory follows one
block. Blocks run one after the other on the default device; ``store_on_device=False``
moves each finished block to host memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infattn.kernel import Kernel
from infattn.validation import as_array

PAIR_FIELDS = ("nngp", "ntk", "nngp_se", "ntk_se")
"""Kernel fields indexed by a pair of examples ``(N1, N2, ...)``."""


def batch(
    kernel_fn: Callable[..., Any],
    batch_size: int = 0,
    device_count: int = -1,
    store_on_device: bool = True,
) -> Callable[..., Any]:
    """``kernel_fn(x1, x2=None, *args, **kwargs)`` computed on blocks of ``batch_size`` examples.

    ``batch_size=0``: no batching. ``batch_size`` must divide ``N1`` (and ``N2``), as
    in neural-tangents. ``device_count`` is accepted for compatibility; blocks run on
    the default device (``infattn.monte_carlo_kernel_fn`` and ``infattn.scale``
    shard over devices). Works for ``infattn.stax`` kernel functions (any ``get``)
    and for :func:`~infattn.empirical_kernel_fn` (extra arguments pass through).

    Example:
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(3), stax.Relu())
        >>> x = jnp.arange(12.0).reshape(4, 3) / 10
        >>> bool(jnp.allclose(batch(kernel_fn, 2)(x, None, "nngp"), kernel_fn(x, None, "nngp")))
        True
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
        raise ValueError(f"batch_size: expected a non-negative integer, got {batch_size!r}")
    if isinstance(device_count, bool) or not isinstance(device_count, int) or device_count < -1:
        raise ValueError(
            f"device_count: expected -1 or a non-negative integer, got {device_count!r}"
        )

    def batched(x1: Any, x2: Any = None, *args: Any, **kwargs: Any) -> Any:
        if batch_size == 0:
            return _store(kernel_fn(x1, x2, *args, **kwargs), store_on_device)
        x1 = as_array(x1, "x1", 1, "an array of inputs (N1, ...)")
        same = x2 is None
        x2v = x1 if same else as_array(x2, "x2", 1, "an array of inputs (N2, ...)")
        for x, name in ((x1, "x1"), (x2v, "x2")):
            if x.shape[0] % batch_size:
                raise ValueError(
                    f"batch_size: expected a divisor of the number of examples of {name} "
                    f"({x.shape[0]}), got {batch_size}"
                )
        starts1 = range(0, x1.shape[0], batch_size)
        starts2 = range(0, x2v.shape[0], batch_size)
        rows = []
        for i in starts1:
            a = x1[i : i + batch_size]
            row = []
            for j in starts2:
                b = None if same and i == j else x2v[j : j + batch_size]
                kw = _block_kwargs(kwargs, (x1.shape[0], x2v.shape[0]), i, j, batch_size)
                row.append(_store(kernel_fn(a, b, *args, **kw), store_on_device))
            rows.append(row)
        return _assemble(rows, same, store_on_device)

    return batched


def _block_kwargs(
    kwargs: dict[str, Any], sizes: tuple[int, int], i: int, j: int, size: int
) -> dict[str, Any]:
    """``kwargs`` for the block of examples ``i:i+size`` of ``x1`` and ``j:j+size`` of ``x2``.

    A pair ``(v1, v2)`` of per-example arrays (leading axes ``N1`` and ``N2``, e.g.
    ``Aggregate``'s ``pattern``) is cut like the inputs (neural-tangents' rule); other
    values pass unchanged.
    """
    out = dict(kwargs)
    for name, v in kwargs.items():
        if (
            name != "rng"
            and isinstance(v, tuple | list)
            and len(v) == 2
            and all(np.ndim(a) >= 1 and np.shape(a)[0] == n for a, n in zip(v, sizes, strict=True))
        ):
            out[name] = (v[0][i : i + size], v[1][j : j + size])
    return out


def _store(out: Any, on_device: bool) -> Any:
    if on_device:
        return out
    return jax.tree_util.tree_map(np.asarray, out)


def _assemble(rows: list[list[Any]], same: bool, on_device: bool) -> Any:
    xp = jnp if on_device else np
    first = rows[0][0]

    def pairs(blocks):
        return xp.concatenate([xp.concatenate(r, axis=1) for r in blocks], axis=0)

    if isinstance(first, Kernel):
        return _assemble_kernel(rows, same, pairs, xp)
    if isinstance(first, tuple):  # a namedtuple of requested fields
        fields = [pairs([[b[k] for b in r] for r in rows]) for k in range(len(first))]
        return type(first)(*fields)
    return pairs(rows)


def _assemble_kernel(rows, same: bool, pairs, xp) -> Kernel:
    first = rows[0][0]
    changes = {}
    for name in PAIR_FIELDS:
        if getattr(first, name) is not None:
            changes[name] = pairs([[getattr(b, name) for b in r] for r in rows])
    for name in ("cov1", "mask1"):
        if getattr(first, name) is not None:
            changes[name] = xp.concatenate([getattr(r[0], name) for r in rows])
    for name in ("cov2", "mask2"):
        values = [getattr(b, name) for b in rows[0]]
        changes[name] = None if same or values[0] is None else xp.concatenate(values)
    n1 = sum(r[0].shape1[0] for r in rows)
    n2 = sum(b.shape2[0] for b in rows[0])
    changes["shape1"] = (n1, *first.shape1[1:])
    changes["shape2"] = (n2, *first.shape2[1:])
    changes["x1_is_x2"] = same
    return first.replace(**changes)
