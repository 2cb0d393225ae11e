"""Joint estimator (``x2 is x1``): the logits of the whole batch drawn together.

Per chunk the logits of all inputs are drawn once (:func:`~infattn.logits.sampling.joint_logits`),
so each draw's batch kernel ``D V D^T`` (``D = blockdiag(zeta(G_i))``) is PSD and
the estimate, their average, is exactly symmetric PSD with ``cov1`` its batch
diagonal. Pair terms are accumulated over the upper triangle of blocks of inputs
(``K(x_j, x_i) = K(x_i, x_j)^T``). Without NTK and when ``V`` has numerical rank
``<= 2L``, the nngp sum ``sum_s Phi_s V Phi_s^T`` is formed as
``(Phi B)(Phi B)^T`` with ``B B^T = V`` (one large product instead of small ones).

Three pure functions make a run: :func:`prepare` (factorisations, blocked pair
data), :func:`step` (one chunk of draws) and :func:`finish` (kernel layout).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from infattn.logits import factored
from infattn.logits.chunks import (
    Accumulator,
    Estimate,
    Plan,
    accumulator,
    add_chunk,
    advance,
    batch_se,
    block_of,
    chunk_mean,
    chunk_weights,
    logit_std,
    pad_axes,
    replicate_means,
)
from infattn.logits.closed_form import hermite_closed_form
from infattn.logits.factored import Factors
from infattn.logits.inputs import AttentionInputs
from infattn.logits.integrands import Features, Pairs, features, from_flat, integrand, prepare_pairs
from infattn.logits.sampling import batch_diagonal, joint_factor, joint_logits, position_diagonal

Array = jax.Array

_V_BLOCK = 8  # columns per block of the low-rank factor of V


class Prepared(NamedTuple):
    """What every chunk of a joint run reuses (blocked layout ``(nb, bs, L, nb, bs, L)``)."""

    key: Array
    a: Array  # (N, L, R) joint factor of qk S
    n_active: Array  # nonzero column blocks of a
    pairs: Pairs  # blocked pair data
    sigma: Array  # (N_pad, L, L) logit standard deviations
    key_valid: Array | None  # (N_pad, 1, L)
    block_i: Array  # upper-triangle block pairs (i <= j)
    block_j: Array
    v_factor: Array | None  # (nb, bs, L, r_V) factor of V (nngp only), or None
    v_active: Array | None  # its nonzero column blocks
    use_v_factor: Array | None  # rank(V) small enough for the factor path
    factors: Factors | None  # (nb, bs, L, r) factors for the factored NTK, or None
    closed: tuple[Array, Array | None] | None  # Hermite closed-form part (kernel layout)


def _rank_block(n: int, l: int) -> int:
    return min(16, n * l)


@functools.partial(jax.jit, static_argnames=("plan",))
def prepare(
    inputs: AttentionInputs, key: Array, plan: Plan, factors: Factors | None = None
) -> Prepared:
    """Factorise ``qk S`` (and a low-rank ``V``) and block the pair data.

    ``factors``: those of :func:`~infattn.logits.factored.joint_factors` for the
    factored NTK path, or ``None`` (the ``O(L^3)`` path).

    Example:
        >>> k = jnp.eye(2)[None, None]
        >>> inp = AttentionInputs(k, k[0], None, k, k[0], None)
        >>> prepare(inp, jax.random.key(0), Plan("SOFTMAX", 1.0, "none", 4, 1)).a.shape
        (1, 2, 2)
    """
    s_k, v_k = inputs.s, inputs.v
    n, _, l, _ = s_k.shape
    bs = plan.bs
    qk = math.sqrt(plan.qk2)
    kv = None if inputs.mask1 is None else ~inputs.mask1
    d = position_diagonal(batch_diagonal(s_k))
    a, n_active = joint_factor(qk * s_k, _rank_block(n, l))
    nb = -(-n // bs)
    npad = nb * bs
    block_i, block_j = _upper_block_pairs(nb)
    pairs = prepare_pairs(v_k, s_k, inputs.t, inputs.tv, kv, kv)
    blocked = Pairs(
        *(
            None if x is None else pad_axes(x, npad, (0, 2)).reshape(nb, bs, l, nb, bs, l)
            for x in pairs
        )
    )
    sigma = pad_axes(logit_std(qk, d, d), npad, (0,))
    key_valid = None if kv is None else pad_axes(kv, npad, (0,))[:, None, :]
    v_factor = v_active = use_v_factor = None
    if not inputs.want_ntk:
        v_flat = pairs.v.reshape(n, l, n, l).transpose(0, 2, 1, 3)
        v_factor, v_active = joint_factor(v_flat, min(_V_BLOCK, n * l))
        use_v_factor = v_active * min(_V_BLOCK, n * l) <= min(2 * l, n * l)
        v_factor = pad_axes(v_factor, npad, (0,)).reshape(nb, bs, l, -1)
    closed = None
    if plan.scheme.startswith("hermite"):
        closed = hermite_closed_form(
            plan.mechanism, plan.scheme, plan.qk2, s_k, d[:, None], d[None], pairs
        )
    return Prepared(
        key, a, n_active, blocked, sigma, key_valid, block_i, block_j,
        v_factor, v_active, use_v_factor,
        None if factors is None else factored.blocked(factors, nb, bs), closed,
    )  # fmt: skip


def _upper_block_pairs(nb: int) -> tuple[Array, Array]:
    pairs = [(i, j) for i in range(nb) for j in range(nb) if j >= i]
    return jnp.asarray([p[0] for p in pairs], jnp.int32), jnp.asarray(
        [p[1] for p in pairs], jnp.int32
    )


State = tuple[Accumulator, Accumulator | None]


def init(prep: Prepared, plan: Plan) -> State:
    """Empty accumulators for the nngp (and the NTK when the inputs have one).

    Example:
        >>> k = jnp.eye(2)[None, None]
        >>> plan = Plan("SOFTMAX", 1.0, "none", 4, 1)
        >>> prep = prepare(AttentionInputs(k, k[0], None, k, k[0], None), jax.random.key(0), plan)
        >>> init(prep, plan)[0].moments.mean.shape
        (1, 1, 2, 1, 1, 2)
    """
    shape = prep.pairs.v.shape
    dt = prep.a.dtype
    ntk = None if prep.pairs.w1 is None else accumulator(shape, dt, plan.n_replicates)
    return accumulator(shape, dt, plan.n_replicates), ntk


@functools.partial(jax.jit, static_argnames=("plan", "ntk"), donate_argnames=("state",))
def step(
    prep: Prepared, state: State, c: Array, n_samples: Array, plan: Plan, ntk: bool = True
) -> State:
    """Add chunk ``c`` (``plan.s_chunk`` draws from ``fold_in(key, c)``; draws past
    ``n_samples`` are padding) to ``state``; ``ntk=False``: to the nngp only (the
    NTK's accumulator is left as it is).

    Example:
        >>> k = jnp.eye(2)[None, None]
        >>> plan = Plan("SOFTMAX", 1.0, "none", 4, 1)
        >>> prep = prepare(AttentionInputs(k, k[0], None, k, k[0], None), jax.random.key(0), plan)
        >>> float(step(prep, init(prep, plan), 0, 4, plan)[0].moments.count)
        4.0
    """
    nb, bs, l = prep.pairs.v.shape[:3]
    n = prep.a.shape[0]
    want_ntk = prep.pairs.w1 is not None and ntk
    g = joint_logits(
        prep.a, prep.n_active, jax.random.fold_in(prep.key, c), plan.s_chunk, _rank_block(n, l)
    )
    g = pad_axes(g, nb * bs, (1,))
    g = jnp.concatenate([sgn * g for sgn in plan.signs])  # antithetic twins stacked
    f = features(g, prep.sigma, prep.key_valid, plan.mechanism, plan.scheme, want_ntk)
    f = Features(*(None if x is None else x.reshape(-1, nb, bs, l, l) for x in f))
    w = chunk_weights(c, plan.s_chunk, n_samples, len(plan.signs), g.dtype)
    count = jnp.sum(w)

    def block(p: Array, state: State) -> State:
        i, j = block_of(prep.block_i, (p,)), block_of(prep.block_j, (p,))
        return _add_block(prep, state, f, w, count, c, i, j, plan, want_ntk)

    if prep.block_i.shape[0] == 1:  # one block: static indices, no loop (a smaller program)
        nngp, ntk_acc = _add_block(prep, state, f, w, count, c, 0, 0, plan, want_ntk)
    else:
        nngp, ntk_acc = lax.fori_loop(0, prep.block_i.shape[0], block, state)
    return advance(nngp, count, c), advance(ntk_acc, count, c) if want_ntk else ntk_acc


def _add_block(
    prep: Prepared,
    state: State,
    f: Features,
    w: Array,
    count: Array,
    c: Array,
    i: Array | int,
    j: Array | int,
    plan: Plan,
    ntk: bool,
) -> State:
    """Chunk means of the block pair ``(i, j)`` added to ``state`` (``ntk``: the NTK's too)."""
    pb = Pairs(
        *(None if x is None else block_of(x, (i, slice(None), slice(None), j)) for x in prep.pairs)
    )
    if not ntk:
        pb = Pairs(pb.v)
    left, right = (
        Features(*(None if x is None else block_of(x, (slice(None), k)) for x in f)) for k in (i, j)
    )

    def structured() -> tuple[Array, Array | None]:
        y, t = integrand(left, right, pb, plan.mechanism, plan.qk2)
        return chunk_mean(y, w), None if t is None else chunk_mean(t, w)

    if prep.factors is not None:
        uf = prep.factors
        u_i, u_j = (
            Factors(*(None if x is None else block_of(x, (k,)) for x in uf)) for k in (i, j)
        )
        same = prep.block_i.shape[0] == 1
        y, t = factored.chunk_means(
            left, right, u_i, u_j, pb, w, plan.mechanism, plan.qk2, same, ntk
        )
    elif pb.w1 is not None or prep.v_factor is None:
        y, t = structured()
    else:
        t = None
        y = lax.cond(
            prep.use_v_factor,
            lambda: _factor_nngp(left.phi, right.phi, prep, i, j, w, count),
            lambda: structured()[0],
        )
    index = (i, slice(None), slice(None), j)
    nngp = add_chunk(state[0], y, count, c, index)
    return nngp, state[1] if t is None else add_chunk(state[1], t, count, c, index)


def _factor_nngp(
    phi_i: Array, phi_j: Array, prep: Prepared, i: Array, j: Array, w: Array, count: Array
) -> Array:
    """``sum_s w_s (Phi_i B_i)(Phi_j B_j)^T / count``, ``(bs, L, bs, L)``, with ``B B^T = V``
    over the nonzero column blocks of ``B``."""
    _, bs, l, _ = prep.v_factor.shape
    vb = min(_V_BLOCK, prep.a.shape[0] * l)

    def col_block(k: Array, out: Array) -> Array:
        bk = lax.dynamic_slice_in_dim(
            prep.v_factor, k * vb, vb, axis=3, allow_negative_indices=False
        )
        yi = jnp.einsum("siac,icr->siar", phi_i, block_of(bk, (i,)))
        yj = jnp.einsum("siac,icr->siar", phi_j, block_of(bk, (j,)))
        yi = (yi * w[:, None, None, None]).reshape(-1, bs * l, vb)
        return out + jnp.einsum("sar,sbr->ab", yi, yj.reshape(-1, bs * l, vb))

    out = lax.fori_loop(0, prep.v_active, col_block, jnp.zeros((bs * l, bs * l), phi_i.dtype))
    return out.reshape(bs, l, bs, l) / count


@functools.partial(jax.jit, static_argnames=("n", "replicates"))
def finish(
    prep: Prepared,
    state: State,
    n_chunks: Array,
    n: int,
    replicates: bool = True,
    ntk_chunks: Array | None = None,
) -> tuple[Estimate, Estimate | None]:
    """The nngp and NTK :class:`~infattn.logits.chunks.Estimate` of ``n`` inputs,
    kernel layout ``(n, n, L, L)``, after ``n_chunks`` chunks (the NTK after
    ``ntk_chunks``, ``None``: the same; without the replicates unless ``replicates``).

    Example:
        >>> k = jnp.eye(2)[None, None]
        >>> plan = Plan("SOFTMAX", 1.0, "none", 4, 1)
        >>> prep = prepare(AttentionInputs(k, k[0], None, k, k[0], None), jax.random.key(0), plan)
        >>> state = step(prep, init(prep, plan), 0, 4, plan)
        >>> finish(prep, state, 1, 1)[0].mean.shape
        (1, 1, 2, 2)
    """
    closed = (None, None) if prep.closed is None else prep.closed

    def estimate(acc: Accumulator, cf: Array | None, chunks: Array) -> Estimate:
        def full(x: Array) -> Array:
            return _symmetric(_kernel_layout(x, n), cf)

        reps = replicate_means(acc) if replicates else None
        return Estimate(
            full(acc.moments.mean),
            _kernel_layout(batch_se(acc, chunks), n),
            None if reps is None else jax.vmap(full)(reps),
        )

    nngp = estimate(state[0], closed[0], n_chunks)
    if state[1] is None:
        return nngp, None
    return nngp, estimate(state[1], closed[1], n_chunks if ntk_chunks is None else ntk_chunks)


def _kernel_layout(x: Array, n: int) -> Array:
    """Blocked upper triangle ``(nb, bs, L, nb, bs, L)`` -> full ``(n, n, L, L)``
    (``x[J, :, :, I] = x[I, :, :, J]^T`` for ``J > I``)."""
    nb, bs, l = x.shape[:3]
    upper = jnp.triu(jnp.ones((nb, nb), bool))
    xt = x.transpose(3, 4, 5, 0, 1, 2)
    x = jnp.where(upper[:, None, None, :, None, None], x, xt)
    return from_flat(x.reshape(nb * bs, l, nb * bs, l))[:n, :n]


def _symmetric(k: Array, closed: Array | None) -> Array:
    """Add the closed-form part, then make ``K(x_j, x_i) = K(x_i, x_j)^T`` exact
    (equal up to rounding already)."""
    if closed is not None:
        k = k + closed
    return 0.5 * (k + k.transpose(1, 0, 3, 2))
