"""The NTK integrand in factored (low-rank) form, for the joint estimator.

With joint factors ``V = U_V U_V^T``, ``M = U_M U_M^T`` (rows over all (input,
position) pairs, masked keys' rows zero) and the row-wise Khatri-Rao product
``KR(X, Y)[a] = X[a] (x) Y[a]``, ``V o M = KR(U_V, U_M) KR(U_V, U_M)^T`` and per
draw, with ``P = zeta(G(x))``, ``P' = zeta(G(x'))`` (``docs/standard-scaling.md``,
section 4):

    P V P'^T            = (P U_V)(P' U_V)^T
    <J_a V J'_b^T, M>   = [(A - B)(A' - B')^T]_ab       (SOFTMAX)
                          A = P KR(U_V, U_M),  B = KR(P U_V, P U_M)
                        = [(Psi KR)(Psi' KR)^T]_ab      (elementwise, Psi = zeta'(G))

so a pair costs ``O(L^2 r)`` instead of ``O(L^3)``, ``r = r_V + r_W + r_V (r_S + r_T)``
(``W = T_v + 2V``). The Hadamard weights ``2S + T`` and ``S`` are deterministic, so
they are applied to the chunk means. The ranks must be known in Python (shapes):
:func:`joint_factors` eigen-factors the kernels eagerly and returns ``None`` when the
inputs are traced or the factored form would not be cheaper.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from infattn.logits.chunks import pad_axes
from infattn.logits.inputs import AttentionInputs
from infattn.logits.integrands import Features, Pairs, prepare_pairs
from infattn.logits.sampling import sym_factor

Array = jax.Array

EIGH_FLOPS = 9
"""Rough cost of a symmetric eigendecomposition of order ``n``: ``EIGH_FLOPS n^3``."""

FACTOR_DRAWS = 64
"""The four factorisations are tried only when they cost less than this many
draws of the ``O(L^3)`` path."""


class Factors(NamedTuple):
    """Factors of the joint kernels, ``(..., L, r)`` each (inputs leading): ``v`` of
    ``V``, ``w1`` of ``T_v + 2V``, ``s`` of ``S`` (``None``: ``S = V``, masked keys
    aside), ``t`` of ``T`` (masked keys' rows zero; ``r`` the numerical rank,
    possibly 0)."""

    v: Array
    w1: Array
    s: Array | None
    t: Array


def full_pair_flops(l: int, mechanism: str) -> int:
    """Flops of one pair and evaluation on the ``O(L^3)`` path (nngp + NTK):
    24 products of ``L x L`` matrices for SOFTMAX, 8 for elementwise mechanisms.

    Example:
        >>> full_pair_flops(2, "RELU")
        128
    """
    return 2 * l**3 * (24 if mechanism == "SOFTMAX" else 8)


def factored_pair_flops(l: int, ranks: tuple[int, int, int, int], same: bool = False) -> int:
    """Flops of one pair and evaluation in factored form, projections included
    (``4 L^2 r``, ``r = r_V + r_W + r_V (r_S + r_T)``), for ranks ``(r_V, r_W, r_S, r_T)``;
    ``same``: ``S = V``, whose ``r_V^2`` Khatri-Rao columns hold ``r_V (r_V + 1) / 2``
    distinct ones.

    Example:
        >>> factored_pair_flops(2, (2, 1, 2, 0)), factored_pair_flops(2, (2, 1, 2, 0), True)
        (112, 96)
    """
    r_v, r_w, r_s, r_t = ranks
    r_vs = r_v * (r_v + 1) // 2 if same else r_v * r_s
    return 4 * l * l * (r_v + r_w + r_vs + r_v * r_t)


def ranks(f: Factors) -> tuple[int, int, int, int]:
    """``(r_V, r_W, r_S, r_T)``.

    Example:
        >>> z = jnp.zeros((1, 2, 0))
        >>> ranks(Factors(z, z, None, z))
        (0, 0, 0, 0)
    """
    return tuple(int((f.v if x is None else x).shape[-1]) for x in f)


def pair_flops(f: Factors) -> int:
    """:func:`factored_pair_flops` of these factors.

    Example:
        >>> z = jnp.zeros((1, 2, 1))
        >>> pair_flops(Factors(z, z, None, z[..., :0]))
        48
    """
    return factored_pair_flops(f.v.shape[-2], ranks(f), f.s is None)


@jax.jit
def _eigen_factors(inputs: AttentionInputs) -> tuple[Factors, Array, Array]:
    """Full-width eigen-factors ``(N, L, N L)`` of ``V``, ``T_v + 2V``, ``S``, ``T``
    (masked keys zeroed), their numerical ranks ``(4,)`` and whether ``S = V``."""
    kv = None if inputs.mask1 is None else ~inputs.mask1
    pairs = prepare_pairs(inputs.v, inputs.s, inputs.t, inputs.tv, kv, kv)
    n, l = pairs.v.shape[:2]
    mats = [x.reshape(n * l, n * l) for x in (pairs.v, pairs.w1, pairs.s, pairs.t)]
    if kv is not None:  # S and T with masked keys' rows zeroed too, like V
        valid = kv.reshape(n * l)
        mats[2:] = [jnp.where(valid[:, None] & valid[None], m, 0.0) for m in mats[2:]]
    same = jnp.all(mats[0] == mats[2])
    factors, lams = zip(*_distinct_factors(*mats, same), strict=True)
    rank = jnp.stack([jnp.sum(lam > 0) for lam in lams])
    return Factors(*(f.reshape(n, l, n * l) for f in factors)), rank, same


def _distinct_factors(
    v: Array, w1: Array, s: Array, t: Array, same: Array
) -> list[tuple[Array, Array]]:
    """:func:`sym_factor` of ``V``, ``W``, ``S``, ``T`` with one eigendecomposition
    for the usual cases: ``S = V`` (no positional embedding), ``W = 2V``
    (``T_v = 0``) and ``T = 0`` reuse ``V``'s or need none."""
    fv = sym_factor(v)
    doubled = (fv[0] * math.sqrt(2.0), 2.0 * fv[1])
    fw = lax.cond(jnp.all(w1 == 2.0 * v), lambda: doubled, lambda: sym_factor(w1))
    fs = lax.cond(same, lambda: fv, lambda: sym_factor(s))
    ft = lax.cond(
        jnp.all(t == 0), lambda: (jnp.zeros_like(t), jnp.zeros_like(t[0])), lambda: sym_factor(t)
    )
    return [fv, fw, fs, ft]


def joint_factors(
    inputs: AttentionInputs, mechanism: str, force: bool | None = None
) -> Factors | None:
    """Factors truncated to their numerical ranks, or ``None`` for the ``O(L^3)`` path.

    ``force``: ``None`` chooses by cost (:func:`factored_pair_flops` against
    :func:`full_pair_flops`, and factorisations cheaper than :data:`FACTOR_DRAWS`
    draws); ``True`` factors whenever possible; ``False`` never. Only for the joint
    estimator with NTK on concrete (untraced) inputs.

    Example:
        >>> x = jnp.ones((1, 1, 4, 4))
        >>> inp = AttentionInputs(x, x[0], None, x, x[0], None, 0 * x, 0 * x)
        >>> ranks(joint_factors(inp, "SOFTMAX"))
        (1, 1, 1, 0)
    """
    traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(inputs))
    if force is False or traced or not (inputs.joint and inputs.want_ntk):
        return None
    n, _, l, _ = inputs.s.shape
    full = full_pair_flops(l, mechanism) * n * n
    if force is None and 4 * EIGH_FLOPS * (n * l) ** 3 > FACTOR_DRAWS * full:
        return None
    factors, rank, same = _eigen_factors(inputs)
    f = Factors(*(f[..., :k] for f, k in zip(factors, (int(x) for x in rank), strict=True)))
    if bool(same):
        f = f._replace(s=None)
    if force is None and pair_flops(f) >= full_pair_flops(l, mechanism):
        return None
    return f


def blocked(f: Factors, nb: int, bs: int) -> Factors:
    """Factors padded to ``nb * bs`` inputs and blocked, ``(nb, bs, L, r)``.

    Example:
        >>> z = jnp.ones((3, 2, 1))
        >>> blocked(Factors(z, z, z, z), 2, 2).v.shape
        (2, 2, 2, 1)
    """
    return Factors(
        *(
            None if x is None else pad_axes(x, nb * bs, (0,)).reshape(nb, bs, *x.shape[1:])
            for x in f
        )
    )


def _kr(x: Array, y: Array | None) -> Array:
    """Row-wise Khatri-Rao product of ``(..., r)`` and ``(..., q)``: ``(..., r q)``;
    ``y`` ``None``: of ``x`` with itself, its ``r (r + 1) / 2`` distinct columns
    ``k <= l``, those with ``k < l`` times ``sqrt(2)`` (the same Gram matrices)."""
    if y is not None:
        return (x[..., :, None] * y[..., None, :]).reshape(*x.shape[:-1], -1)
    k, m = np.triu_indices(x.shape[-1])
    scale = np.where(k == m, 1.0, np.sqrt(2.0)).astype(x.dtype)
    return x[..., k] * x[..., m] * scale


def _project(p: Array, us: list[Array]) -> list[Array]:
    """``P_i U_i`` for all draws and each ``U`` of ``us``, in one product:
    ``p`` ``(s, bs, L, L)``, each ``U`` ``(bs, L, r)``; returns ``(s, bs, L, r)`` each."""
    y = jnp.einsum("siac,icr->siar", p, jnp.concatenate(us, axis=-1))
    ends = np.cumsum([u.shape[-1] for u in us])[:-1]
    return jnp.split(y, ends, axis=-1)


def _features(f: Features, u: Factors, mechanism: str) -> tuple[Array, Array, list[Array]]:
    """Per-input factored features of one block: ``P U_V``, ``P U_W`` and, for
    ``M = S`` and ``M = T`` (``None`` when ``r_T = 0``), ``A - B`` (SOFTMAX) or
    ``Psi KR(U_V, U_M)``; each ``(s, bs, L, r)``."""
    ms = [(m, _kr(u.v, m)) for m in (u.s, u.t) if m is None or m.shape[-1]]
    if mechanism == "SOFTMAX":
        us = [u.v, u.w1] + [x for m, kr in ms for x in ([kr] if m is None else [kr, m])]
        pv, pw, *rest = _project(f.phi, us)
        jac = []
        for m, _ in ms:
            a, rest = rest[0], rest[1:]
            if m is None:
                jac.append(a - _kr(pv, None))
            else:
                jac.append(a - _kr(pv, rest[0]))
                rest = rest[1:]
    else:
        pv, pw = _project(f.phi, [u.v, u.w1])
        jac = _project(f.psi, [kr for _, kr in ms]) if ms else []
    if u.t.shape[-1] == 0:
        jac.append(None)
    return pv, pw, jac


def _gram(x: Array, y: Array, w: Array) -> Array:
    """``sum_s w_s x_s y_s^T / sum(w)`` for ``(s, bs, L, r)`` features: ``(bs, L, bs, L)``
    (one product over draws and columns)."""
    s, bs, l, r = x.shape
    xs = (x * w[:, None, None, None]).transpose(1, 2, 0, 3).reshape(bs * l, s * r)
    ys = y.transpose(1, 2, 0, 3).reshape(bs * l, s * r)
    return (xs @ ys.T).reshape(bs, l, bs, l) / jnp.sum(w)


def chunk_means(
    left: Features,
    right: Features,
    u_left: Factors,
    u_right: Factors,
    pairs: Pairs,
    w: Array,
    mechanism: str,
    qk2: float,
    same: bool = False,
    ntk: bool = True,
) -> tuple[Array, Array | None]:
    """Chunk means of the nngp and NTK bracket of a block of pairs, ``(n1, L, n2, L)``
    (``ntk=False``: the nngp alone, the NTK ``None``).

    ``left``/``right``: features ``(s, n, L, L)`` of the draws; ``u_left``/``u_right``:
    the factors of the two blocks of inputs; ``pairs``: their :class:`Pairs` (``s``
    and ``t`` used as weights); ``w``: ``(s,)`` draw weights; ``same``: both blocks
    are the same (its features are computed once). Equal to the weighted
    mean of :func:`~infattn.logits.integrands.integrand` up to rounding.

    Example:
        >>> f = Features(jnp.full((1, 1, 2, 2), 0.5), None)
        >>> u = Factors(*[jnp.ones((1, 2, 1))] * 3, jnp.ones((1, 2, 0)))
        >>> p = Pairs(*[jnp.ones((1, 2, 1, 2))] * 6)
        >>> y, t = chunk_means(f, f, u, u, p, jnp.ones(1), "SOFTMAX", 1.0)
        >>> y.ravel().tolist(), t.ravel().tolist()
        ([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0])
    """
    if not ntk:
        (pv_l,) = _project(left.phi, [u_left.v])
        pv_r = pv_l if same else _project(right.phi, [u_right.v])[0]
        return _gram(pv_l, pv_r, w), None
    pv_l, pw_l, jac_l = _features(left, u_left, mechanism)
    pv_r, pw_r, jac_r = (pv_l, pw_l, jac_l) if same else _features(right, u_right, mechanism)
    nngp = _gram(pv_l, pv_r, w)
    ntk = _gram(pw_l, pw_r, w)
    s, t = pairs.s, pairs.t
    weights = (2.0 * s + t, s)
    for weight, jl, jr in zip(weights, jac_l, jac_r, strict=True):
        if jl is not None:
            ntk = ntk + qk2 * weight * _gram(jl, jr, w)
    return nngp, ntk
