"""Per-draw integrands of the infinite-head attention kernels.

Given one draw of the logits, with ``P = zeta(G(x))`` and ``P' = zeta(G(x'))``,

    nngp draw:  P V P'^T
    NTK draw:   P (T_v + 2 V) P'^T + qk^2 [(2 S + T) o K(V o S, S) + S o K(V o T, T)]

where ``K(W, M)_ab = <J_a V J'_b^T, M>`` contracts the Jacobians of ``zeta`` in
``O(L^3)`` (``docs/standard-scaling.md``, section 4). Pair data use the flat
layout ``(n1, L, n2, L)`` (query position of ``x``, key position of ``x'``), draws a
leading axis ``s``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from infattn.logits import hermite
from infattn.logits.mechanisms import attention_weights, elementwise_derivative

Array = jax.Array


class Pairs(NamedTuple):
    """Deterministic per-pair data, flat layout ``(n1, L, n2, L)`` (query x, key x').

    ``v`` is always present; the others only for the NTK.
    """

    v: Array  # V with masked keys zeroed
    w1: Array | None = None  # T_v + 2 V (masked keys zeroed)
    s: Array | None = None  # S
    t: Array | None = None  # T
    vs: Array | None = None  # V * S (masked keys zeroed)
    vt: Array | None = None  # V * T (masked keys zeroed)


class Features(NamedTuple):
    """Per-input features of one draw: ``phi`` the attention matrix (or its Hermite
    residual), ``psi`` the elementwise derivative (or its residual; ``None`` for
    SOFTMAX, whose Jacobian is contracted from ``phi``, and without NTK)."""

    phi: Array
    psi: Array | None


def to_flat(k: Array) -> Array:
    """``(n1, n2, L, L) -> (n1, L, n2, L)``.

    Example:
        >>> to_flat(jnp.zeros((1, 2, 3, 3))).shape
        (1, 3, 2, 3)
    """
    return k.transpose(0, 2, 1, 3)


def from_flat(k: Array) -> Array:
    """``(..., n1, L, n2, L) -> (..., n1, n2, L, L)``.

    Example:
        >>> from_flat(jnp.zeros((1, 3, 2, 3))).shape
        (1, 2, 3, 3)
    """
    return jnp.swapaxes(k, -3, -2)


def prepare_pairs(
    v: Array,
    s: Array | None = None,
    t: Array | None = None,
    tv: Array | None = None,
    kv1: Array | None = None,
    kv2: Array | None = None,
) -> Pairs:
    """Kernel-layout ``(n1, n2, L, L)`` inputs to :class:`Pairs`, masked keys zeroed.

    ``v``, ``s``, ``t``, ``tv``: ``V``, ``S``, ``T``, ``T_v`` (``t`` ``None``: no
    NTK); ``kv1`` ``(n1, L)`` and ``kv2`` ``(n2, L)``: ``True`` at valid keys, or
    ``None``.

    Example:
        >>> prepare_pairs(jnp.ones((2, 1, 3, 3))).v.shape
        (2, 3, 1, 3)
    """
    keymask = None
    if kv1 is not None or kv2 is not None:
        n1, n2, l, _ = v.shape
        a = jnp.ones((n1, l), bool) if kv1 is None else kv1
        b = jnp.ones((n2, l), bool) if kv2 is None else kv2
        keymask = a[:, None, :, None] & b[None, :, None, :]

    def zero(k: Array) -> Array:
        return k if keymask is None else jnp.where(keymask, k, 0.0)

    if t is None:
        return Pairs(to_flat(zero(v)))
    assert s is not None and tv is not None
    return Pairs(
        to_flat(zero(v)),
        to_flat(zero(tv + 2.0 * v)),
        to_flat(s),
        to_flat(t),
        to_flat(zero(v * s)),
        to_flat(zero(v * t)),
    )


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


def _softmax_jacobians(left: Features, right: Features, v: Array, vm: Array, m: Array) -> Array:
    """``<J_a V J'_b^T, M>`` for all ``(a, b)`` with ``J = diag(p) - p p^T``
    (``vm = V o M``), in ``O(L^3)``:
    ``P (V o M) P'^T - P ((V P'^T) o (M P'^T)) - ((P V) o (P M)) P'^T
    + (P V P'^T) o (P M P'^T)``."""
    phl, phr = left.phi, right.phi
    v_r, m_r = _right(v, phr), _right(m, phr)  # V P'^T, M P'^T
    out = _left(phl, _right(vm, phr))
    out = out - _left(phl, v_r * m_r)
    pv = jnp.einsum("siac,icjd->siajd", phl, v)  # P V
    pm = jnp.einsum("siac,icjd->siajd", phl, m)  # P M
    if phr.ndim == 4:
        out = out - jnp.einsum("siajd,sjbd->siajb", pv * pm, phr)
    else:
        out = out - jnp.einsum("siajd,sijbd->siajb", pv * pm, phr)
    return out + _left(phl, v_r) * _left(phl, m_r)


def integrand(
    left: Features, right: Features, pairs: Pairs, mechanism: str, qk2: float
) -> tuple[Array, Array | None]:
    """Per-draw nngp and NTK-bracket values for a block of pairs.

    ``left``: features of the ``x1`` inputs (``(s, n1, L, L)``), ``right`` of
    ``x2`` (``(s, n2, L, L)`` or per pair ``(s, n1, n2, L, L)``); the NTK is
    computed iff ``pairs.w1`` is given. Returns ``(nngp, ntk)`` of shape
    ``(s, n1, L, n2, L)`` (``ntk`` ``None`` without NTK).

    Example:
        >>> f = Features(jnp.ones((1, 1, 2, 2)) / 2, None)
        >>> y, _ = integrand(f, f, Pairs(jnp.ones((1, 2, 1, 2))), "SOFTMAX", 1.0)
        >>> y.ravel().tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    nngp = _left(left.phi, _right(pairs.v, right.phi))
    if pairs.w1 is None:
        return nngp, None
    ntk = _sandwich(left.phi, pairs.w1, right.phi)

    def jac(vm: Array, m: Array) -> Array:
        if mechanism == "SOFTMAX":
            return _softmax_jacobians(left, right, pairs.v, vm, m)
        return _sandwich(left.psi, vm, right.psi)

    s, t = pairs.s, pairs.t
    ntk = ntk + qk2 * ((2.0 * s + t) * jac(pairs.vs, s) + s * jac(pairs.vt, t))
    return nngp, ntk


def features(
    g: Array,
    sigma: Array | None,
    key_valid: Array | None,
    mechanism: str,
    scheme: str,
    want_ntk: bool,
) -> Features:
    """Per-input :class:`Features` of draws of logits ``g`` (``(..., L, L)``).

    ``sigma``: standard deviations of the logits (broadcastable to ``g``), needed
    by the Hermite schemes (and to zero ``zeta'`` of zero-variance logits);
    ``key_valid``: ``(..., 1, L)`` booleans or ``None``; ``scheme``: a resolved
    variance reduction (``'none'``, ``'antithetic'``, ``'hermite'``, ``'hermite2'``).

    Example:
        >>> f = features(jnp.zeros((1, 2, 2)), None, None, "SOFTMAX", "none", False)
        >>> f.phi.ravel().tolist()
        [0.5, 0.5, 0.5, 0.5]
    """
    if mechanism == "SOFTMAX":
        mask = None if key_valid is None else jnp.logical_not(key_valid)
        return Features(attention_weights(g, mask, mechanism), None)
    active = key_valid
    if scheme.startswith("hermite"):
        assert sigma is not None
        pos = sigma > 0
        active = pos if active is None else (pos & active)
        phi, psi = _hermite_residuals(g, sigma, pos, mechanism, scheme, want_ntk)
    else:
        if active is not None:
            g = jnp.where(active, g, 0.0)
        phi = attention_weights(g, None, mechanism)
        psi = elementwise_derivative(g, mechanism) if want_ntk else None
        if psi is not None and sigma is not None:
            pos = sigma > 0
            active = pos if active is None else (pos & active)
    if active is not None:
        phi = jnp.where(active, phi, 0.0)
        psi = None if psi is None else jnp.where(active, psi, 0.0)
    return Features(phi, psi)


def _hermite_residuals(
    g: Array, sigma: Array, pos: Array, mechanism: str, scheme: str, want_ntk: bool
) -> tuple[Array, Array | None]:
    """``zeta`` and ``zeta'`` minus their closed-form Hermite parts, at ``u = g / sigma``."""
    u = jnp.where(pos, g / jnp.where(pos, sigma, 1.0), 0.0)
    cz = hermite.coefficients(mechanism, False, scheme)
    cd = hermite.coefficients(mechanism, True, scheme)
    he = hermite.polynomials(u, max(len(cz), len(cd)) - 1)
    phi = sigma * (attention_weights(u, None, mechanism) - _series(cz, he))
    psi = elementwise_derivative(u, mechanism) - _series(cd, he) if want_ntk else None
    return phi, psi


def _series(coeffs: tuple[float, ...], he: list[Array]) -> Array:
    return sum(c * he[k] for k, c in enumerate(coeffs) if c)
