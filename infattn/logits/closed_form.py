"""Closed-form expectations for the elementwise mechanisms (ABS, RELU, IDENTITY).

Each term ``E[zeta(G_ac) zeta(G'_bd)]`` is a bivariate Gaussian expectation with
correlation ``rho_ab rho_cd`` (``rho_ab = S_ab / sqrt(s_a s'_b)``):

* exactly, with the arc-cosine kernels (``O(L^4)`` per pair of inputs):
  :func:`elementwise_attention_exact`;
* for the part of degree ``<= K`` of the Hermite series of ``zeta`` (Mehler's
  formula, ``O(K L^2)`` per pair): :func:`hermite_closed_form`, the exact part of
  the Hermite variance-reduction schemes.

Derivation: ``docs/standard-scaling.md``, section 5.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from infattn.logits import hermite
from infattn.logits.inputs import AttentionInputs, StandardAttentionMC, attention_inputs
from infattn.logits.integrands import Pairs, from_flat, prepare_pairs
from infattn.logits.mechanisms import check_mechanism
from infattn.logits.sampling import batch_diagonal, position_diagonal, safe_rsqrt
from infattn.validation import check_std

Array = jax.Array

# Budget (in array elements) for the temporaries of one block of pairs.
TEMP_ELEMENTS = 2**24


class Correlations(NamedTuple):
    """Correlations of the logits of a pair of inputs, all ``(n1, n2, L, L)`` but the scales.

    ``rho_ab = S_ab / sqrt(s_a s'_b)`` (clipped to [-1, 1]); ``scale1`` ``(n1, .., L)``
    and ``scale2`` ``(.., n2, L)``: ``qk^(1/2) sqrt(s_a)``, so that a logit's standard
    deviation is ``sigma_ac = scale_a scale_c``; ``active``: both variances positive.
    """

    rho: Array
    scale1: Array
    scale2: Array
    active: Array


def correlations(s_cross: Array, d1: Array, d2: Array, qk2: float) -> Correlations:
    """:class:`Correlations` from ``S`` ``(n1, n2, L, L)`` and the position variances
    ``d1`` ``(n1, 1, L)`` (or ``(n1, n2, L)``) and ``d2`` ``(1, n2, L)`` (or ``(n1, n2, L)``).

    Example:
        >>> c = correlations(jnp.ones((1, 1, 1, 1)), jnp.ones((1, 1, 1)), jnp.ones((1, 1, 1)), 4.0)
        >>> float(c.rho[0, 0, 0, 0]), round(float(c.scale1[0, 0, 0]), 6)
        (1.0, 1.414214)
    """
    r1, r2 = safe_rsqrt(d1), safe_rsqrt(d2)
    rho = jnp.clip(s_cross * r1[..., :, None] * r2[..., None, :], -1.0, 1.0)
    active = (d1 > 0)[..., :, None] & (d2 > 0)[..., None, :]
    root_qk = qk2**0.25
    sq1, sq2 = jnp.sqrt(jnp.maximum(d1, 0.0)), jnp.sqrt(jnp.maximum(d2, 0.0))
    return Correlations(rho, root_qk * sq1, root_qk * sq2, active)


def _hermite_mean(
    coeffs: tuple[float, ...], corr: Correlations, w: Array, homogeneous: bool
) -> Array:
    """``sum_cd w_cd E[f(G_ac) f(G'_bd)]`` for the truncated Hermite series
    ``f = sum_k c_k He_k`` (Mehler: ``E = sum_k c_k^2 k! rho^k``), with
    ``rho_{ac,bd} = rho_ab rho_cd``; ``homogeneous``: ``f`` has degree 1 in the
    logit's scale (``zeta``; not ``zeta'``). ``O(K L^2)``."""
    rho, act = corr.rho, corr.active
    if homogeneous:
        w = w * corr.scale1[..., :, None] * corr.scale2[..., None, :]
    w = jnp.where(act, w, 0.0)
    out = jnp.zeros_like(rho)
    rk_cd = jnp.ones_like(rho)
    rk_ab = jnp.where(act, 1.0, 0.0)
    for k, c in enumerate(coeffs):
        if k:
            rk_cd, rk_ab = rk_cd * rho, rk_ab * rho
        if c:
            mk = jnp.sum(w * rk_cd, axis=(-2, -1), keepdims=True)
            out = out + (c * c * math.factorial(k)) * mk * rk_ab
    if homogeneous:
        out = out * corr.scale1[..., :, None] * corr.scale2[..., None, :]
    return out


def _arc_cosine(mechanism: str, rho: Array) -> tuple[Array, Array]:
    """``E[zeta(u) zeta(v)]`` and ``E[zeta'(u) zeta'(v)]`` for unit-variance
    Gaussians with correlation ``rho``."""
    rho = jnp.clip(rho, -1.0, 1.0)
    if mechanism == "IDENTITY":
        return rho, jnp.ones_like(rho)
    asin = jnp.arcsin(rho)
    root = jnp.sqrt(jnp.maximum(1.0 - rho * rho, 0.0))
    if mechanism == "ABS":
        return (2.0 / math.pi) * (root + rho * asin), (2.0 / math.pi) * asin
    return (root + rho * (0.5 * math.pi + asin)) / (2.0 * math.pi), 0.25 + asin / (2.0 * math.pi)


def _exact_mean(mechanism: str, corr: Correlations, w: Array, homogeneous: bool) -> Array:
    """Like :func:`_hermite_mean` for the whole of ``zeta`` (``zeta'``): ``O(L^4)``
    per pair, chunked over pairs."""

    def one(args: tuple[Array, Array, Array, Array, Array]) -> Array:
        rho_p, w_p, a1, a2, act_p = args  # one pair: (L, L), (L, L), (L,), (L,), (L, L)
        x = rho_p[:, :, None, None] * rho_p[None, None, :, :]  # (a,b,c,d)
        k = _arc_cosine(mechanism, x)[0 if homogeneous else 1]
        ww = jnp.where(act_p, w_p, 0.0)
        if homogeneous:
            ww = ww * a1[:, None] * a2[None, :]
        out = jnp.einsum("abcd,cd->ab", k, ww)
        if homogeneous:
            out = out * a1[:, None] * a2[None, :]
        return jnp.where(act_p, out, 0.0)

    n1, n2, l, _ = corr.rho.shape
    flat = (
        corr.rho.reshape(n1 * n2, l, l),
        w.reshape(n1 * n2, l, l),
        jnp.broadcast_to(corr.scale1, (n1, n2, l)).reshape(n1 * n2, l),
        jnp.broadcast_to(corr.scale2, (n1, n2, l)).reshape(n1 * n2, l),
        corr.active.reshape(n1 * n2, l, l),
    )
    bs = max(1, min(n1 * n2, TEMP_ELEMENTS // (4 * l**4)))
    return lax.map(one, flat, batch_size=bs).reshape(n1, n2, l, l)


def closed_form_parts(
    mechanism: str,
    coeffs: tuple[tuple[float, ...], tuple[float, ...]] | None,
    qk2: float,
    corr: Correlations,
    weights: Pairs,
) -> tuple[Array, Array | None]:
    """Expectations of the elementwise integrands, kernel layout ``(n1, n2, L, L)``.

    ``coeffs``: Hermite coefficients of ``zeta`` and ``zeta'`` (the truncated
    series, ``O(K L^2)`` per pair) or ``None`` (the exact mechanism, ``O(L^4)``);
    ``weights``: :class:`Pairs` in kernel layout with masked keys already zeroed
    (NTK iff ``weights.w1`` is given). Returns ``(nngp, ntk)``.

    Example:
        >>> one = jnp.ones((1, 1, 1, 1))
        >>> corr = correlations(one, jnp.ones((1, 1, 1)), jnp.ones((1, 1, 1)), 1.0)
        >>> nngp, _ = closed_form_parts("IDENTITY", None, 1.0, corr, Pairs(one))
        >>> float(nngp[0, 0, 0, 0])
        1.0
    """
    if coeffs is not None:

        def mean(w: Array, deriv: bool) -> Array:
            return _hermite_mean(coeffs[1 if deriv else 0], corr, w, not deriv)
    else:

        def mean(w: Array, deriv: bool) -> Array:
            return _exact_mean(mechanism, corr, w, not deriv)

    nngp = mean(weights.v, False)
    if weights.w1 is None:
        return nngp, None
    s, t = weights.s, weights.t
    ntk = mean(weights.w1, False) + qk2 * (
        (2.0 * s + t) * mean(weights.vs, True) + s * mean(weights.vt, True)
    )
    return nngp, ntk


def hermite_closed_form(
    mechanism: str, scheme: str, qk2: float, s_k: Array, d1: Array, d2: Array, pairs: Pairs
) -> tuple[Array, Array | None]:
    """The closed-form Hermite part of ``scheme`` in kernel layout ``(n1, n2, L, L)``.

    ``s_k``: ``S``; ``d1``, ``d2``: position variances as in :func:`correlations`;
    ``pairs``: flat-layout :class:`Pairs` (masked keys zeroed).

    Example:
        >>> one = jnp.ones((1, 1, 1, 1))
        >>> p = prepare_pairs(one)
        >>> d = jnp.ones((1, 1, 1))
        >>> float(hermite_closed_form("IDENTITY", "hermite", 1.0, one, d, d, p)[0].ravel()[0])
        1.0
    """
    weights = Pairs(*(None if x is None else from_flat(x) for x in pairs))
    coeffs = (
        hermite.coefficients(mechanism, False, scheme),
        hermite.coefficients(mechanism, True, scheme),
    )
    return closed_form_parts(mechanism, coeffs, qk2, correlations(s_k, d1, d2, qk2), weights)


def elementwise_attention_exact(
    qk: tuple[Array, Array, Array | None],
    v: tuple[Array, Array, Array | None],
    qk_ntk: Array | None,
    v_ntk: Array | None,
    key_mask1: Array | None,
    key_mask2: Array | None,
    mechanism: str,
    qk_std: float,
) -> StandardAttentionMC:
    """Exact infinite-head kernels for ABS, RELU and IDENTITY (no sampling).

    For elementwise ``zeta`` each term ``E[zeta(G_ac) zeta(G'_bd)]`` is a
    bivariate Gaussian expectation (arc-cosine kernels) with correlation
    ``rho_ab rho_cd``, ``rho_ab = S_ab / sqrt(S_aa S'_bb)``; likewise for
    ``zeta'`` in the NTK. Cost ``O(N1 N2 L^4)`` (chunked over pairs). Same
    arguments and return type as :func:`infattn.logits.standard_attention_mc`;
    the standard errors are zeros.

    Example:
        >>> s = jnp.eye(2)[None, None]  # one input, L = 2
        >>> out = elementwise_attention_exact((s, s[0], None), (s, s[0], None), None, None,
        ...                                   None, None, "RELU", 1.0)
        >>> out.nngp.shape, round(float(out.nngp[0, 0, 0, 0]), 4)  # 2 keys x E[relu(g)^2]
        ((1, 1, 2, 2), 1.0)
    """
    mechanism = check_mechanism(mechanism)
    if mechanism == "SOFTMAX":
        raise ValueError(
            "mechanism: expected an elementwise one (ABS, RELU, IDENTITY), got 'SOFTMAX'"
        )
    check_std(qk_std, "qk_std")
    inputs = attention_inputs(qk, v, qk_ntk, v_ntk, key_mask1, key_mask2)
    return _exact(inputs, mechanism=mechanism, qk2=float(qk_std) ** 2)


@functools.partial(jax.jit, static_argnames=("mechanism", "qk2"))
def _exact(inputs: AttentionInputs, *, mechanism: str, qk2: float) -> StandardAttentionMC:
    kv1 = None if inputs.mask1 is None else ~inputs.mask1
    kv2 = None if inputs.mask2 is None else ~inputs.mask2
    if inputs.joint:
        kv2 = kv1
        d1 = d2 = position_diagonal(batch_diagonal(inputs.s))
    else:
        d1, d2 = position_diagonal(inputs.s_cov1), position_diagonal(inputs.s_cov2)
    pairs = prepare_pairs(inputs.v, inputs.s, inputs.t, inputs.tv, kv1, kv2)
    weights = Pairs(*(None if x is None else from_flat(x) for x in pairs))
    corr = correlations(inputs.s, d1[:, None], d2[None], qk2)
    nngp, ntk = closed_form_parts(mechanism, None, qk2, corr, weights)
    if inputs.joint:
        cov1, cov2 = batch_diagonal(nngp), None
    else:
        cov1 = _exact_marginal(mechanism, qk2, inputs.s_cov1, inputs.v_cov1, kv1)
        cov2 = _exact_marginal(mechanism, qk2, inputs.s_cov2, inputs.v_cov2, kv2)
    zeros = jnp.zeros_like
    return StandardAttentionMC(
        nngp,
        cov1,
        cov2,
        ntk,
        zeros(nngp),
        zeros(cov1),
        None if cov2 is None else zeros(cov2),
        None if ntk is None else zeros(ntk),
    )


def _exact_marginal(mechanism: str, qk2: float, c_s: Array, c_v: Array, kv: Array | None) -> Array:
    """``E[zeta(G_i) V_ii zeta(G_i)^T]`` for each input alone: ``(N, L, L)``."""
    if kv is not None:
        c_v = jnp.where(kv[:, :, None] & kv[:, None, :], c_v, 0.0)
    d = position_diagonal(c_s)
    corr = correlations(c_s[:, None], d[:, None], d[:, None], qk2)
    return closed_form_parts(mechanism, None, qk2, corr, Pairs(c_v[:, None]))[0][:, 0]
