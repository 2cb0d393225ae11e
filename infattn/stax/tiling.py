"""Symmetric tiling: ``kernel_fn(x, None)`` from the upper triangle of example tiles.

With ``x2 = None`` the kernel is symmetric, ``nngp[i, j, a, b] = nngp[j, i, b, a]``,
and for every layer whose entry for a pair ``(x, x')`` depends on that pair alone
(all closed-form layers) the block of tiles ``(I, J)`` equals
``kernel_fn(x[I], x[J])``. So the batch is cut into tiles of ``t`` examples and
only the ``T (T + 1) / 2`` tiles with ``I <= J`` are computed, one after the
other (``lax.map``: one compiled body, a working set of a few MB that stays in
cache), then mirrored. This halves the work for large batches and bounds the
memory of intermediate kernels by one tile pair.

Monte Carlo attention samples all inputs of a batch jointly (for a positive
semi-definite estimate), so models containing it are never tiled; nor are their
replicates (:mod:`infattn.stax.replicates`): a layer that makes replicates must be
built with ``pairwise=False``, and a tiled model that produced them is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from infattn.kernel import Kernel

Array = jax.Array

TILE_ENTRIES = 2**18
"""Target number of entries ``t * t * P * P`` of one tile of a spatial kernel."""


def tile_size(n: int, positions: int) -> int | None:
    """Examples per tile (a power of two), or ``None`` when tiling would not help."""
    t = 2 ** int(math.log2(max(1.0, math.sqrt(TILE_ENTRIES) / positions)))
    t = max(t, 4)
    return t if n >= 3 * t else None


def mirror(block: Array) -> Array:
    """``(t1, t2, s1, s1', ...)`` -> ``(t2, t1, s1', s1, ...)``: the transposed pair block.

    Example:
        >>> mirror(jnp.zeros((2, 3, 4, 5))).shape
        (3, 2, 5, 4)
    """
    order = [1, 0]
    for d in range(2, block.ndim, 2):
        order += [d + 1, d]
    return jnp.transpose(block, order)


def symmetric_kernel(
    rule: Callable[[Kernel], Kernel],
    to_kernel: Callable[[Array, Array], Kernel],
    x: Array,
    t: int,
) -> Kernel:
    """``rule(to_kernel(x, x))`` assembled from upper-triangular tiles of ``t`` examples.

    ``x``: ``(N, *spatial, C)``; ``to_kernel(x1, x2)`` builds the input kernel of a
    tile pair. Returns the kernel with ``cov2 = None`` as ``kernel_fn(x, None)`` does.

    Example:
        >>> from infattn.stax.layer import inputs_to_kernel
        >>> x = jnp.arange(24.0).reshape(6, 2, 2)
        >>> tiled = symmetric_kernel(lambda k: k, inputs_to_kernel, x, 2)
        >>> bool(jnp.allclose(tiled.nngp, inputs_to_kernel(x).nngp))
        True
    """
    n = x.shape[0]
    n_tiles = -(-n // t)
    padded = jnp.concatenate([x, jnp.zeros((n_tiles * t - n, *x.shape[1:]), x.dtype)])
    tiles = padded.reshape(n_tiles, t, *x.shape[1:])
    rows, cols = np.triu_indices(n_tiles)

    def body(pair):
        i, j = pair
        return rule(to_kernel(tiles[i], tiles[j]))

    out = jax.lax.map(body, (jnp.asarray(rows), jnp.asarray(cols)))
    if out.replicates is not None:
        raise ValueError(
            "pairwise: a layer that makes replicates (Monte Carlo) must be built with "
            "pairwise=False; tiles would sample each pair of inputs separately"
        )
    diagonal = np.flatnonzero(rows == cols)

    def assemble(blocks):
        if blocks is None:
            return None
        full = jnp.zeros((n_tiles, n_tiles, *blocks.shape[1:]), blocks.dtype)
        full = full.at[rows, cols].set(blocks)
        full = full.at[cols, rows].set(jax.vmap(mirror)(blocks))
        full = jnp.moveaxis(full, 2, 1).reshape(n_tiles * t, n_tiles * t, *blocks.shape[3:])
        return full[:n, :n]

    def per_example(stacked):
        if stacked is None:
            return None
        return stacked[diagonal].reshape(n_tiles * t, *stacked.shape[2:])[:n]

    return out.replace(
        nngp=assemble(out.nngp),
        ntk=assemble(out.ntk),
        cov1=per_example(out.cov1),
        cov2=None,
        mask1=per_example(out.mask1),
        mask2=None,
        shape1=(n, *out.shape1[1:]),
        shape2=(n, *out.shape2[1:]),
        x1_is_x2=True,
    )
