"""Tiles of a kernel: ``(batch_size, batch_size)`` blocks of ``(x1, x2)`` computed apart.

Every tile of a draw uses the same parameters (the draw's key), so the assembled
kernel is the kernel of the whole batch.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import jax

from infattn.empirical.draws import Config


@dataclasses.dataclass(frozen=True)
class Tile:
    """Inputs ``x1``, ``x2`` (``None``: ``x1`` with itself) of block ``(i, j)``.

    Arrays, or tuples of arrays (one per branch of a model starting with ``parallel``).
    """

    x1: Any
    x2: Any
    i: int
    j: int


def _axes(axes: Any) -> tuple:
    return (axes,) if isinstance(axes, int) else tuple(axes)


def _batch(x: Any) -> int:
    """Examples in ``x``, an array or a tuple of arrays (one per branch)."""
    return jax.tree_util.tree_leaves(x)[0].shape[0]


def _rows(x: Any, i: int, size: int) -> Any:
    """Examples ``i * size .. (i + 1) * size - 1`` of every array of ``x``."""
    return jax.tree_util.tree_map(lambda a: a[i * size : (i + 1) * size], x)


def tiles(x1: Any, x2: Any, batch_size: int, cfg: Config) -> list[Tile]:
    """The tiles of ``(x1, x2)``; ``batch_size = 0``: one tile, the whole kernel.

    With the batch axis in ``diagonal_axes`` only the diagonal blocks are needed.

    Example:
        >>> import jax.numpy as jnp
        >>> [(t.i, t.j) for t in tiles(jnp.ones((4, 2)), None, 2, Config())]
        [(0, 0), (0, 1), (1, 0), (1, 1)]
    """
    if batch_size == 0:
        return [Tile(x1, x2, 0, 0)]
    n1 = _batch(x1)
    n2 = n1 if x2 is None else _batch(x2)
    if n1 % batch_size or n2 % batch_size:
        raise ValueError(
            f"batch_size: expected a divisor of N1 = {n1} and N2 = {n2}, got {batch_size}"
        )
    if 0 in _axes(cfg.trace_axes):
        raise ValueError(
            f"batch_size: expected 0 when trace_axes holds the batch axis 0, got {batch_size}"
        )
    diag = _axes(cfg.diagonal_axes)
    x2_ = x1 if x2 is None else x2
    out = []
    for i in range(n1 // batch_size):
        for j in range(n2 // batch_size):
            if 0 in diag and i != j:
                continue
            xi = _rows(x1, i, batch_size)
            xj = None if (x2 is None and i == j) else _rows(x2_, j, batch_size)
            out.append(Tile(xi, xj, i, j))
    return out


def assemble(parts: list[Any], tile_list: list[Tile], cfg: Config, xp: Any) -> Any:
    """The kernel from its tiles' blocks ``parts`` (``xp``: ``numpy`` or ``jax.numpy``).

    Example:
        >>> import numpy as np
        >>> ts = tiles(np.ones((4, 2)), None, 2, Config())
        >>> assemble([np.full((2, 2), k) for k in range(4)], ts, Config(), np)[:, 1:3].tolist()
        [[0, 1], [0, 1], [2, 3], [2, 3]]
    """
    if len(tile_list) == 1:
        return parts[0]
    if 0 in _axes(cfg.diagonal_axes):
        return xp.concatenate(parts, axis=0)
    rows: dict[int, list] = collections.defaultdict(list)
    for t, p in zip(tile_list, parts, strict=True):
        rows[t.i].append(p)
    return xp.concatenate([xp.concatenate(rows[i], axis=1) for i in sorted(rows)], axis=0)
