"""Per-position variances of a kernel.

Elementwise nonlinearities and LayerNorm need ``q11 = Sigma_aa(x, x)`` and
``q22 = Sigma_bb(x', x')`` next to every entry ``q12 = Sigma_ab(x, x')``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from infattn.kernel import Kernel

Array = jax.Array


def spatial_diagonal(cov: Array) -> Array:
    """``(N, s1, s1, s2, s2, ...)`` -> ``(N, s1, s2, ...)``: each position with itself."""
    n_sp = (cov.ndim - 1) // 2
    for _ in range(n_sp):
        cov = jnp.diagonal(cov, axis1=1, axis2=2)
    return cov


def variances(k: Kernel) -> tuple[Array, Array]:
    """Per-position variances ``(N1, *spatial)`` of x1 and ``(N2, *spatial)`` of x2."""
    v1 = spatial_diagonal(k.cov1)
    return v1, v1 if k.cov2 is None else spatial_diagonal(k.cov2)
