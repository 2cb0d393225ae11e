"""Pairwise estimators (``x2`` given): each pair of inputs gets its exact joint law.

With ``x2`` given only ``cov1``, ``cov2`` and the cross block are known, so a
joint factor is not available. Each pair ``(x1_i, x2_j)`` is drawn from a
conditional factor (:func:`~infattn.logits.sampling.pair_factors`), sharing
``G(x1_i)`` across the pairs of ``x1_i`` and one Gaussian ``Z`` across all pairs
(harmless: each entry's law and SE are exact). ``cov1`` and ``cov2`` come from
the marginal law of each input alone.

Each estimator is three pure functions, ``prepare`` (factorisations), ``step``
(one chunk of draws) and ``finish`` (kernel layout), as in :mod:`infattn.logits.joint`.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from infattn.logits.chunks import (
    Accumulator,
    Estimate,
    Plan,
    accumulator,
    add_chunk,
    advance,
    batch_se,
    chunk_mean,
    chunk_weights,
    logit_std,
    pad_axes,
    replicate_means,
)
from infattn.logits.closed_form import hermite_closed_form
from infattn.logits.integrands import Pairs, features, from_flat, integrand, prepare_pairs
from infattn.logits.sampling import pair_factors, position_diagonal, sym_factor

Array = jax.Array
State = tuple[Accumulator, Accumulator | None]


class CrossPrepared(NamedTuple):
    """Per block of pairs ``(n_blocks, bs, ...)``: what every chunk reuses."""

    key: Array
    pairs: Pairs  # (n_blocks, bs, L, bs, L)
    f1: Array  # (n_blocks, bs, L, L) factor of qk cov1 of the block's x1 inputs
    factors: Array  # (n_blocks, bs, bs, L, 2L) conditional factors of the pairs
    sigma1: Array  # (n_blocks, bs, L, L) logit standard deviations of x1
    sigma2: Array  # (n_blocks, 1, bs, L, L) and of x2
    valid1: Array | None  # (n_blocks, bs, 1, L) valid keys of x1
    valid2: Array | None  # (n_blocks, 1, bs, 1, L) of x2
    closed: tuple[Array, Array | None] | None  # Hermite closed-form part (kernel layout)


def _block_index(nb1: int, nb2: int) -> tuple[Array, Array]:
    pairs = [(i, j) for i in range(nb1) for j in range(nb2)]
    return jnp.asarray([p[0] for p in pairs], jnp.int32), jnp.asarray(
        [p[1] for p in pairs], jnp.int32
    )


@functools.partial(jax.jit, static_argnames=("plan",))
def cross_prepare(inputs, key: Array, plan: Plan) -> CrossPrepared:
    """Factor ``qk cov1`` per input and each pair's conditional law; block the pairs.

    ``inputs``: :class:`~infattn.logits.inputs.AttentionInputs` with ``x2`` given.

    Example:
        >>> from infattn.logits.inputs import AttentionInputs
        >>> k = jnp.eye(2)[None, None]
        >>> inp = AttentionInputs(k, k[0], k[0], k, k[0], k[0])
        >>> cross_prepare(inp, jax.random.key(0), Plan("SOFTMAX", 1.0, "none", 4, 1)).factors.shape
        (1, 1, 1, 2, 4)
    """
    s_k = inputs.s
    n1, n2, l, _ = s_k.shape
    bs = plan.bs
    qk = math.sqrt(plan.qk2)
    kv1 = None if inputs.mask1 is None else ~inputs.mask1
    kv2 = None if inputs.mask2 is None else ~inputs.mask2
    d1, d2 = position_diagonal(inputs.s_cov1), position_diagonal(inputs.s_cov2)
    f1, lam1 = sym_factor(qk * inputs.s_cov1)
    nb1, nb2 = -(-n1 // bs), -(-n2 // bs)
    p1, p2 = nb1 * bs, nb2 * bs
    bi, bj = _block_index(nb1, nb2)
    pairs = prepare_pairs(inputs.v, s_k, inputs.t, inputs.tv, kv1, kv2)

    def blocked_pairs(x: Array) -> Array:
        x = pad_axes(pad_axes(x, p1, (0,)), p2, (2,)).reshape(nb1, bs, l, nb2, bs, l)
        return x[bi, :, :, bj]

    s_b = pad_axes(pad_axes(qk * s_k, p1, (0,)), p2, (1,)).reshape(nb1, bs, nb2, bs, l, l)
    f1b = pad_axes(f1, p1, (0,)).reshape(nb1, bs, l, l)
    lam1b = pad_axes(lam1, p1, (0,)).reshape(nb1, bs, l)
    c2b = pad_axes(qk * inputs.s_cov2, p2, (0,)).reshape(nb2, bs, l, l)

    def block_factors(ij: tuple[Array, Array]) -> Array:
        i, j = ij
        return pair_factors(s_b[i][:, j], f1b[i], lam1b[i], c2b[j])

    sig1 = pad_axes(logit_std(qk, d1, d1), p1, (0,)).reshape(nb1, bs, l, l)
    sig2 = pad_axes(logit_std(qk, d2, d2), p2, (0,)).reshape(nb2, bs, l, l)
    valid1 = None if kv1 is None else pad_axes(kv1, p1, (0,)).reshape(nb1, bs, 1, l)[bi]
    valid2 = None if kv2 is None else pad_axes(kv2, p2, (0,)).reshape(nb2, 1, bs, 1, l)[bj]
    closed = None
    if plan.scheme.startswith("hermite"):
        closed = hermite_closed_form(
            plan.mechanism, plan.scheme, plan.qk2, s_k, d1[:, None], d2[None], pairs
        )
    return CrossPrepared(
        key,
        Pairs(*(None if x is None else blocked_pairs(x) for x in pairs)),
        f1b[bi],
        lax.map(block_factors, (bi, bj)),
        sig1[bi],
        sig2[bj][:, None],
        valid1,
        valid2,
        closed,
    )


def cross_init(prep: CrossPrepared, plan: Plan) -> State:
    """Empty accumulators ``(n_blocks, bs, L, bs, L)`` for the nngp (and the NTK).

    Example:
        >>> from infattn.logits.inputs import AttentionInputs
        >>> k = jnp.eye(2)[None, None]
        >>> plan = Plan("SOFTMAX", 1.0, "none", 4, 1)
        >>> inp = AttentionInputs(k, k[0], k[0], k, k[0], k[0])
        >>> prep = cross_prepare(inp, jax.random.key(0), plan)
        >>> cross_init(prep, plan)[0].moments.mean.shape
        (1, 1, 2, 1, 2)
    """
    shape, dt = prep.pairs.v.shape, prep.f1.dtype
    ntk = None if prep.pairs.w1 is None else accumulator(shape, dt, plan.n_replicates)
    return accumulator(shape, dt, plan.n_replicates), ntk


@functools.partial(jax.jit, static_argnames=("plan",), donate_argnames=("state",))
def cross_step(prep: CrossPrepared, state: State, c: Array, n_samples: Array, plan: Plan) -> State:
    """Add chunk ``c`` of draws to every block of pairs.

    Example:
        >>> from infattn.logits.inputs import AttentionInputs
        >>> k = jnp.eye(2)[None, None]
        >>> plan = Plan("SOFTMAX", 1.0, "none", 4, 1)
        >>> inp = AttentionInputs(k, k[0], k[0], k, k[0], k[0])
        >>> prep = cross_prepare(inp, jax.random.key(0), plan)
        >>> float(cross_step(prep, cross_init(prep, plan), 0, 4, plan)[0].moments.count)
        4.0
    """
    l = prep.f1.shape[-1]
    dt = prep.f1.dtype
    z = jax.random.normal(jax.random.fold_in(prep.key, c), (plan.s_chunk, 2 * l, 2 * l), dt)
    w = chunk_weights(c, plan.s_chunk, n_samples, len(plan.signs), dt)
    count = jnp.sum(w)
    means = lax.map(functools.partial(_cross_block, z=z, w=w, plan=plan), prep[1:8])
    nngp = advance(add_chunk(state[0], means[0], count, c), count, c)
    if state[1] is None:
        return nngp, None
    return nngp, advance(add_chunk(state[1], means[1], count, c), count, c)


def _cross_block(block: tuple, z: Array, w: Array, plan: Plan) -> tuple[Array, Array | None]:
    """Chunk means ``(bs, L, bs, L)`` of one block of pairs."""
    pairs, f1, factors, sig1, sig2, valid1, valid2 = block
    l = f1.shape[-1]
    want_ntk = pairs.w1 is not None
    g1 = jnp.einsum("iak,skm,ibm->siab", f1, z[:, :l, :l], f1)
    g2 = jnp.einsum("ijak,skm,ijbm->sijab", factors, z, factors)
    g1 = jnp.concatenate([sgn * g1 for sgn in plan.signs])
    g2 = jnp.concatenate([sgn * g2 for sgn in plan.signs])
    left = features(g1, sig1, valid1, plan.mechanism, plan.scheme, want_ntk)
    right = features(g2, sig2, valid2, plan.mechanism, plan.scheme, want_ntk)
    y, t = integrand(left, right, pairs, plan.mechanism, plan.qk2)
    return chunk_mean(y, w), None if t is None else chunk_mean(t, w)


@functools.partial(jax.jit, static_argnames=("n1", "n2", "replicates"))
def cross_finish(
    prep: CrossPrepared, state: State, n_chunks: Array, n1: int, n2: int, replicates: bool = True
) -> tuple[Estimate, Estimate | None]:
    """The nngp and NTK estimates ``(n1, n2, L, L)`` after ``n_chunks`` chunks
    (without the replicates unless ``replicates``).

    Example:
        >>> from infattn.logits.inputs import AttentionInputs
        >>> k = jnp.eye(2)[None, None]
        >>> plan = Plan("SOFTMAX", 1.0, "none", 4, 1)
        >>> inp = AttentionInputs(k, k[0], k[0], k, k[0], k[0])
        >>> prep = cross_prepare(inp, jax.random.key(0), plan)
        >>> state = cross_step(prep, cross_init(prep, plan), 0, 4, plan)
        >>> cross_finish(prep, state, 1, 1, 1)[0].mean.shape
        (1, 1, 2, 2)
    """
    closed = (None, None) if prep.closed is None else prep.closed
    bs = prep.f1.shape[1]
    nb1, nb2 = -(-n1 // bs), -(-n2 // bs)

    def assemble(x: Array) -> Array:
        l = x.shape[-1]
        x = x.reshape(nb1, nb2, bs, l, bs, l).transpose(0, 2, 3, 1, 4, 5)
        return from_flat(x.reshape(nb1 * bs, l, nb2 * bs, l))[:n1, :n2]

    def estimate(acc: Accumulator, cf: Array | None) -> Estimate:
        def full(x: Array) -> Array:
            return assemble(x) if cf is None else assemble(x) + cf

        reps = replicate_means(acc) if replicates else None
        return Estimate(
            full(acc.moments.mean),
            assemble(batch_se(acc, n_chunks)),
            None if reps is None else jax.vmap(full)(reps),
        )

    nngp = estimate(state[0], closed[0])
    return nngp, None if state[1] is None else estimate(state[1], closed[1])


class MarginalPrepared(NamedTuple):
    """Per input: what every chunk of a marginal run reuses."""

    key: Array
    factor: Array  # (N, L, L) factor of qk cov
    sigma: Array  # (N, L, L) logit standard deviations
    v: Array  # (N, L, 1, L) values' covariance, masked keys zeroed
    valid: Array | None  # (N, 1, L) valid keys
    closed: Array | None  # (N, L, L) Hermite closed-form part


@functools.partial(jax.jit, static_argnames=("plan",))
def marginal_prepare(
    cov_s: Array, cov_v: Array, mask: Array | None, key: Array, plan: Plan
) -> MarginalPrepared:
    """Factor ``qk cov_s`` per input (``(N, L, L)``); ``mask`` ``(N, L)``: padding keys.

    Example:
        >>> c = jnp.eye(2)[None]
        >>> plan = Plan("RELU", 1.0, "hermite", 4, 1)
        >>> marginal_prepare(c, c, None, jax.random.key(0), plan).v.shape
        (1, 2, 1, 2)
    """
    qk = math.sqrt(plan.qk2)
    kv = None if mask is None else ~mask
    d = position_diagonal(cov_s)
    f, _ = sym_factor(qk * cov_s)
    if kv is not None:
        cov_v = jnp.where(kv[:, :, None] & kv[:, None, :], cov_v, 0.0)
    pairs = prepare_pairs(cov_v[:, None])  # (n, L, 1, L)
    closed = None
    if plan.scheme.startswith("hermite"):
        cf, _ = hermite_closed_form(
            plan.mechanism, plan.scheme, plan.qk2, cov_s[:, None], d[:, None], d[:, None], pairs
        )
        closed = cf[:, 0]
    valid = None if kv is None else kv[:, None, :]
    return MarginalPrepared(key, f, logit_std(qk, d, d), pairs.v, valid, closed)


def marginal_init(prep: MarginalPrepared, plan: Plan) -> State:
    """Empty accumulators ``(N, L, L)``.

    Example:
        >>> c = jnp.eye(2)[None]
        >>> plan = Plan("RELU", 1.0, "hermite", 4, 1)
        >>> marginal_init(marginal_prepare(c, c, None, jax.random.key(0), plan), plan)[1] is None
        True
    """
    return accumulator(prep.factor.shape, prep.factor.dtype, plan.n_replicates), None


@functools.partial(jax.jit, static_argnames=("plan",), donate_argnames=("state",))
def marginal_step(
    prep: MarginalPrepared, state: State, c: Array, n_samples: Array, plan: Plan
) -> State:
    """Add chunk ``c`` of draws (the same for every input) to ``state``.

    Example:
        >>> c = jnp.eye(2)[None]
        >>> plan = Plan("RELU", 1.0, "hermite", 4, 1)
        >>> prep = marginal_prepare(c, c, None, jax.random.key(0), plan)
        >>> float(marginal_step(prep, marginal_init(prep, plan), 0, 4, plan)[0].moments.count)
        4.0
    """
    l = prep.factor.shape[-1]
    dt = prep.factor.dtype
    w = chunk_weights(c, plan.s_chunk, n_samples, len(plan.signs), dt)
    count = jnp.sum(w)
    z = jax.random.normal(jax.random.fold_in(prep.key, c), (plan.s_chunk, l, l), dt)
    one = functools.partial(_marginal_one, z=z, w=w, plan=plan)
    means = lax.map(one, prep[1:5], batch_size=plan.bs)
    return advance(add_chunk(state[0], means, count, c), count, c), None


def _marginal_one(args: tuple, z: Array, w: Array, plan: Plan) -> Array:
    """Chunk mean ``(L, L)`` of one input."""
    fi, sgi, vi, kvi = args  # (L, L), (L, L), (L, 1, L), (1, L) | None
    g = jnp.einsum("ak,skm,bm->sab", fi, z, fi)[:, None]
    g = jnp.concatenate([sgn * g for sgn in plan.signs])
    f = features(
        g, sgi[None], None if kvi is None else kvi[None], plan.mechanism, plan.scheme, False
    )
    y, _ = integrand(f, f, Pairs(vi[None]), plan.mechanism, plan.qk2)
    return chunk_mean(y[:, 0, :, 0, :], w)


@functools.partial(jax.jit, static_argnames=("replicates",))
def marginal_finish(
    prep: MarginalPrepared, state: State, n_chunks: Array, replicates: bool = True
) -> tuple[Estimate, None]:
    """The estimate ``(N, L, L)`` of ``E[zeta(G_i) V_ii zeta(G_i)^T]`` per input
    (without the replicates unless ``replicates``).

    Example:
        >>> c = jnp.eye(2)[None]
        >>> plan = Plan("RELU", 1.0, "hermite", 4, 1)
        >>> prep = marginal_prepare(c, c, None, jax.random.key(0), plan)
        >>> state = marginal_step(prep, marginal_init(prep, plan), 0, 4, plan)
        >>> marginal_finish(prep, state, 1)[0].mean.shape
        (1, 2, 2)
    """
    acc = state[0]
    reps = replicate_means(acc) if replicates else None
    if prep.closed is not None:
        reps = None if reps is None else reps + prep.closed
    mean = acc.moments.mean if prep.closed is None else acc.moments.mean + prep.closed
    return Estimate(mean, batch_se(acc, n_chunks), reps), None
