"""Per-position variances of a kernel.

Elementwise nonlinearities and LayerNorm need ``q11 = Sigma_aa(x, x)`` and
``q22 = Sigma_bb(x', x')`` next to every entry ``q12 = Sigma_ab(x, x')``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from infattn.kernel import Kernel

Array = jax.Array


def spatial_diagonal(cov: Array, start: int = 1) -> Array:
    """``(N, s1, s1, s2, s2, ...)`` -> ``(N, s1, s2, ...)``: each position with itself.

    ``start``: the number of leading (batch) axes, 2 for ``(N1, N2, s1, s1, ...)``.

    Example:
        >>> spatial_diagonal(jnp.zeros((2, 3, 4, 4, 5, 5)), start=2).shape
        (2, 3, 4, 5)
    """
    n_sp = (cov.ndim - start) // 2
    for _ in range(n_sp):
        cov = jnp.diagonal(cov, axis1=start, axis2=start + 1)
    return cov


def keep_diagonals(
    k: Kernel, full_covs: tuple[Array, Array | None] | None, spatial: bool
) -> Kernel:
    """``k`` in neural-tangents' ``diagonal_batch``/``diagonal_spatial`` layouts.

    ``full_covs``: the ``x1``-``x1`` and ``x2``-``x2`` kernels ``(N, N, *S)`` that
    replace ``cov1``/``cov2`` (``diagonal_batch=False``), or ``None`` to keep the
    batch diagonal. ``spatial``: keep only the spatial diagonal, ``nngp``/``ntk``
    ``(N1, N2, s1, s2, ...)`` and ``cov1`` ``(N1, s1, s2, ...)``. A kernel computed
    per position (``k.diagonal_spatial``, :mod:`infattn.stax.positionwise`), and its
    ``full_covs``, are already in that layout.

    Example:
        >>> k = Kernel(nngp=jnp.ones((2, 2, 3, 3)), ntk=None, cov1=jnp.ones((2, 3, 3)), cov2=None)
        >>> keep_diagonals(k, None, True).nngp.shape
        (2, 2, 3)
    """
    if full_covs is not None:
        k = k.replace(cov1=full_covs[0], cov2=full_covs[1], diagonal_batch=False)
    if not spatial or k.diagonal_spatial:
        return k
    per_example = 1 if full_covs is None else 2

    def pairs(x):
        return None if x is None else spatial_diagonal(x, 2)

    def covs(x):
        return None if x is None else spatial_diagonal(x, per_example)

    return k.replace(
        nngp=pairs(k.nngp),
        ntk=pairs(k.ntk),
        nngp_se=pairs(k.nngp_se),
        ntk_se=pairs(k.ntk_se),
        cov1=covs(k.cov1),
        cov2=covs(k.cov2),
        diagonal_spatial=True,
    )


def variances(k: Kernel) -> tuple[Array, Array]:
    """Per-position variances ``(N1, *spatial)`` of x1 and ``(N2, *spatial)`` of x2."""
    v1 = spatial_diagonal(k.cov1)
    return v1, v1 if k.cov2 is None else spatial_diagonal(k.cov2)
