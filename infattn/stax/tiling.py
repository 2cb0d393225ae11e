"""Symmetric tiling: ``kernel_fn(x, None)`` from the upper triangle of example tiles.

With ``x2 = None`` the kernel is symmetric, ``nngp[i, j, a, b] = nngp[j, i, b, a]``,
and for every layer whose entry for a pair ``(x, x')`` depends on that pair alone
(all closed-form layers) the block of tiles ``(I, J)`` equals
``kernel_fn(x[I], x[J])``. So the batch is cut into tiles of ``t`` examples and
only the ``T (T + 1) / 2`` tiles with ``I <= J`` are computed, one after the
other (``lax.fori_loop``: one compiled body, a working set of a few MB that stays
in cache), each written with its mirror in place into the output arrays (no
stacked tiles, no scatter: the output is written about once). This halves the
work for large batches and bounds the memory of intermediate kernels by one tile
pair.

With two inputs ``x1 != x2`` the same holds for every block of tiles ``(I, J)``
of ``x1`` and ``x2``: all ``T1 x T2`` tile pairs are computed in one loop
(:func:`rectangular_kernel`), each written into the output; the per-example
kernels ``cov1``/``cov2`` are recomputed with each tile (``(t1 + t2) / (t1 t2)``
extra work, about a quarter at the default tiles) and written at their rows.

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


def _examples_per_tile(positions: int) -> int:
    """The power of two ``t >= 4`` with ``t * t * P * P`` near :data:`TILE_ENTRIES`."""
    return max(2 ** int(math.log2(max(1.0, math.sqrt(TILE_ENTRIES) / positions))), 4)


def tile_size(n: int, positions: int) -> int | None:
    """Examples per tile (a power of two), or ``None`` when tiling would not help."""
    t = _examples_per_tile(positions)
    return t if n >= 3 * t else None


def tile_sizes(n1: int, n2: int, positions: int) -> tuple[int, int] | None:
    """Examples per tile of ``x1`` and of ``x2`` for ``kernel_fn(x1, x2)``, or ``None``
    when there would be fewer than four tile pairs.

    Each side is cut into as few tiles of at most :func:`tile_size`'s ``t`` as
    possible, of equal sizes (little padding).

    Example:
        >>> tile_sizes(25, 200, 64), tile_sizes(4, 4, 64)
        ((7, 8), None)
    """
    t = _examples_per_tile(positions)
    counts = (-(-n1 // t), -(-n2 // t))
    if counts[0] * counts[1] < 4:
        return None
    return -(-n1 // counts[0]), -(-n2 // counts[1])


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


def _place_block(full: Array | None, block: Array | None, i: Array, j: Array, t: tuple):
    """``full`` with ``block`` at tile ``(i, j)`` of sizes ``t = (t1, t2)`` (in place)."""
    if full is None:
        return None
    zeros = (0,) * (block.ndim - 2)
    return jax.lax.dynamic_update_slice(full, block, (i * t[0], j * t[1], *zeros))


def _place(full: Array | None, block: Array | None, i: Array, j: Array, t: int) -> Array | None:
    """``full`` with ``block`` at tile ``(i, j)`` and its mirror at ``(j, i)`` (in place)."""
    if full is None:
        return None
    full = _place_block(full, block, i, j, (t, t))
    return _place_block(full, mirror(block), j, i, (t, t))


def _place_rows(full: Array | None, block: Array | None, i: Array, t: int) -> Array | None:
    """``full`` with the per-example ``block`` ``(t, ...)`` at tile ``i``."""
    return None if full is None else jax.lax.dynamic_update_slice_in_dim(full, block, i * t, 0)


def _buffer(like: jax.ShapeDtypeStruct | None, lead: tuple[int, ...]) -> Array | None:
    """Zeros of shape ``(*lead, *like.shape[len(lead):])`` (``None`` for ``None``)."""
    if like is None:
        return None
    return jnp.zeros((*lead, *like.shape[len(lead) :]), like.dtype)


def _crop(a: Array | None, sizes: tuple[int, ...]) -> Array | None:
    """The first ``sizes[d]`` entries of each leading axis ``d`` (drops the padding)."""
    if a is None or a.shape[: len(sizes)] == sizes:
        return a
    return a[tuple(slice(n) for n in sizes)]


def _tiles(x: Array, t: int) -> Array:
    """``x`` ``(N, ...)`` zero-padded to whole tiles: ``(ceil(N / t), t, ...)``."""
    n_tiles = -(-x.shape[0] // t)
    padded = jnp.concatenate([x, jnp.zeros((n_tiles * t - x.shape[0], *x.shape[1:]), x.dtype)])
    return padded.reshape(n_tiles, t, *x.shape[1:])


def _pair_shape(pair: Callable[[int, int], Kernel]) -> Kernel:
    """The shapes of one tile pair's kernel; refuses kernels with replicates."""
    shape = jax.eval_shape(pair, 0, 0)
    if shape.replicates is not None:
        raise ValueError(
            "pairwise: a layer that makes replicates (Monte Carlo) must be built with "
            "pairwise=False; tiles would sample each pair of inputs separately"
        )
    return shape


def symmetric_kernel(
    rule: Callable[[Kernel], Kernel],
    to_kernel: Callable[[Array, Array], Kernel],
    x: Array,
    t: int,
) -> Kernel:
    """``rule(to_kernel(x, x))`` assembled from upper-triangular tiles of ``t`` examples.

    ``x``: ``(N, *spatial, C)``; ``to_kernel(x1, x2)`` builds the input kernel of a
    tile pair. Each tile pair is written with its mirror straight into the output
    (one loop carrying the ``(N, N, *S)`` arrays, updated in place). Returns the
    kernel with ``cov2 = None`` as ``kernel_fn(x, None)`` does.

    Example:
        >>> from infattn.stax.layer import inputs_to_kernel
        >>> x = jnp.arange(24.0).reshape(6, 2, 2)
        >>> tiled = symmetric_kernel(lambda k: k, inputs_to_kernel, x, 2)
        >>> bool(jnp.allclose(tiled.nngp, inputs_to_kernel(x).nngp))
        True
    """
    n = x.shape[0]
    tiles = _tiles(x, t)
    rows, cols = (jnp.asarray(a) for a in np.triu_indices(tiles.shape[0]))

    def pair(i, j):
        return rule(to_kernel(tiles[i], tiles[j]))

    shape = _pair_shape(pair)
    size = tiles.shape[0] * t
    init = (
        _buffer(shape.nngp, (size, size)),
        _buffer(shape.ntk, (size, size)),
        _buffer(shape.cov1, (size,)),
        _buffer(shape.mask1, (size,)),
    )

    def body(k, carry):
        i, j = rows[k], cols[k]
        out = pair(i, j)
        nngp, ntk, cov1, mask1 = carry
        return (
            _place(nngp, out.nngp, i, j, t),
            _place(ntk, out.ntk, i, j, t),
            _place_rows(cov1, out.cov1, i, t),
            _place_rows(mask1, out.mask1, i, t),
        )

    nngp, ntk, cov1, mask1 = jax.lax.fori_loop(0, rows.shape[0], body, init)
    return shape.replace(
        nngp=_crop(nngp, (n, n)),
        ntk=_crop(ntk, (n, n)),
        cov1=_crop(cov1, (n,)),
        cov2=None,
        mask1=_crop(mask1, (n,)),
        mask2=None,
        shape1=(n, *shape.shape1[1:]),
        shape2=(n, *shape.shape2[1:]),
        x1_is_x2=True,
    )


def rectangular_kernel(
    rule: Callable[[Kernel], Kernel],
    to_kernel: Callable[[Array, Array], Kernel],
    x1: Array,
    x2: Array,
    t: tuple[int, int],
) -> Kernel:
    """``rule(to_kernel(x1, x2))`` assembled from all pairs of tiles of ``t = (t1, t2)``
    examples of ``x1`` and ``x2``.

    ``x1``: ``(N1, *spatial, C)``, ``x2``: ``(N2, *spatial, C)``. One loop over the
    ``T1 x T2`` tile pairs writes each block into the ``(N1, N2, *S)`` outputs and the
    tiles' ``cov1``/``cov2``/masks at their rows.

    Example:
        >>> from infattn.stax.layer import inputs_to_kernel
        >>> x1, x2 = jnp.arange(24.0).reshape(6, 2, 2), jnp.ones((5, 2, 2))
        >>> tiled = rectangular_kernel(lambda k: k, inputs_to_kernel, x1, x2, (4, 2))
        >>> bool(jnp.allclose(tiled.nngp, inputs_to_kernel(x1, x2).nngp))
        True
    """
    tiles1, tiles2 = _tiles(x1, t[0]), _tiles(x2, t[1])
    count2 = tiles2.shape[0]

    def pair(i, j):
        return rule(to_kernel(tiles1[i], tiles2[j]))

    shape = _pair_shape(pair)
    size1, size2 = tiles1.shape[0] * t[0], count2 * t[1]
    fields = ("nngp", "ntk", "cov1", "cov2", "mask1", "mask2")
    leads = ((size1, size2), (size1, size2), (size1,), (size2,), (size1,), (size2,))
    init = tuple(_buffer(getattr(shape, f), lead) for f, lead in zip(fields, leads, strict=True))

    def body(k, carry):
        i, j = k // count2, k % count2
        out = pair(i, j)
        nngp, ntk, cov1, cov2, mask1, mask2 = carry
        return (
            _place_block(nngp, out.nngp, i, j, t),
            _place_block(ntk, out.ntk, i, j, t),
            _place_rows(cov1, out.cov1, i, t[0]),
            _place_rows(cov2, out.cov2, j, t[1]),
            _place_rows(mask1, out.mask1, i, t[0]),
            _place_rows(mask2, out.mask2, j, t[1]),
        )

    out = jax.lax.fori_loop(0, tiles1.shape[0] * count2, body, init)
    n1, n2 = x1.shape[0], x2.shape[0]
    sizes = ((n1, n2), (n1, n2), (n1,), (n2,), (n1,), (n2,))
    cropped = {f: _crop(a, n) for f, a, n in zip(fields, out, sizes, strict=True)}
    return shape.replace(**cropped, shape1=(n1, *shape.shape1[1:]), shape2=(n2, *shape.shape2[1:]))
