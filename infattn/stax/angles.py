"""A vectorisable ``arctan2`` for the arc-cosine kernels (ReLU, sign, erf, GELU).

XLA's CPU ``atan2`` costs about ten times an arithmetic pass over the kernel, and
the nonlinearities' closed forms take one per kernel entry. :func:`arctan2`
computes the same angle with a range reduction to ``|u| <= tan(pi / 8)`` and a
polynomial in ``u^2`` fitted (Chebyshev, at import) to ``arctan(u) / u`` to the
dtype's precision, which XLA vectorises.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

_TAN_PI_8 = math.sqrt(2.0) - 1.0


@functools.cache
def _coefficients(degree: int) -> tuple[float, ...]:
    """Power-series coefficients (highest first) of ``arctan(sqrt z) / sqrt z`` on
    ``0 <= z <= tan(pi/8)^2``, from a Chebyshev interpolant of ``degree``."""
    top = _TAN_PI_8**2
    fit = np.polynomial.Chebyshev.interpolate(
        lambda z: np.where(z > 0, np.arctan(np.sqrt(z)) / np.sqrt(np.maximum(z, 1e-300)), 1.0),
        degree,
        domain=[0.0, top],
    )
    return tuple(float(c) for c in fit.convert(kind=np.polynomial.Polynomial).coef[::-1])


def _degree(dtype: np.dtype) -> int:
    """Polynomial degree in ``u^2`` that reaches the dtype's rounding error."""
    return 11 if np.dtype(dtype).itemsize >= 8 else 5


def arctan2(y: Array, x: Array) -> Array:
    """``jnp.arctan2(y, x)``, in ``[-pi, pi]``, to about ten units in the last place.

    ``(0, 0)`` gives ``0`` like ``jnp.arctan2``; signed zeros are not told apart
    (``y = -0.0`` counts as ``+0.0``).

    Example:
        >>> round(float(arctan2(jnp.array(1.0), jnp.array(-1.0))), 6)  # 3 pi / 4
        2.356194
    """
    a, b = jnp.abs(x), jnp.abs(y)
    lo, hi = jnp.minimum(b, a), jnp.maximum(b, a)
    big = lo > _TAN_PI_8 * hi  # t = lo / hi in (tan(pi / 8), 1]
    # u = t, or (t - 1) / (t + 1) = (lo - hi) / (lo + hi) when big: one division
    num, den = jnp.where(big, lo - hi, lo), jnp.where(big, lo + hi, hi)
    u = num / jnp.where(den == 0, 1, den)  # |u| <= tan(pi / 8)
    z = u * u
    coefs = _coefficients(_degree(z.dtype))
    poly = jnp.full_like(z, coefs[0])
    for c in coefs[1:]:
        poly = poly * z + c
    angle = jnp.where(big, math.pi / 4, 0.0) + u * poly  # arctan(t) in [0, pi/4]
    angle = jnp.where(b > a, math.pi / 2 - angle, angle)
    angle = jnp.where(x < 0, math.pi - angle, angle)
    return jnp.where(y < 0, -angle, angle)
