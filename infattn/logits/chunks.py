"""Chunks of draws: sizes, weights, and the running moments of chunk means.

Draws are taken in chunks of ``s`` (one batch of the batch-means standard error;
chunk ``c`` is drawn from ``fold_in(key, c)``), so a result depends on the seed,
the chunk size and the chunks taken, never on how the inputs are blocked. Each
chunk's mean updates running :class:`~infattn.statistics.Moments` of the chunk
means; with ``R`` replicates, chunk ``c`` also adds to the sum of sub-stream
``c mod R``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from infattn.statistics import Moments, combine

Array = jax.Array

TEMP_ELEMENTS = 2**24
"""Budget (in array elements) for the per-chunk temporaries of one block of pairs."""

FACTORED_TEMPS = 8
"""Per-block temporaries of the factored NTK path, in units of ``(bs L)^2``: its
Gram products (the draws' features, ``(s, bs, L, r)``, are small)."""

CHUNK_FLOPS = 2**32
"""Budget of floating-point operations per chunk (about 0.1 s on one CPU core), so
that an interrupt or a stopping rule is honoured within a fraction of a second."""


class Plan(NamedTuple):
    """Static choices of one estimator run (hashable: a ``jit`` static argument)."""

    mechanism: str
    qk2: float
    scheme: str
    s_chunk: int
    bs: int
    n_replicates: int = 0

    @property
    def signs(self) -> tuple[float, ...]:
        """Each draw ``G`` is evaluated at ``sign * G`` (antithetic: both signs)."""
        return (1.0, -1.0) if self.scheme == "antithetic" else (1.0,)


def choose_chunks(
    n1: int,
    n2: int,
    l: int,
    n_samples: int | None,
    want_ntk: bool,
    antithetic: bool,
    sample_chunk: int | None,
    input_chunk: int | None,
    pair_flops: int | None = None,
) -> tuple[int, int]:
    """Draws per chunk and inputs per block.

    A chunk is one batch of the batch-means standard error: by default 64 draws
    and at least ``min(n_samples, 64)`` batches (``n_samples`` ``None``: as many
    as needed). The per-chunk temporaries of one block of pairs (about
    ``temps * s * bs^2 * L^2`` elements; on the factored NTK path, given
    ``pair_flops``, :data:`FACTORED_TEMPS` ``(bs L)^2``) stay below
    :data:`TEMP_ELEMENTS`: the chunk shrinks to 16 draws before the inputs are
    split into blocks (of equal size, to avoid padding). Then a chunk shrinks
    (down to one draw) until it costs at most about :data:`CHUNK_FLOPS`
    (``pair_flops``: the cost of a pair and evaluation when known, e.g. on the
    factored NTK path; then the logits are not counted).

    Example:
        >>> choose_chunks(16, 16, 16, 12288, False, True, None, None)  # memory-bound
        (16, 16)
        >>> choose_chunks(2, 2, 512, None, False, True, None, None)  # cost-bound
        (1, 2)
        >>> choose_chunks(2, 2, 512, None, True, True, None, None, 4 * 512**2 * 52)  # factored
        (9, 2)
    """
    temps = (24 if want_ntk else 6) * (2 if antithetic else 1)
    n = max(n1, n2)

    def per_pair(s: int) -> int:
        """Temporaries per pair of inputs of a block."""
        return FACTORED_TEMPS * l * l if pair_flops is not None else temps * s * l * l

    def fits(s: int, bs: int) -> bool:
        return per_pair(s) * bs * bs <= TEMP_ELEMENTS

    if sample_chunk is None:
        s = 64 if n_samples is None else max(1, min(64, n_samples // 64))
        if input_chunk is None:
            while s > 16 and not fits(s, n):
                s //= 2
        flops = _flops_per_draw(n1, n2, l, want_ntk, antithetic, pair_flops)
        s = max(1, min(s, CHUNK_FLOPS // flops))
    else:
        s = sample_chunk if n_samples is None else max(1, min(sample_chunk, n_samples // 2))
    if input_chunk is None:
        bs = max(1, int(math.sqrt(TEMP_ELEMENTS / per_pair(s))))
        nb = -(-n // min(n, bs))
        bs = -(-n // nb)
    else:
        bs = min(n, input_chunk)
    return s, bs


def _flops_per_draw(
    n1: int, n2: int, l: int, want_ntk: bool, antithetic: bool, pair_flops: int | None = None
) -> int:
    """Rough cost of one draw: sampling the logits at full rank (``2 (N L)^3``
    for the joint factor) and ``2 L^3`` per pair and product (about 2 products
    for the nngp, 40 with the NTK), twice with antithetic twins; or
    ``pair_flops`` per pair and evaluation when given."""
    n = max(n1, n2)
    twins = 2 if antithetic else 1
    if pair_flops is not None:
        return n1 * n2 * pair_flops * twins
    per_pair = 2 * l**3 * (40 if want_ntk else 2) * twins
    return 2 * (n * l) ** 3 + n1 * n2 * per_pair


def chunk_weights(c: Array, s_chunk: int, n_samples: Array, n_signs: int, dt: jnp.dtype) -> Array:
    """Weights ``(n_signs * s_chunk,)`` of the stacked evaluations of chunk ``c``:
    1 per draw (``1 / n_signs`` per sign), 0 for draws past ``n_samples``.

    Example:
        >>> chunk_weights(1, 4, 6, 1, jnp.float32).tolist()
        [1.0, 1.0, 0.0, 0.0]
    """
    w = (c * s_chunk + jnp.arange(s_chunk) < n_samples).astype(dt)
    return jnp.tile(w, n_signs) / n_signs


def chunk_mean(y: Array, weight: Array) -> Array:
    """Weighted mean over the leading (draw) axis of ``y`` (``(s, *shape)``).

    A matrix-vector product (XLA's CPU reductions over a leading axis are several
    times slower).

    Example:
        >>> float(chunk_mean(jnp.array([1.0, 3.0, 9.0]), jnp.array([1.0, 1.0, 0.0])))
        2.0
    """
    s = y.shape[0]
    return (weight @ y.reshape(s, -1)).reshape(y.shape[1:]) / jnp.sum(weight)


class Estimate(NamedTuple):
    """A Monte Carlo estimate of a kernel: ``mean``, its standard error ``se`` (same
    shape) and the sub-stream estimates ``reps`` (``(R, *shape)``, or ``None``)."""

    mean: Array
    se: Array
    reps: Array | None


class Accumulator(NamedTuple):
    """Running moments of the chunk means of one kernel, ``(*shape)``.

    ``moments.count``: draws so far (a scalar); ``sums``: ``(R, *shape)`` sums of
    the draws of each sub-stream and ``counts`` ``(R,)`` their numbers of draws, or
    ``None`` without replicates.
    """

    moments: Moments
    sums: Array | None
    counts: Array | None


def accumulator(shape: tuple[int, ...], dtype: jnp.dtype, n_replicates: int) -> Accumulator:
    """An empty :class:`Accumulator` of kernels of ``shape``.

    Example:
        >>> accumulator((2,), jnp.float32, 3).sums.shape
        (3, 2)
    """
    moments = Moments(jnp.zeros((), dtype), jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))
    if not n_replicates:
        return Accumulator(moments, None, None)
    return Accumulator(
        moments, jnp.zeros((n_replicates, *shape), dtype), jnp.zeros(n_replicates, dtype)
    )


def block_of(x: Array, index: tuple) -> Array:
    """``x[index]``, ``index`` a tuple of in-range indices (Python or traced ints) and
    full slices ``slice(None)``: one ``dynamic_slice``, without NumPy indexing's
    handling of negative indices (a dozen operations per index in a compiled loop).

    Example:
        >>> block_of(jnp.arange(6).reshape(2, 3), (1,)).tolist()
        [3, 4, 5]
    """
    if not index:
        return x
    starts, sizes, kept = _window(x, index)
    return lax.dynamic_slice(x, starts, sizes, allow_negative_indices=False).reshape(kept)


def set_block(x: Array, index: tuple, value: Array) -> Array:
    """``x.at[index].set(value)`` for ``index`` as in :func:`block_of` (one
    ``dynamic_update_slice`` instead of a scatter).

    Example:
        >>> set_block(jnp.zeros((2, 3)), (1,), jnp.ones(3)).tolist()
        [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
    """
    value = jnp.asarray(value, x.dtype)
    if not index:
        return jnp.broadcast_to(value, x.shape)
    starts, sizes, _ = _window(x, index)
    return lax.dynamic_update_slice(x, value.reshape(sizes), starts, allow_negative_indices=False)


def _window(x: Array, index: tuple) -> tuple[list, list[int], list[int]]:
    """Start indices and sizes of the window ``index`` selects in ``x``, and the
    sizes of the axes it keeps (those of the slices)."""
    index = (*index, *[slice(None)] * (x.ndim - len(index)))
    full = [isinstance(k, slice) for k in index]
    starts = [0 if f else k for f, k in zip(full, index, strict=True)]
    sizes = [n if f else 1 for f, n in zip(full, x.shape, strict=True)]
    return starts, sizes, [n for f, n in zip(full, x.shape, strict=True) if f]


def _add_to_substream(x: Array, c: Array | int, index: tuple, value: Array) -> Array:
    """``x`` with ``value`` added to block ``index`` of sub-stream ``c mod R`` (``R``:
    ``x``'s first axis; ``lax.rem``: chunk indices are never negative, so NumPy's sign
    correction is not needed)."""
    r = c % x.shape[0] if isinstance(c, int) else lax.rem(c, x.shape[0])
    at = (r, *index)
    return set_block(x, at, block_of(x, at) + value)


def add_chunk(
    acc: Accumulator, mean: Array, count: Array, c: Array, index: tuple = ()
) -> Accumulator:
    """``acc`` after a chunk ``c`` of ``count`` draws with mean ``mean``.

    ``index``: a block of the accumulator (a tuple of indices and slices, see
    :func:`block_of`) that ``mean`` updates; the other entries get the same chunk
    from other calls, and the count is advanced by :func:`advance`.

    Example:
        >>> acc = add_chunk(accumulator((1,), jnp.float32, 2), jnp.array([4.0]), 2.0, 1)
        >>> advance(acc, 2.0, 1).sums.ravel().tolist()
        [0.0, 8.0]
    """
    m = acc.moments
    old = Moments(m.count, block_of(m.mean, index), block_of(m.m2, index))
    new = combine(old, Moments(count, mean, 0.0))
    moments = Moments(m.count, set_block(m.mean, index, new.mean), set_block(m.m2, index, new.m2))
    if acc.sums is None:
        return Accumulator(moments, None, None)
    return Accumulator(moments, _add_to_substream(acc.sums, c, index, count * mean), acc.counts)


def advance(acc: Accumulator, count: Array, c: Array) -> Accumulator:
    """Count chunk ``c``'s ``count`` draws once all blocks have been added."""
    m = acc.moments
    moments = Moments(m.count + count, m.mean, m.m2)
    if acc.counts is None:
        return Accumulator(moments, None, None)
    return Accumulator(moments, acc.sums, _add_to_substream(acc.counts, c, (), count))


def batch_se(acc: Accumulator, n_chunks: Array | int) -> Array:
    """Standard error of the mean of i.i.d. draws from ``n_chunks`` batch means:
    ``sigma^2 ~ M2 / (B - 1)``, ``SE^2 = sigma^2 / n``.

    Example:
        >>> acc = accumulator((), jnp.float32, 0)
        >>> for c, x in enumerate([1.0, 3.0]):
        ...     acc = advance(add_chunk(acc, jnp.array(x), 1.0, c), 1.0, c)
        >>> float(batch_se(acc, 2))
        1.0
    """
    return jnp.sqrt(acc.moments.m2 / ((n_chunks - 1) * acc.moments.count))


def replicate_means(acc: Accumulator) -> Array | None:
    """``(R, *shape)``: the mean of each sub-stream's draws (``None`` without them)."""
    if acc.sums is None:
        return None
    counts = acc.counts.reshape((-1,) + (1,) * (acc.sums.ndim - 1))
    return acc.sums / counts


def pad_axes(x: Array, n: int, axes: tuple[int, ...]) -> Array:
    """``x`` zero-padded to length ``n`` along ``axes``.

    Example:
        >>> pad_axes(jnp.ones((1, 2)), 3, (0,)).shape
        (3, 2)
    """
    widths = [(0, 0)] * x.ndim
    for ax in axes:
        widths[ax] = (0, n - x.shape[ax])
    return jnp.pad(x, widths)


def logit_std(qk: float, d1: Array, d2: Array) -> Array:
    """Standard deviations ``qk * sqrt(d_a d_c)`` of the logits, ``(n, L, L)``.

    Example:
        >>> logit_std(2.0, jnp.ones((1, 2)), jnp.ones((1, 2))).shape
        (1, 2, 2)
    """
    return qk * jnp.sqrt(jnp.maximum(d1[:, :, None] * d2[:, None, :], 0.0))
