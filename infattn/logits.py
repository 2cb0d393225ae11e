"""Gaussian attention logits under standard ``1/sqrt(d)`` scaling.

In the infinite key-width limit the logits of one head are a Gaussian field:

    Cov(G_ac(x), G_bd(x')) = qk_std**2 * S_ab(x, x') * S_cd(x, x'),

``S`` being the covariance the queries and keys see ("Sigma tilde"). In the
infinite-head limit the attention output is a GP with

    nngp(x, x') = E[ zeta(G(x)) V(x, x') zeta(G(x'))^T ],

and the NTK bracket (derivation in ``docs/standard-scaling.md``)

    ntk_ab = E[ zeta(G) (T_v + 2 V) zeta(G')^T ]_ab
             + qk_std**2 E[ (2 S_ab + T_ab) <J_a V J'_b^T, S> + S_ab <J_a V J'_b^T, T> ].

This module estimates both (before the layer's ``ov_std**2`` and bias), with

* exact joint sampling of the logits of a whole batch (``x2 is None``):
  ``G_i = A_i Z A_i^T``, ``A A^T`` the joint ``S`` over (input, position),
  ``Z`` a standard Gaussian matrix; so the estimated batch kernel is an average
  of PSD matrices, exactly symmetric PSD, and ``cov1`` is its batch diagonal;
* exact pairwise (conditional) sampling for ``x1 != x2``;
* variance reduction: antithetic logits ``G -> -G`` for SOFTMAX and an exact
  Hermite decomposition for the elementwise mechanisms (ABS, RELU, IDENTITY):
  the degree <= 2 Hermite part has a closed-form expectation (Mehler), the
  remainder is orthogonal to it, so only the small residual product is
  sampled. Both keep the estimate an average of PSD terms;
* ``elementwise_attention_exact``: for ABS/RELU/IDENTITY the expectation has an
  exact O(L^4)-per-pair form (bivariate arc-cosine kernels), no sampling;
* ``sample_finite_head_law``: draws of the exact finite-head output law (a
  Gaussian scale mixture) for H heads and infinite key/value width.

All arrays are JAX arrays, positions flattened to ``L``; kernels use the
``(N1, N2, L, L)`` layout of :mod:`infattn.kernel`.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array

__all__ = [
    "DEFAULT_MC_SAMPLES",
    "MECHANISMS",
    "VARIANCE_REDUCTIONS",
    "StandardAttentionMC",
    "elementwise_attention_exact",
    "masked_softmax",
    "sample_finite_head_law",
    "standard_attention_mc",
]

MECHANISMS = ("SOFTMAX", "ABS", "RELU", "IDENTITY")
"""Attention mechanisms ``zeta`` supported under standard scaling."""

VARIANCE_REDUCTIONS = ("auto", "none", "antithetic", "hermite", "hermite2")
"""``none``: plain Monte Carlo; ``antithetic``: each draw ``G`` with ``-G``;
``hermite`` / ``hermite2`` (elementwise mechanisms): the degree <= 1 / <= 2
Hermite part in closed form, only the orthogonal residual sampled (``hermite2``
reduces the variance far more but its residual is heavy-tailed, so its
standard errors are slightly optimistic at moderate ``n_samples``); ``auto``:
``antithetic`` for SOFTMAX, ``hermite`` otherwise."""

DEFAULT_MC_SAMPLES = 12288
"""Default number of independent logit draws (see ``docs/standard-scaling.md``).

With it the nngp of the typical benchmark inputs (N=16, L=16, C=16, qk_std=1)
has a relative standard error below 1e-2 for every entry (relative to
``sqrt(nngp_aa(x,x) nngp_bb(x',x'))``), for SOFTMAX, ABS and RELU."""

# Hermite coefficients of zeta and zeta' for a unit-variance argument:
# f(u) ~ sum_k c_k He_k(u), He_k the probabilists' Hermite polynomials.
_SQ2PI = math.sqrt(2.0 * math.pi)
_S2OPI = math.sqrt(2.0 / math.pi)
_HERMITE_ZETA = {
    "ABS": (_S2OPI, 0.0, 1.0 / _SQ2PI),
    "RELU": (1.0 / _SQ2PI, 0.5, 0.5 / _SQ2PI),
    "IDENTITY": (0.0, 1.0, 0.0),
}
_HERMITE_DZETA = {
    "ABS": (0.0, _S2OPI, 0.0, -_S2OPI / 6.0),
    "RELU": (0.5, 1.0 / _SQ2PI, 0.0, -_S2OPI / 12.0),
    "IDENTITY": (1.0,),
}

# (degree of zeta's part, degree of zeta''s part) per scheme; the residuals
# then grow like |u| (degree 1) or u^2 (degree 2) in the tails.
_HERMITE_DEGREES = {"hermite": (1, 1), "hermite2": (2, 1)}


def _hermite_coeffs(mechanism: str, deriv: bool, scheme: str) -> tuple[float, ...]:
    """Coefficients of the closed-form Hermite part used by ``scheme``."""
    dz, dd = _HERMITE_DEGREES[scheme]
    if deriv:
        return _HERMITE_DZETA[mechanism][: dd + 1]
    return _HERMITE_ZETA[mechanism][: dz + 1]


# Budget (in array elements) for the per-chunk temporaries of one block of pairs.
_TEMP_ELEMENTS = 2**24


class StandardAttentionMC(NamedTuple):
    """Infinite-head attention kernels before ``ov_std**2`` scaling and bias.

    ``nngp``: ``(N1, N2, L, L)``; ``cov1``: ``(N1, L, L)``; ``cov2``:
    ``(N2, L, L)`` or ``None`` (``x2 is None``); ``ntk``: ``(N1, N2, L, L)`` or
    ``None`` (not requested). The ``*_se`` fields are the standard errors of
    the estimates, same shapes (zeros for exact parts).
    """

    nngp: Array
    cov1: Array
    cov2: Array | None
    ntk: Array | None
    nngp_se: Array
    cov1_se: Array
    cov2_se: Array | None
    ntk_se: Array | None


# --------------------------------------------------------------------------
# argument checks


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_optional_int(name: str, value: object, minimum: int) -> int | None:
    return None if value is None else _check_int(name, value, minimum)


def _check_mechanism(mechanism: object) -> str:
    if not isinstance(mechanism, str) or mechanism.upper() not in MECHANISMS:
        raise ValueError(f"mechanism must be one of {MECHANISMS}, got {mechanism!r}")
    return mechanism.upper()


def _check_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}: {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value}")
    return value


def _resolve_scheme(variance_reduction: object, mechanism: str) -> str:
    if variance_reduction not in VARIANCE_REDUCTIONS:
        raise ValueError(
            f"variance_reduction must be one of {VARIANCE_REDUCTIONS}, got {variance_reduction!r}"
        )
    if variance_reduction == "auto":
        return "antithetic" if mechanism == "SOFTMAX" else "hermite"
    if str(variance_reduction).startswith("hermite") and mechanism == "SOFTMAX":
        raise ValueError(
            f"variance_reduction={variance_reduction!r} needs an elementwise mechanism, not SOFTMAX"
        )
    return str(variance_reduction)


# --------------------------------------------------------------------------
# small helpers


def _bdiag(k: Array) -> Array:
    """``(N, N, L, L) -> (N, L, L)``: the batch diagonal ``k[i, i]``."""
    return jnp.diagonal(k, axis1=0, axis2=1).transpose(2, 0, 1)


def _pdiag(k: Array) -> Array:
    """``(..., L, L) -> (..., L)``: the position diagonal."""
    return jnp.diagonal(k, axis1=-2, axis2=-1)


def _sym_factor(m: Array, rel_tol: float | None = None) -> tuple[Array, Array]:
    """PSD factor of symmetric ``m`` (``(..., n, n)``), robust to singularity.

    Returns ``(F, lam)``: ``F @ F.T == m`` up to clipping of eigenvalues below
    ``rel_tol * max(lam)`` to zero; columns sorted by decreasing eigenvalue,
    columns of dropped eigenvalues exactly zero; ``lam`` the clipped eigenvalues.
    """
    n = m.shape[-1]
    if rel_tol is None:
        rel_tol = 10 * n * float(jnp.finfo(m.dtype).eps)
    lam, u = jnp.linalg.eigh(0.5 * (m + jnp.swapaxes(m, -1, -2)))
    lam, u = lam[..., ::-1], u[..., ::-1]
    tol = rel_tol * jnp.maximum(lam[..., :1], 0.0)
    lam = jnp.where(lam > tol, lam, 0.0)
    return u * jnp.sqrt(lam)[..., None, :], lam


def _safe_rsqrt(x: Array) -> Array:
    pos = x > 0
    return jnp.where(pos, lax.rsqrt(jnp.where(pos, x, 1.0)), 0.0)


def _hermite(u: Array, degree: int) -> list[Array]:
    """Probabilists' Hermite polynomials ``He_0..He_degree`` at ``u``."""
    out = [jnp.ones_like(u), u]
    for k in range(1, degree):
        out.append(u * out[k] - k * out[k - 1])
    return out[: degree + 1]


def _zeta(g: Array, mechanism: str) -> Array:
    if mechanism == "ABS":
        return jnp.abs(g)
    if mechanism == "RELU":
        return jnp.maximum(g, 0.0)
    return g


def _dzeta(g: Array, mechanism: str) -> Array:
    if mechanism == "ABS":
        return jnp.sign(g)
    if mechanism == "RELU":
        return (g > 0).astype(g.dtype)
    return jnp.ones_like(g)


def masked_softmax(g: Array, key_valid: Array) -> Array:
    """Softmax over the last axis restricted to valid keys.

    ``g``: ``(..., L)`` logits; ``key_valid``: boolean, broadcastable to ``g``.
    Masked keys get weight 0; a row with no valid key gets all zeros (no NaN).
    """
    g = jnp.where(key_valid, g, -jnp.inf)
    gmax = jnp.max(g, axis=-1, keepdims=True)
    gmax = jnp.where(jnp.isfinite(gmax), gmax, 0.0)
    e = jnp.where(key_valid, jnp.exp(g - gmax), 0.0)
    tot = jnp.sum(e, axis=-1, keepdims=True)
    return e / jnp.where(tot > 0, tot, 1.0)


# --------------------------------------------------------------------------
# sampling the logits


def _joint_factor(s_joint: Array, block: int) -> tuple[Array, Array]:
    """Factor of the joint ``(N, N, L, L)`` covariance for joint sampling.

    Returns ``A`` of shape ``(N, L, R)`` (``R = N*L`` rounded up to a multiple of
    ``block``; columns sorted by decreasing eigenvalue, zero past the numerical
    rank) and the number of column blocks that are not identically zero.
    """
    n, _, l, _ = s_joint.shape
    m = s_joint.transpose(0, 2, 1, 3).reshape(n * l, n * l)
    f, lam = _sym_factor(m)
    r = f.shape[1]
    pad = (-r) % block
    f = jnp.pad(f, ((0, 0), (0, pad)))
    lam = jnp.pad(lam, (0, pad))
    n_active = jnp.sum(lam[::block] > 0).astype(jnp.int32)
    return f.reshape(n, l, r + pad), n_active


def _joint_logits(a: Array, n_active: Array, key: Array, n_draws: int, block: int) -> Array:
    """Draws of ``G_i = A_i Z A_i^T`` for all inputs at once.

    ``a``: ``(N, L, R)`` joint factor (``R`` a multiple of ``block``);
    ``n_active``: column blocks of ``a`` that are nonzero (the rest are skipped:
    the cost is ``O(N L r^2)`` for numerical rank ``r``). ``Z``'s ``(k, l)``
    block is drawn from ``fold_in(fold_in(key, k), l)``, so the draws do not
    depend on the rank. Returns ``(n_draws, N, L, L)``.
    """
    n, l, r = a.shape
    dt = a.dtype
    a_flat = a.reshape(n * l, r)

    def zblock(k: Array, j: Array) -> Array:
        kk = jax.random.fold_in(jax.random.fold_in(key, k), j)
        z = jax.random.normal(kk, (n_draws, block, block), dt)
        return z.transpose(1, 0, 2).reshape(block, n_draws * block)

    def col_block(j: Array, g: Array) -> Array:
        def row_block(k: Array, y: Array) -> Array:
            ak = lax.dynamic_slice_in_dim(a_flat, k * block, block, axis=1)
            return y + ak @ zblock(k, j)  # (N L, draws * block): one matrix product

        y = lax.fori_loop(0, n_active, row_block, jnp.zeros((n * l, n_draws * block), dt))
        y = y.reshape(n, l, n_draws, block).transpose(0, 2, 1, 3).reshape(n, n_draws * l, block)
        aj = lax.dynamic_slice_in_dim(a, j * block, block, axis=2)
        return g + jnp.matmul(y, jnp.swapaxes(aj, 1, 2))  # (N, draws * L, L)

    g = lax.fori_loop(0, n_active, col_block, jnp.zeros((n, n_draws * l, l), dt))
    return g.reshape(n, n_draws, l, l).transpose(1, 0, 2, 3)


def _pair_factors(s_cross: Array, f1: Array, lam1: Array, cov2: Array) -> Array:
    """Conditional factors for pairwise sampling.

    For each pair ``(i, j)``: ``B_ij = [C_ij, R_ij]`` (``(L, 2L)``) with
    ``C = S_ij^T F_i^{+T}`` and ``R R^T = cov2_j - C C^T`` (Schur complement),
    so that ``[[F_i, 0], [C, R]]`` factors the joint ``2L x 2L`` covariance of
    ``(x1_i, x2_j)``. ``s_cross``: ``(n1, n2, L, L)``; ``f1``: ``(n1, L, L)``
    factor of cov1 with eigenvalues ``lam1`` ``(n1, L)``; ``cov2``: ``(n2, L, L)``.
    Returns ``(n1, n2, L, 2L)``.
    """
    inv = _safe_rsqrt(lam1)  # F_i = U sqrt(lam) -> F^{+T} = U diag(1/sqrt(lam))
    # F columns are U * sqrt(lam); U * (1/sqrt lam) = F * (1/lam)
    f_pinv_t = f1 * (inv * inv)[:, None, :]
    c = jnp.einsum("ijab,iak->ijbk", s_cross, f_pinv_t)
    schur = cov2[None] - jnp.einsum("ijbk,ijdk->ijbd", c, c)
    r, _ = _sym_factor(schur)
    return jnp.concatenate([c, r], axis=-1)


# --------------------------------------------------------------------------
# per-draw integrands


class _Pairs(NamedTuple):
    """Deterministic per-pair data, layout ``(n1, L, n2, L)`` (query x, key x')."""

    v: Array  # V with masked keys zeroed
    w1: Array | None  # T_v + 2 V (masked keys zeroed)
    s: Array | None  # S
    t: Array | None  # T
    vs: Array | None  # V * S (masked keys zeroed)
    vt: Array | None  # V * T (masked keys zeroed)


def _to_flat(k: Array) -> Array:
    """``(n1, n2, L, L) -> (n1, L, n2, L)``."""
    return k.transpose(0, 2, 1, 3)


def _from_flat(k: Array) -> Array:
    """``(..., n1, L, n2, L) -> (..., n1, n2, L, L)``."""
    return jnp.swapaxes(k, -3, -2)


def _right(w: Array, xr: Array) -> Array:
    """``w_ij xr_j^T``: ``w`` ``(n1, L, n2, L)``, ``xr`` ``(s, n2, L, L)`` or
    per pair ``(s, n1, n2, L, L)``. Returns ``(s, n1, L, n2, L)``."""
    if xr.ndim == 4:
        return jnp.einsum("icjd,sjbd->sicjb", w, xr)
    return jnp.einsum("icjd,sijbd->sicjb", w, xr)


def _left(xl: Array, y: Array) -> Array:
    """``xl_i y_ij``: ``xl`` ``(s, n1, L, L)``, ``y`` ``(s, n1, L, n2, L)``."""
    return jnp.einsum("siac,sicjb->siajb", xl, y)


def _sandwich(xl: Array, w: Array, xr: Array) -> Array:
    """``xl_i w_ij xr_j^T`` for all pairs: ``(s, n1, L, n2, L)``."""
    return _left(xl, _right(w, xr))


def _integrand(
    left: tuple[Array, Array | None],
    right: tuple[Array, Array | None],
    pairs: _Pairs,
    mechanism: str,
    qk2: float,
    want_ntk: bool,
) -> tuple[Array, Array | None]:
    """Per-draw nngp and NTK-bracket values for a block of pairs.

    ``left = (phi, psi)`` for the ``x1`` inputs (``(s, n1, L, L)``), ``right``
    for ``x2`` (``(s, n2, L, L)`` or per pair ``(s, n1, n2, L, L)``): ``phi`` the
    attention matrix (or its Hermite residual), ``psi`` the elementwise
    derivative (or its residual); for SOFTMAX ``psi`` is None and the softmax
    Jacobian ``diag(p) - p p^T`` is contracted in O(L^3) form.
    Returns ``(nngp, ntk)`` of shape ``(s, n1, L, n2, L)``.
    """
    phl, psl = left
    phr, psr = right
    v_r = _right(pairs.v, phr)  # V P'^T
    nngp = _left(phl, v_r)
    if not want_ntk:
        return nngp, None
    ntk = _sandwich(phl, pairs.w1, phr)

    def kj(vm: Array, m: Array) -> Array:
        """<J_a V J'_b^T, M> for all (a, b)."""
        if mechanism != "SOFTMAX":
            return _sandwich(psl, vm, psr)
        m_r = _right(m, phr)  # M P'^T
        out = _left(phl, _right(vm, phr))  # P (V o M) P'^T
        out = out - _left(phl, v_r * m_r)  # P ((V P'^T) o (M P'^T))
        pv = jnp.einsum("siac,icjd->siajd", phl, pairs.v)  # P V
        pm = jnp.einsum("siac,icjd->siajd", phl, m)  # P M
        if phr.ndim == 4:
            out = out - jnp.einsum("siajd,sjbd->siajb", pv * pm, phr)
        else:
            out = out - jnp.einsum("siajd,sijbd->siajb", pv * pm, phr)
        return out + nngp * _left(phl, m_r)  # (P V P'^T) o (P M P'^T)

    s, t = pairs.s, pairs.t
    ntk = ntk + qk2 * ((2.0 * s + t) * kj(pairs.vs, s) + s * kj(pairs.vt, t))
    return nngp, ntk


def _features(
    g: Array,
    sigma: Array | None,
    key_valid: Array | None,
    mechanism: str,
    scheme: str,
    want_ntk: bool,
) -> tuple[Array, Array | None]:
    """Per-input features of one draw of logits ``g`` (``(..., L, L)``).

    ``sigma``: standard deviations of the logits (same shape, broadcastable),
    needed by the Hermite scheme; ``key_valid``: ``(..., 1, L)`` or None.
    Returns ``(phi, psi)`` as used by :func:`_integrand`.
    """
    if mechanism == "SOFTMAX":
        valid = True if key_valid is None else key_valid
        return masked_softmax(g, valid), None
    active = None if key_valid is None else key_valid
    if scheme.startswith("hermite"):
        assert sigma is not None
        pos = sigma > 0
        active = pos if active is None else (pos & active)
        u = jnp.where(pos, g / jnp.where(pos, sigma, 1.0), 0.0)
        hz = _hermite_coeffs(mechanism, False, scheme)
        he = _hermite(u, max(len(hz), len(_hermite_coeffs(mechanism, True, scheme))) - 1)
        phi = sigma * (_zeta(u, mechanism) - sum(c * he[k] for k, c in enumerate(hz) if c))
        psi = None
        if want_ntk:
            hd = _hermite_coeffs(mechanism, True, scheme)
            psi = _dzeta(u, mechanism) - sum(c * he[k] for k, c in enumerate(hd) if c)
    else:
        if active is not None:
            g = jnp.where(active, g, 0.0)
        phi = _zeta(g, mechanism)
        psi = _dzeta(g, mechanism) if want_ntk else None
        if psi is not None and sigma is not None:
            pos = sigma > 0
            active = pos if active is None else (pos & active)
    if active is not None:
        phi = jnp.where(active, phi, 0.0)
        psi = None if psi is None else jnp.where(active, psi, 0.0)
    return phi, psi


# --------------------------------------------------------------------------
# closed-form (Hermite / exact) parts for elementwise mechanisms


def _corr_parts(s_cross: Array, d1: Array, d2: Array) -> tuple[Array, Array, Array, Array]:
    """``rho_ab = S_ab / sqrt(s_a s'_b)`` and active-position indicators.

    ``s_cross``: ``(n1, n2, L, L)``; ``d1``: ``(n1, 1, L)`` (or ``(n1, n2, L)``)
    variances of the row positions, ``d2``: ``(1, n2, L)`` (or ``(n1, n2, L)``)
    of the column positions. Returns ``(rho, sqrt_d1, sqrt_d2, act)`` with ``act``
    ``(n1, n2, L, L)`` True where both variances are positive.
    """
    r1, r2 = _safe_rsqrt(d1), _safe_rsqrt(d2)
    rho = s_cross * r1[..., :, None] * r2[..., None, :]
    rho = jnp.clip(rho, -1.0, 1.0)
    act = (d1 > 0)[..., :, None] & (d2 > 0)[..., None, :]
    return rho, jnp.sqrt(jnp.maximum(d1, 0.0)), jnp.sqrt(jnp.maximum(d2, 0.0)), act


def _hermite_mean(
    coeffs: tuple[float, ...],
    rho: Array,
    w: Array,
    scale1: Array | None,
    scale2: Array | None,
    act: Array,
) -> Array:
    """``sum_cd w_cd E[f(G_ac) f(G'_bd)]`` for the truncated Hermite series
    ``f = sum_k c_k He_k`` (Mehler: ``E = sum_k c_k^2 k! rho^k``), with
    ``rho_{ac,bd} = rho_ab rho_cd`` and optional homogeneity scales
    ``sigma_ac = scale_a scale_c`` (degree-1 mechanisms; None for zeta').
    All ``(n1, n2, L, L)`` except scales ``(n1, L)``, ``(n2, L)``. O(K L^2)."""
    if scale1 is not None:
        w = w * scale1[..., :, None] * scale2[..., None, :]
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
    if scale1 is not None:
        out = out * scale1[..., :, None] * scale2[..., None, :]
    return out


def _exact_kernels(mechanism: str, rho: Array) -> tuple[Array, Array]:
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


def _closed_form_parts(
    mechanism: str,
    coeffs: tuple[tuple[float, ...], tuple[float, ...]] | None,
    qk2: float,
    s_cross: Array,
    d1: Array,
    d2: Array,
    v: Array,
    w1: Array | None,
    s: Array | None,
    t: Array | None,
    vs: Array | None,
    vt: Array | None,
) -> tuple[Array, Array | None]:
    """Expectations of the elementwise integrands: Hermite-truncated
    (``coeffs`` given, O(K L^2) per pair) or exact (``coeffs`` None, O(L^4) per
    pair). Kernels ``(n1, n2, L, L)`` with masked keys already zeroed in the
    weights ``v, w1, vs, vt``; ``d1``/``d2`` position variances of S shaped as
    in :func:`_corr_parts`."""
    rho, sq1, sq2, act = _corr_parts(s_cross, d1, d2)
    # sigma_ac = qk sqrt(d_a d_c) = sc_a sc_c
    root_qk = qk2**0.25
    sc1, sc2 = root_qk * sq1, root_qk * sq2

    if coeffs is not None:
        cz, cd = coeffs

        def mean(w: Array, deriv: bool) -> Array:
            if deriv:
                return _hermite_mean(cd, rho, w, None, None, act)
            return _hermite_mean(cz, rho, w, sc1, sc2, act)
    else:

        def mean(w: Array, deriv: bool) -> Array:
            def one(args: tuple[Array, Array, Array, Array, Array]) -> Array:
                rho_p, w_p, a1, a2, act_p = args  # one pair: (L, L), (L,), (L,)
                x = rho_p[:, :, None, None] * rho_p[None, None, :, :]  # (a,b,c,d)
                k = _exact_kernels(mechanism, x)[1 if deriv else 0]
                ww = jnp.where(act_p, w_p, 0.0)
                if not deriv:
                    ww = ww * a1[:, None] * a2[None, :]
                out = jnp.einsum("abcd,cd->ab", k, ww)
                if not deriv:
                    out = out * a1[:, None] * a2[None, :]
                return jnp.where(act_p, out, 0.0)

            n1, n2, l, _ = rho.shape
            flat = (
                rho.reshape(n1 * n2, l, l),
                w.reshape(n1 * n2, l, l),
                jnp.broadcast_to(sc1, (n1, n2, l)).reshape(n1 * n2, l),
                jnp.broadcast_to(sc2, (n1, n2, l)).reshape(n1 * n2, l),
                act.reshape(n1 * n2, l, l),
            )
            bs = max(1, min(n1 * n2, _TEMP_ELEMENTS // (4 * l**4)))
            return lax.map(one, flat, batch_size=bs).reshape(n1, n2, l, l)

    nngp = mean(v, False)
    if w1 is None:
        return nngp, None
    assert s is not None and t is not None and vs is not None and vt is not None
    ntk = mean(w1, False) + qk2 * ((2.0 * s + t) * mean(vs, True) + s * mean(vt, True))
    return nngp, ntk


# --------------------------------------------------------------------------
# streaming mean / variance


class _Moments(NamedTuple):
    """Running mean and ``M2 = sum_b n_b (m_b - mean)^2`` over batch means."""

    mean: Array
    m2: Array


def _moments_init(shape: tuple[int, ...], dtype: jnp.dtype) -> _Moments:
    return _Moments(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


def _chunk_mean(y: Array, weight: Array) -> Array:
    """Weighted mean over the leading (draw) axis of ``y`` (``(s, *shape)``).

    ``weight`` ``(s,)``: 1 for a draw, 0 for padding (1/2 for each member of an
    antithetic pair); a matrix-vector product (XLA's CPU reductions over a
    leading axis are several times slower)."""
    s = y.shape[0]
    return (weight @ y.reshape(s, -1)).reshape(y.shape[1:]) / jnp.sum(weight)


def _moments_update(acc: _Moments, n_prev: Array, mb: Array, nb: Array) -> _Moments:
    """Chan's update with one batch of ``nb`` draws and mean ``mb``."""
    n = n_prev + nb
    delta = mb - acc.mean
    frac = nb / n
    return _Moments(acc.mean + delta * frac, acc.m2 + delta**2 * n_prev * frac)


def _moments_se(acc: _Moments, n: int, n_batches: int) -> Array:
    """Standard error of the mean of ``n`` i.i.d. draws from ``n_batches``
    batch means: ``sigma^2 ~ M2 / (n_batches - 1)``, ``SE^2 = sigma^2 / n``."""
    return jnp.sqrt(acc.m2 / ((n_batches - 1) * n))


# --------------------------------------------------------------------------
# the estimator


def _prepare_pairs(
    v: Array,
    s: Array | None,
    t: Array | None,
    tv: Array | None,
    kv1: Array | None,
    kv2: Array | None,
) -> _Pairs:
    """Kernel-layout ``(n1, n2, L, L)`` inputs -> flat layout, masked keys zeroed."""
    keymask = None
    if kv1 is not None or kv2 is not None:
        n1, n2, l, _ = v.shape
        a = jnp.ones((n1, l), bool) if kv1 is None else kv1
        b = jnp.ones((n2, l), bool) if kv2 is None else kv2
        keymask = a[:, None, :, None] & b[None, :, None, :]

    def zero(k: Array) -> Array:
        return k if keymask is None else jnp.where(keymask, k, 0.0)

    if t is None:
        return _Pairs(_to_flat(zero(v)), None, None, None, None, None)
    assert s is not None and tv is not None
    return _Pairs(
        _to_flat(zero(v)),
        _to_flat(zero(tv + 2.0 * v)),
        _to_flat(s),
        _to_flat(t),
        _to_flat(zero(v * s)),
        _to_flat(zero(v * t)),
    )


def _hermite_closed_form(
    mechanism: str,
    scheme: str,
    qk2: float,
    s_k: Array,
    d1: Array,
    d2: Array,
    pairs: _Pairs,
) -> tuple[Array, Array | None]:
    """Closed-form Hermite parts of ``scheme`` in kernel layout."""
    flat = [None if x is None else _from_flat(x) for x in pairs]
    coeffs = (_hermite_coeffs(mechanism, False, scheme), _hermite_coeffs(mechanism, True, scheme))
    return _closed_form_parts(mechanism, coeffs, qk2, s_k, d1, d2, *flat)


def _block_pairs(nb1: int, nb2: int, symmetric: bool) -> tuple[Array, Array]:
    pairs = [(i, j) for i in range(nb1) for j in range(nb2) if not symmetric or j >= i]
    return (
        jnp.asarray([p[0] for p in pairs], jnp.int32),
        jnp.asarray([p[1] for p in pairs], jnp.int32),
    )


def _pad_axes(x: Array, n: int, axes: tuple[int, ...]) -> Array:
    widths = [(0, 0)] * x.ndim
    for ax in axes:
        widths[ax] = (0, n - x.shape[ax])
    return jnp.pad(x, widths)


def _choose_chunks(
    n1: int,
    n2: int,
    l: int,
    n_samples: int,
    want_ntk: bool,
    antithetic: bool,
    sample_chunk: int | None,
    input_chunk: int | None,
) -> tuple[int, int]:
    """Draws per chunk and inputs per block.

    A chunk is one batch of the batch-means standard error: by default 64
    draws and at least ``min(n_samples, 64)`` batches. The per-chunk
    temporaries of one block of pairs (about ``temps * s * bs^2 * L^2``
    elements) stay below ``_TEMP_ELEMENTS``: the chunk shrinks to 16 draws
    before the inputs are split into blocks (of equal size, to avoid padding).
    """
    temps = (24 if want_ntk else 6) * (2 if antithetic else 1)
    n = max(n1, n2)

    def fits(s: int, bs: int) -> bool:
        return temps * s * bs * bs * l * l <= _TEMP_ELEMENTS

    if sample_chunk is None:
        s = max(1, min(64, n_samples // 64))
        if input_chunk is None:
            while s > 16 and not fits(s, n):
                s //= 2
    else:
        s = max(1, min(sample_chunk, n_samples // 2))
    if input_chunk is None:
        bs = max(1, int(math.sqrt(_TEMP_ELEMENTS / (temps * s * l * l))))
        nb = -(-n // min(n, bs))
        bs = -(-n // nb)
    else:
        bs = min(n, input_chunk)
    return s, bs


def _fill_lower(x: Array) -> Array:
    """``x``: ``(nb, bs, L, nb, bs, L)`` with the block upper triangle (``J >= I``)
    filled; returns it with ``x[J, :, :, I] = x[I, :, :, J]^T`` for ``J > I``."""
    nb = x.shape[0]
    upper = jnp.triu(jnp.ones((nb, nb), bool))
    xt = x.transpose(3, 4, 5, 0, 1, 2)
    return jnp.where(upper[:, None, None, :, None, None], x, xt)


def _sigma(qk: float, d1: Array, d2: Array) -> Array:
    """Standard deviations ``qk * sqrt(d_a d_c)`` of the logits, ``(n, L, L)``."""
    return qk * jnp.sqrt(jnp.maximum(d1[:, :, None] * d2[:, None, :], 0.0))


def _signs(scheme: str) -> tuple[float, ...]:
    return (1.0, -1.0) if scheme == "antithetic" else (1.0,)


def _chunk_weights(c: Array, s_chunk: int, n_samples: int, n_signs: int, dt: jnp.dtype) -> Array:
    """Weights of the ``n_signs * s_chunk`` stacked evaluations of chunk ``c``."""
    w = (c * s_chunk + jnp.arange(s_chunk) < n_samples).astype(dt)
    return jnp.tile(w, n_signs) / n_signs


_STATIC = ("mechanism", "qk2", "n_samples", "scheme", "s_chunk", "bs")


@functools.partial(jax.jit, static_argnames=(*_STATIC, "rank_block"))
def _mc_joint(
    s_k: Array,
    v_k: Array,
    t_k: Array | None,
    tv_k: Array | None,
    kmask: Array | None,
    *,
    mechanism: str,
    qk2: float,
    n_samples: int,
    key: Array,
    scheme: str,
    s_chunk: int,
    bs: int,
    rank_block: int,
) -> tuple[Array, Array, Array | None, Array | None]:
    """Joint sampling over the whole batch (``x2 is None``); kernel layout out.

    Per chunk the logits of all inputs are drawn once; the pair terms are
    accumulated over the block upper triangle (``K(x_j, x_i) = K(x_i, x_j)^T``).
    Without NTK and when ``V`` has numerical rank ``<= 2L``, the nngp sum
    ``sum_s Phi_s V Phi_s^T`` is formed as ``(Phi B)(Phi B)^T`` with ``B B^T = V``
    (one large matrix product per chunk instead of small per-pair ones).
    """
    n, _, l, _ = s_k.shape
    dt = s_k.dtype
    qk = math.sqrt(qk2)
    want_ntk = t_k is not None
    kv = None if kmask is None else ~kmask
    d = _pdiag(_bdiag(s_k))
    a, n_active = _joint_factor(qk * s_k, rank_block)
    signs = _signs(scheme)

    nb = -(-n // bs)
    npad = nb * bs
    bi, bj = _block_pairs(nb, nb, symmetric=True)
    pairs = _prepare_pairs(v_k, s_k, t_k, tv_k, kv, kv)
    pairs_b = jax.tree.map(
        lambda k: _pad_axes(k, npad, (0, 2)).reshape(nb, bs, l, nb, bs, l), pairs
    )
    sig = _pad_axes(_sigma(qk, d, d), npad, (0,))
    kvp = None if kv is None else _pad_axes(kv, npad, (0,))[:, None, :]
    shape = (nb, bs, l, nb, bs, l)
    acc0 = (_moments_init(shape, dt), _moments_init(shape, dt) if want_ntk else None)

    # low-rank V: V = B B^T with B's columns in blocks of `vb`, sorted by
    # eigenvalue; the factor path runs over the nonzero blocks only.
    vb = min(8, n * l)
    r_max = min(2 * l, n * l)
    if not want_ntk:
        bv, nv_active = _joint_factor(pairs.v.reshape(n, l, n, l).transpose(0, 2, 1, 3), vb)
        use_factor = nv_active * vb <= r_max
        bv = _pad_axes(bv, npad, (0,)).reshape(nb, bs, l, -1)

    def chunk(acc: tuple, c: Array) -> tuple[tuple, None]:
        g = _joint_logits(a, n_active, jax.random.fold_in(key, c), s_chunk, rank_block)
        g = _pad_axes(g, npad, (1,))
        g = jnp.concatenate([sgn * g for sgn in signs])  # antithetic twins stacked
        phi, psi = _features(g, sig, kvp, mechanism, scheme, want_ntk)
        phi = phi.reshape(-1, nb, bs, l, l)
        psi = None if psi is None else psi.reshape(-1, nb, bs, l, l)
        w = _chunk_weights(c, s_chunk, n_samples, len(signs), dt)
        nbatch = jnp.sum(w)
        n_prev = (c * s_chunk).astype(dt)

        def block(p: Array, acc: tuple) -> tuple:
            i, j = bi[p], bj[p]
            pb = jax.tree.map(lambda k: k[i][:, :, j], pairs_b)
            left = (phi[:, i], None if psi is None else psi[:, i])
            right = (phi[:, j], None if psi is None else psi[:, j])

            def structured() -> tuple[Array, Array | None]:
                y, t = _integrand(left, right, pb, mechanism, qk2, want_ntk)
                return _chunk_mean(y, w), None if t is None else _chunk_mean(t, w)

            if want_ntk:
                y, t = structured()
            else:
                t = None

                def factor() -> Array:
                    def col_block(k: Array, out: Array) -> Array:
                        bk = lax.dynamic_slice_in_dim(bv, k * vb, vb, axis=3)
                        yi = jnp.einsum("siac,icr->siar", phi[:, i], bk[i])
                        yj = jnp.einsum("siac,icr->siar", phi[:, j], bk[j])
                        yi = (yi * w[:, None, None, None]).reshape(-1, bs * l, vb)
                        return out + jnp.einsum("sar,sbr->ab", yi, yj.reshape(-1, bs * l, vb))

                    out = lax.fori_loop(0, nv_active, col_block, jnp.zeros((bs * l, bs * l), dt))
                    return out.reshape(bs, l, bs, l) / nbatch

                y = lax.cond(use_factor, factor, lambda: structured()[0])

            def upd(m: _Moments, y: Array) -> _Moments:
                old = _Moments(m.mean[i][:, :, j], m.m2[i][:, :, j])
                new = _moments_update(old, n_prev, y, nbatch)
                return _Moments(
                    m.mean.at[i, :, :, j].set(new.mean), m.m2.at[i, :, :, j].set(new.m2)
                )

            return (upd(acc[0], y), None if t is None else upd(acc[1], t))

        return lax.fori_loop(0, bi.shape[0], block, acc), None

    n_chunks = -(-n_samples // s_chunk)
    acc, _ = lax.scan(chunk, acc0, jnp.arange(n_chunks))

    def finish(m: _Moments) -> tuple[Array, Array]:
        out = []
        for x in (m.mean, _moments_se(m, n_samples, n_chunks)):
            x = _fill_lower(x).reshape(npad, l, npad, l)
            out.append(_from_flat(x)[:n, :n])
        return out[0], out[1]

    nngp, nngp_se = finish(acc[0])
    ntk, ntk_se = finish(acc[1]) if want_ntk else (None, None)
    if scheme.startswith("hermite"):
        cf_nngp, cf_ntk = _hermite_closed_form(
            mechanism, scheme, qk2, s_k, d[:, None], d[None], pairs
        )
        nngp = nngp + cf_nngp
        ntk = None if ntk is None else ntk + cf_ntk
    # exact symmetry K(x_j, x_i) = K(x_i, x_j)^T (equal up to rounding already)
    nngp = 0.5 * (nngp + nngp.transpose(1, 0, 3, 2))
    if ntk is not None:
        ntk = 0.5 * (ntk + ntk.transpose(1, 0, 3, 2))
    return nngp, nngp_se, ntk, ntk_se


@functools.partial(jax.jit, static_argnames=_STATIC)
def _mc_cross(
    s_k: Array,
    cov1: Array,
    cov2: Array,
    v_k: Array,
    t_k: Array | None,
    tv_k: Array | None,
    kmask1: Array | None,
    kmask2: Array | None,
    *,
    mechanism: str,
    qk2: float,
    n_samples: int,
    key: Array,
    scheme: str,
    s_chunk: int,
    bs: int,
) -> tuple[Array, Array, Array | None, Array | None]:
    """Pairwise conditional sampling (``x1 != x2``): each pair gets the exact
    joint law of ``(G(x1_i), G(x2_j))``; ``G(x1_i)`` is shared by its pairs."""
    n1, n2, l, _ = s_k.shape
    dt = s_k.dtype
    qk = math.sqrt(qk2)
    want_ntk = t_k is not None
    kv1 = None if kmask1 is None else ~kmask1
    kv2 = None if kmask2 is None else ~kmask2
    d1, d2 = _pdiag(cov1), _pdiag(cov2)
    f1, lam1 = _sym_factor(qk * cov1)
    signs = _signs(scheme)

    nb1, nb2 = -(-n1 // bs), -(-n2 // bs)
    p1, p2 = nb1 * bs, nb2 * bs
    pairs = _prepare_pairs(v_k, s_k, t_k, tv_k, kv1, kv2)
    pairs_b = jax.tree.map(
        lambda k: _pad_axes(_pad_axes(k, p1, (0,)), p2, (2,)).reshape(nb1, bs, l, nb2, bs, l),
        pairs,
    )
    s_b = _pad_axes(_pad_axes(qk * s_k, p1, (0,)), p2, (1,)).reshape(nb1, bs, nb2, bs, l, l)
    f1b = _pad_axes(f1, p1, (0,)).reshape(nb1, bs, l, l)
    lam1b = _pad_axes(lam1, p1, (0,)).reshape(nb1, bs, l)
    c2b = _pad_axes(qk * cov2, p2, (0,)).reshape(nb2, bs, l, l)
    sig1b = _pad_axes(_sigma(qk, d1, d1), p1, (0,)).reshape(nb1, bs, l, l)
    sig2b = _pad_axes(_sigma(qk, d2, d2), p2, (0,)).reshape(nb2, bs, l, l)
    kv1b = None if kv1 is None else _pad_axes(kv1, p1, (0,)).reshape(nb1, bs, 1, l)
    kv2b = None if kv2 is None else _pad_axes(kv2, p2, (0,)).reshape(nb2, 1, bs, 1, l)
    n_chunks = -(-n_samples // s_chunk)

    def block(ij: tuple[Array, Array]) -> tuple[Array, ...]:
        i, j = ij
        pb = jax.tree.map(lambda k: k[i][:, :, j], pairs_b)
        fi = f1b[i]
        b = _pair_factors(s_b[i][:, j], fi, lam1b[i], c2b[j])
        shape = (bs, l, bs, l)
        acc0 = (_moments_init(shape, dt), _moments_init(shape, dt) if want_ntk else None)

        def chunk(acc: tuple, c: Array) -> tuple[tuple, None]:
            z = jax.random.normal(jax.random.fold_in(key, c), (s_chunk, 2 * l, 2 * l), dt)
            g1 = jnp.einsum("iak,skm,ibm->siab", fi, z[:, :l, :l], fi)
            g2 = jnp.einsum("ijak,skm,ijbm->sijab", b, z, b)
            g1 = jnp.concatenate([sgn * g1 for sgn in signs])
            g2 = jnp.concatenate([sgn * g2 for sgn in signs])
            left = _features(
                g1, sig1b[i], None if kv1b is None else kv1b[i], mechanism, scheme, want_ntk
            )
            right = _features(
                g2, sig2b[j][None], None if kv2b is None else kv2b[j], mechanism, scheme, want_ntk
            )
            y, t = _integrand(left, right, pb, mechanism, qk2, want_ntk)
            w = _chunk_weights(c, s_chunk, n_samples, len(signs), dt)
            nbatch, n_prev = jnp.sum(w), (c * s_chunk).astype(dt)
            return (
                _moments_update(acc[0], n_prev, _chunk_mean(y, w), nbatch),
                None if t is None else _moments_update(acc[1], n_prev, _chunk_mean(t, w), nbatch),
            ), None

        acc, _ = lax.scan(chunk, acc0, jnp.arange(n_chunks))
        out = (acc[0].mean, _moments_se(acc[0], n_samples, n_chunks))
        if want_ntk:
            out = (*out, acc[1].mean, _moments_se(acc[1], n_samples, n_chunks))
        return out

    res = lax.map(block, _block_pairs(nb1, nb2, symmetric=False))

    def assemble(x: Array) -> Array:
        x = x.reshape(nb1, nb2, bs, l, bs, l).transpose(0, 2, 3, 1, 4, 5)
        return _from_flat(x.reshape(p1, l, p2, l))[:n1, :n2]

    nngp, nngp_se = assemble(res[0]), assemble(res[1])
    ntk, ntk_se = (assemble(res[2]), assemble(res[3])) if want_ntk else (None, None)
    if scheme.startswith("hermite"):
        cf_nngp, cf_ntk = _hermite_closed_form(
            mechanism, scheme, qk2, s_k, d1[:, None], d2[None], pairs
        )
        nngp = nngp + cf_nngp
        ntk = None if ntk is None else ntk + cf_ntk
    return nngp, nngp_se, ntk, ntk_se


@functools.partial(jax.jit, static_argnames=_STATIC)
def _mc_marginal(
    cov_s: Array,
    cov_v: Array,
    kmask: Array | None,
    *,
    mechanism: str,
    qk2: float,
    n_samples: int,
    key: Array,
    scheme: str,
    s_chunk: int,
    bs: int,
) -> tuple[Array, Array]:
    """``E[zeta(G_i) V_ii zeta(G_i)^T]`` for each input alone: ``(N, L, L)``."""
    l = cov_s.shape[-1]
    dt = cov_s.dtype
    qk = math.sqrt(qk2)
    kv = None if kmask is None else ~kmask
    d = _pdiag(cov_s)
    f, _ = _sym_factor(qk * cov_s)
    sig = _sigma(qk, d, d)
    signs = _signs(scheme)
    if kv is not None:
        cov_v = jnp.where(kv[:, :, None] & kv[:, None, :], cov_v, 0.0)
    pairs = _prepare_pairs(cov_v[:, None], None, None, None, None, None)  # (n, L, 1, L)
    n_chunks = -(-n_samples // s_chunk)

    def one(args: tuple) -> tuple[Array, Array]:
        fi, sgi, vi, kvi = args  # one input: (L, L), (L, L), (L, 1, L), (1, L) | None

        def chunk(acc: _Moments, c: Array) -> tuple[_Moments, None]:
            z = jax.random.normal(jax.random.fold_in(key, c), (s_chunk, l, l), dt)
            g = jnp.einsum("ak,skm,bm->sab", fi, z, fi)[:, None]
            g = jnp.concatenate([sgn * g for sgn in signs])
            feats = _features(
                g, sgi[None], None if kvi is None else kvi[None], mechanism, scheme, False
            )
            y, _ = _integrand(
                feats, feats, _Pairs(vi[None], None, None, None, None, None), mechanism, qk2, False
            )
            w = _chunk_weights(c, s_chunk, n_samples, len(signs), dt)
            n_prev = (c * s_chunk).astype(dt)
            return _moments_update(acc, n_prev, _chunk_mean(y[:, 0, :, 0, :], w), jnp.sum(w)), None

        acc, _ = lax.scan(chunk, _moments_init((l, l), dt), jnp.arange(n_chunks))
        return acc.mean, _moments_se(acc, n_samples, n_chunks)

    kv_arg = None if kv is None else kv[:, None, :]
    mean, se = lax.map(one, (f, sig, pairs.v, kv_arg), batch_size=bs)
    if scheme.startswith("hermite"):
        cf, _ = _hermite_closed_form(
            mechanism, scheme, qk2, cov_s[:, None], d[:, None], d[:, None], pairs
        )
        mean = mean + cf[:, 0]
    return mean, se


def _unpack(triple: object, name: str) -> tuple[Array, Array, Array | None]:
    if not isinstance(triple, tuple | list) or len(triple) != 3:
        raise TypeError(f"{name} must be a triple (nngp, cov1, cov2 or None)")
    k, c1, c2 = triple
    return jnp.asarray(k), jnp.asarray(c1), None if c2 is None else jnp.asarray(c2)


def standard_attention_mc(
    qk: tuple[Array, Array, Array | None],
    v: tuple[Array, Array, Array | None],
    qk_ntk: Array | None,
    v_ntk: Array | None,
    key_mask1: Array | None,
    key_mask2: Array | None,
    mechanism: str,
    qk_std: float,
    *,
    n_samples: int = DEFAULT_MC_SAMPLES,
    seed: int = 0,
    variance_reduction: str = "auto",
    sample_chunk: int | None = None,
    input_chunk: int | None = None,
) -> StandardAttentionMC:
    """Infinite-head kernels of standard-scaled attention by Monte Carlo.

    Args:
      qk: ``(nngp, cov1, cov2)`` of what queries/keys see (``S``, positional
        embedding included): ``nngp`` ``(N1, N2, L, L)``, ``cov1`` ``(N1, L, L)``,
        ``cov2`` ``(N2, L, L)`` or ``None`` meaning ``x2 is x1`` (then ``nngp`` is
        the full ``(N1, N1, L, L)`` block and all logits are sampled jointly).
      v: the same triple for the values' input covariance ``V``.
      qk_ntk: ``(N1, N2, L, L)`` NTK ``T`` seen by queries/keys, or ``None``.
      v_ntk: ``(N1, N2, L, L)`` values' input NTK ``T_v``, or ``None``. The NTK
        is computed iff both are given.
      key_mask1: ``(N1, L)`` bool, ``True`` at padding keys, or ``None``.
      key_mask2: ``(N2, L)`` likewise (ignored when ``cov2`` is ``None``).
      mechanism: ``'SOFTMAX'``, ``'ABS'``, ``'RELU'`` or ``'IDENTITY'``.
      qk_std: ``W_query_std * W_key_std``.
      n_samples: independent logit draws (each SOFTMAX draw is used with its
        antithetic twin ``-G``); >= 2.
      seed: Python int. The result is a deterministic function of the inputs,
        ``n_samples``, ``seed`` and ``sample_chunk`` (draws are keyed by seed and
        chunk index; the input blocking does not change them).
      variance_reduction: one of :data:`VARIANCE_REDUCTIONS`.
      sample_chunk, input_chunk: draws per chunk and inputs per block (memory).

    Returns:
      :class:`StandardAttentionMC` before the ``ov_std**2`` factor and bias.
      Masked keys get zero attention weight; rows of masked queries are not
      zeroed (the layer remasks).
    """
    n_samples = _check_int("n_samples", n_samples, 2)
    seed = _check_int("seed", seed, 0)
    mechanism = _check_mechanism(mechanism)
    qk_std = _check_float("qk_std", qk_std)
    scheme = _resolve_scheme(variance_reduction, mechanism)
    _check_optional_int("sample_chunk", sample_chunk, 1)
    _check_optional_int("input_chunk", input_chunk, 1)
    s_k, s_c1, s_c2 = _unpack(qk, "qk")
    v_k, v_c1, v_c2 = _unpack(v, "v")
    if (qk_ntk is None) != (v_ntk is None):
        raise ValueError("qk_ntk and v_ntk must both be given (NTK) or both be None")
    if (s_c2 is None) != (v_c2 is None):
        raise ValueError("qk and v must agree on whether cov2 is None")
    n1, n2, l, l2 = s_k.shape
    if l != l2 or v_k.shape != s_k.shape or s_c1.shape != (n1, l, l):
        raise ValueError(
            f"inconsistent shapes: qk nngp {s_k.shape}, v nngp {v_k.shape}, qk cov1 {s_c1.shape}"
        )
    dt = jnp.result_type(s_k.dtype, v_k.dtype, jnp.float32)
    if not jnp.issubdtype(dt, jnp.floating):
        dt = jnp.float32
    cast = lambda x: None if x is None else jnp.asarray(x, dt)  # noqa: E731
    want_ntk = qk_ntk is not None
    s_chunk, bs = _choose_chunks(
        n1, n2, l, n_samples, want_ntk, scheme == "antithetic", sample_chunk, input_chunk
    )
    km1 = None if key_mask1 is None else jnp.asarray(key_mask1, bool)
    km2 = None if key_mask2 is None else jnp.asarray(key_mask2, bool)
    key = jax.random.key(seed)
    static = dict(
        mechanism=mechanism,
        qk2=qk_std**2,
        n_samples=n_samples,
        key=key,
        scheme=scheme,
        s_chunk=s_chunk,
        bs=bs,
    )
    if s_c2 is None:
        if n1 != n2:
            raise ValueError("with cov2 None, qk nngp must be (N1, N1, L, L)")
        nngp, nngp_se, ntk, ntk_se = _mc_joint(
            cast(s_k),
            cast(v_k),
            cast(qk_ntk),
            cast(v_ntk),
            km1,
            rank_block=min(16, n1 * l),
            **static,
        )
        return StandardAttentionMC(
            nngp, _bdiag(nngp), None, ntk, nngp_se, _bdiag(nngp_se), None, ntk_se
        )
    nngp, nngp_se, ntk, ntk_se = _mc_cross(
        cast(s_k),
        cast(s_c1),
        cast(s_c2),
        cast(v_k),
        cast(qk_ntk),
        cast(v_ntk),
        km1,
        km2,
        **static,
    )
    marg = dict(static, bs=max(1, min(n1, n2, 64)), key=jax.random.fold_in(key, 0))
    cov1, cov1_se = _mc_marginal(cast(s_c1), cast(v_c1), km1, **marg)
    marg["key"] = jax.random.fold_in(key, 1)
    cov2, cov2_se = _mc_marginal(cast(s_c2), cast(v_c2), km2, **marg)
    return StandardAttentionMC(nngp, cov1, cov2, ntk, nngp_se, cov1_se, cov2_se, ntk_se)


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
    arguments and return type as :func:`standard_attention_mc`; the standard
    errors are zeros.
    """
    mechanism = _check_mechanism(mechanism)
    if mechanism == "SOFTMAX":
        raise ValueError("mechanism must be elementwise (ABS, RELU, IDENTITY), not SOFTMAX")
    qk2 = _check_float("qk_std", qk_std) ** 2
    s_k, s_c1, s_c2 = _unpack(qk, "qk")
    v_k, v_c1, v_c2 = _unpack(v, "v")
    if (qk_ntk is None) != (v_ntk is None):
        raise ValueError("qk_ntk and v_ntk must both be given (NTK) or both be None")
    return _exact_jit(
        s_k,
        s_c1,
        s_c2,
        v_k,
        v_c1,
        v_c2,
        qk_ntk,
        v_ntk,
        key_mask1,
        key_mask2,
        mechanism=mechanism,
        qk2=qk2,
    )


@functools.partial(jax.jit, static_argnames=("mechanism", "qk2"))
def _exact_jit(
    s_k: Array,
    s_c1: Array,
    s_c2: Array | None,
    v_k: Array,
    v_c1: Array,
    v_c2: Array | None,
    t_k: Array | None,
    tv_k: Array | None,
    km1: Array | None,
    km2: Array | None,
    *,
    mechanism: str,
    qk2: float,
) -> StandardAttentionMC:
    kv1 = None if km1 is None else ~jnp.asarray(km1, bool)
    kv2 = None if km2 is None else ~jnp.asarray(km2, bool)
    if s_c2 is None:
        kv2 = kv1
        d1 = d2 = _pdiag(_bdiag(s_k))
    else:
        d1, d2 = _pdiag(s_c1), _pdiag(s_c2)
    pairs = _prepare_pairs(v_k, s_k, t_k, tv_k, kv1, kv2)
    flat = [None if x is None else _from_flat(x) for x in pairs]
    nngp, ntk = _closed_form_parts(mechanism, None, qk2, s_k, d1[:, None], d2[None], *flat)
    zeros = jnp.zeros_like
    if s_c2 is None:
        cov1 = _bdiag(nngp)
        return StandardAttentionMC(
            nngp,
            cov1,
            None,
            ntk,
            zeros(nngp),
            zeros(cov1),
            None,
            None if ntk is None else zeros(ntk),
        )

    def marginal(c_s: Array, c_v: Array, kv: Array | None) -> Array:
        if kv is not None:
            c_v = jnp.where(kv[:, :, None] & kv[:, None, :], c_v, 0.0)
        d = _pdiag(c_s)
        return _closed_form_parts(
            mechanism,
            None,
            qk2,
            c_s[:, None],
            d[:, None],
            d[:, None],
            c_v[:, None],
            None,
            None,
            None,
            None,
            None,
        )[0][:, 0]

    cov1 = marginal(s_c1, v_c1, kv1)
    assert v_c2 is not None
    cov2 = marginal(s_c2, v_c2, kv2)
    return StandardAttentionMC(
        nngp,
        cov1,
        cov2,
        ntk,
        zeros(nngp),
        zeros(cov1),
        zeros(cov2),
        None if ntk is None else zeros(ntk),
    )


# --------------------------------------------------------------------------
# the finite-head law


def sample_finite_head_law(
    qk_cov: Array,
    v_cov: Array,
    *,
    n_heads: int,
    mechanism: str,
    qk_std: float,
    ov_std: float,
    b_std: float,
    n_samples: int,
    key: Array,
    key_mask: Array | None = None,
) -> Array:
    """Draws of one output channel of a standard-scaled attention layer with
    ``n_heads`` heads and infinite key/value width, jointly over a batch.

    Conditional on the heads' logits ``G_h`` (independent Gaussian fields with
    ``Cov(G_ac(x), G_bd(x')) = qk_std^2 S_ab S_cd``) the output is Gaussian with
    covariance ``(ov_std^2 / H) sum_h zeta(G_h(x)) V zeta(G_h(x'))^T + b_std^2``:
    a Gaussian scale mixture (excess kurtosis ``∝ 1/H``). Sampled exactly as
    ``f = sqrt(ov_std^2/H) sum_h zeta(G_h) B xi_h + b_std eta`` with
    ``B B^T = V`` (joint over the batch), ``xi_h``, ``eta`` standard normal.

    Args:
      qk_cov: ``(N, N, L, L)`` covariance ``S`` seen by queries/keys.
      v_cov: ``(N, N, L, L)`` values' input covariance ``V``.
      n_heads, mechanism, qk_std, ov_std, b_std: the layer.
      n_samples: number of draws; key: a JAX PRNG key.
      key_mask: ``(N, L)`` bool, ``True`` at padding keys, or None.

    Returns:
      ``(n_samples, N, L)``.
    """
    n_heads = _check_int("n_heads", n_heads, 1)
    n_samples = _check_int("n_samples", n_samples, 1)
    mechanism = _check_mechanism(mechanism)
    qk_std = _check_float("qk_std", qk_std)
    ov_std = _check_float("ov_std", ov_std)
    b_std = _check_float("b_std", b_std)
    qk_cov, v_cov = jnp.asarray(qk_cov), jnp.asarray(v_cov)
    n, n_, l, l_ = qk_cov.shape
    if n != n_ or l != l_ or v_cov.shape != qk_cov.shape:
        raise ValueError(
            f"qk_cov and v_cov must be (N, N, L, L), got {qk_cov.shape}, {v_cov.shape}"
        )
    s_chunk = max(1, min(n_samples, _TEMP_ELEMENTS // (8 * n_heads * n * l * l)))
    return _finite_head_jit(
        qk_cov,
        v_cov,
        key,
        None if key_mask is None else jnp.asarray(key_mask, bool),
        n_heads=n_heads,
        mechanism=mechanism,
        qk_std=qk_std,
        ov_std=ov_std,
        b_std=b_std,
        n_samples=n_samples,
        s_chunk=s_chunk,
    )


@functools.partial(
    jax.jit,
    static_argnames=("n_heads", "mechanism", "qk_std", "ov_std", "b_std", "n_samples", "s_chunk"),
)
def _finite_head_jit(
    qk_cov: Array,
    v_cov: Array,
    key: Array,
    key_mask: Array | None,
    *,
    n_heads: int,
    mechanism: str,
    qk_std: float,
    ov_std: float,
    b_std: float,
    n_samples: int,
    s_chunk: int,
) -> Array:
    n, _, l, _ = qk_cov.shape
    dt = jnp.result_type(qk_cov.dtype, jnp.float32)
    block = min(16, n * l)
    a, n_active = _joint_factor(jnp.asarray(qk_std * qk_cov, dt), block)
    bv, _ = _sym_factor(jnp.asarray(v_cov, dt).transpose(0, 2, 1, 3).reshape(n * l, n * l))
    valid = True if key_mask is None else ~key_mask[:, None, :]
    n_chunks = -(-n_samples // s_chunk)

    def chunk(c: Array) -> Array:
        kc = jax.random.fold_in(key, c)
        k_g, k_v, k_b = jax.random.split(kc, 3)
        g = _joint_logits(a, n_active, k_g, s_chunk * n_heads, block)
        g = g.reshape(s_chunk, n_heads, n, l, l)
        if mechanism == "SOFTMAX":
            att = masked_softmax(g, valid)
        else:
            att = jnp.where(valid, _zeta(g, mechanism), 0.0)
        xi = jax.random.normal(k_v, (s_chunk, n_heads, n * l), dt)
        u = (xi @ bv.T).reshape(s_chunk, n_heads, n, l)
        out = jnp.einsum("shiac,shic->sia", att, u) * (ov_std / math.sqrt(n_heads))
        return out + b_std * jax.random.normal(k_b, (s_chunk, 1, 1), dt)

    out = lax.map(chunk, jnp.arange(n_chunks))
    return out.reshape(n_chunks * s_chunk, n, l)[:n_samples]
