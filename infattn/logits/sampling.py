"""Exact draws of Gaussian attention logits.

In the infinite key-width limit the logits of one head are a Gaussian field with
``Cov(G_ac(x), G_bd(x')) = qk^2 S_ab(x, x') S_cd(x, x')``. With ``A A^T = qk S``
(any factor, here an eigen-factor robust to singular ``S``) and ``Z`` a standard
Gaussian matrix, ``G = A Z A^T`` has exactly that law:

* jointly over a batch (:func:`joint_factor`, :func:`joint_logits`): ``A`` factors
  the whole ``(N L) x (N L)`` covariance, so the logits of all inputs are drawn
  together;
* per pair of inputs (:func:`pair_factors`): a conditional factor gives the exact
  joint law of ``(G(x1_i), G(x2_j))`` from ``cov1``, ``cov2`` and the cross block.

Kernels are in the ``(N1, N2, L, L)`` layout of :mod:`infattn.kernel`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array


def batch_diagonal(k: Array) -> Array:
    """``(N, N, L, L) -> (N, L, L)``: the batch diagonal ``k[i, i]``.

    Example:
        >>> batch_diagonal(jnp.arange(4.0).reshape(2, 2, 1, 1)).ravel().tolist()
        [0.0, 3.0]
    """
    return jnp.diagonal(k, axis1=0, axis2=1).transpose(2, 0, 1)


def position_diagonal(k: Array) -> Array:
    """``(..., L, L) -> (..., L)``: the position diagonal.

    Example:
        >>> position_diagonal(jnp.eye(2)).tolist()
        [1.0, 1.0]
    """
    return jnp.diagonal(k, axis1=-2, axis2=-1)


def safe_rsqrt(x: Array) -> Array:
    """``1 / sqrt(x)`` where ``x > 0``, else 0.

    Example:
        >>> safe_rsqrt(jnp.array([4.0, 0.0])).tolist()
        [0.5, 0.0]
    """
    pos = x > 0
    return jnp.where(pos, lax.rsqrt(jnp.where(pos, x, 1.0)), 0.0)


def sym_factor(m: Array, rel_tol: float | None = None) -> tuple[Array, Array]:
    """PSD factor of symmetric ``m`` (``(..., n, n)``), robust to singularity.

    Returns ``(F, lam)``: ``F @ F.T == m`` up to clipping of eigenvalues below
    ``rel_tol * max(lam)`` (default ``10 n eps``) to zero; columns sorted by
    decreasing eigenvalue, columns of dropped eigenvalues exactly zero; ``lam`` the
    clipped eigenvalues ``(..., n)``.

    Example:
        >>> f, lam = sym_factor(jnp.array([[2.0, 0.0], [0.0, 0.0]]))
        >>> jnp.round(f @ f.T, 5).tolist(), lam.tolist()
        ([[2.0, 0.0], [0.0, 0.0]], [2.0, 0.0])
    """
    n = m.shape[-1]
    if rel_tol is None:
        rel_tol = 10 * n * float(jnp.finfo(m.dtype).eps)
    lam, u = jnp.linalg.eigh(0.5 * (m + jnp.swapaxes(m, -1, -2)))
    lam, u = lam[..., ::-1], u[..., ::-1]
    tol = rel_tol * jnp.maximum(lam[..., :1], 0.0)
    lam = jnp.where(lam > tol, lam, 0.0)
    return u * jnp.sqrt(lam)[..., None, :], lam


def joint_factor(s_joint: Array, block: int) -> tuple[Array, Array]:
    """Factor of the joint ``(N, N, L, L)`` covariance for joint sampling.

    Returns ``A`` of shape ``(N, L, R)`` (``R = N*L`` rounded up to a multiple of
    ``block``; columns sorted by decreasing eigenvalue, zero past the numerical
    rank) and the number of column blocks that are not identically zero.

    Example:
        >>> a, n_active = joint_factor(jnp.ones((1, 1, 2, 2)), 1)
        >>> a.shape, int(n_active)
        ((1, 2, 2), 1)
    """
    n, _, l, _ = s_joint.shape
    m = s_joint.transpose(0, 2, 1, 3).reshape(n * l, n * l)
    f, lam = sym_factor(m)
    r = f.shape[1]
    pad = (-r) % block
    f = jnp.pad(f, ((0, 0), (0, pad)))
    lam = jnp.pad(lam, (0, pad))
    n_active = jnp.sum(lam[::block] > 0).astype(jnp.int32)
    return f.reshape(n, l, r + pad), n_active


def joint_logits(a: Array, n_active: Array, key: Array, n_draws: int, block: int) -> Array:
    """Draws of ``G_i = A_i Z A_i^T`` for all inputs at once: ``(n_draws, N, L, L)``.

    ``a``: ``(N, L, R)`` joint factor (``R`` a multiple of ``block``);
    ``n_active``: column blocks of ``a`` that are nonzero (the rest are skipped:
    the cost is ``O(N L r^2)`` for numerical rank ``r``). ``Z``'s ``(k, l)``
    block is drawn from ``fold_in(fold_in(key, k), l)``, so the draws do not
    depend on the rank.

    Example:
        >>> a, n_active = joint_factor(jnp.ones((1, 1, 2, 2)), 1)
        >>> joint_logits(a, n_active, jax.random.key(0), 3, 1).shape
        (3, 1, 2, 2)
    """
    n, l, r = a.shape
    dt = a.dtype
    a_flat = a.reshape(n * l, r)

    def col_block(j: Array, g: Array) -> Array:
        def row_block(k: Array, y: Array) -> Array:
            ak = lax.dynamic_slice_in_dim(a_flat, k * block, block, 1, allow_negative_indices=False)
            return y + ak @ _z_block(key, k, j, n_draws, block, dt)  # one matrix product

        y = lax.fori_loop(0, n_active, row_block, jnp.zeros((n * l, n_draws * block), dt))
        y = y.reshape(n, l, n_draws, block).transpose(0, 2, 1, 3).reshape(n, n_draws * l, block)
        aj = lax.dynamic_slice_in_dim(a, j * block, block, 2, allow_negative_indices=False)
        return g + jnp.matmul(y, jnp.swapaxes(aj, 1, 2))  # (N, draws * L, L)

    g = lax.fori_loop(0, n_active, col_block, jnp.zeros((n, n_draws * l, l), dt))
    return g.reshape(n, n_draws, l, l).transpose(1, 0, 2, 3)


def _z_block(key: Array, k: Array, j: Array, n_draws: int, block: int, dt: jnp.dtype) -> Array:
    """Block ``(k, j)`` of ``Z`` for all draws, as ``(block, n_draws * block)``."""
    kk = jax.random.fold_in(jax.random.fold_in(key, k), j)
    z = jax.random.normal(kk, (n_draws, block, block), dt)
    return z.transpose(1, 0, 2).reshape(block, n_draws * block)


def pair_factors(s_cross: Array, f1: Array, lam1: Array, cov2: Array) -> Array:
    """Conditional factors for pairwise sampling: ``(n1, n2, L, 2L)``.

    For each pair ``(i, j)``: ``B_ij = [C_ij, R_ij]`` with
    ``C = S_ij^T F_i^{+T}`` and ``R R^T = cov2_j - C C^T`` (Schur complement),
    so that ``[[F_i, 0], [C, R]]`` factors the joint ``2L x 2L`` covariance of
    ``(x1_i, x2_j)``. ``s_cross``: ``(n1, n2, L, L)``; ``f1``: ``(n1, L, L)``
    factor of cov1 with eigenvalues ``lam1`` ``(n1, L)``; ``cov2``: ``(n2, L, L)``.

    Example:
        >>> f1, lam1 = sym_factor(jnp.eye(2)[None])
        >>> pair_factors(jnp.eye(2)[None, None], f1, lam1, jnp.eye(2)[None]).shape
        (1, 1, 2, 4)
    """
    inv = safe_rsqrt(lam1)  # F_i = U sqrt(lam) -> F^{+T} = U diag(1/sqrt(lam))
    # F columns are U * sqrt(lam); U * (1/sqrt lam) = F * (1/lam)
    f_pinv_t = f1 * (inv * inv)[:, None, :]
    c = jnp.einsum("ijab,iak->ijbk", s_cross, f_pinv_t)
    schur = cov2[None] - jnp.einsum("ijbk,ijdk->ijbd", c, c)
    r, _ = sym_factor(schur)
    return jnp.concatenate([c, r], axis=-1)
