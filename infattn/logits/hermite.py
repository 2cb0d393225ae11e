"""Hermite expansions of the elementwise mechanisms, for variance reduction.

For a unit-variance argument ``u``, ``f(u) = sum_k c_k He_k(u)`` with ``He_k`` the
probabilists' Hermite polynomials. The ``hermite`` schemes take the part of
degree ``<= K`` of ``zeta`` (and of ``zeta'``) in closed form and sample only the
remainder, which is orthogonal to it (``docs/standard-scaling.md``, section 5).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array

_SQ2PI = math.sqrt(2.0 * math.pi)
_S2OPI = math.sqrt(2.0 / math.pi)
_ZETA = {
    "ABS": (_S2OPI, 0.0, 1.0 / _SQ2PI),
    "RELU": (1.0 / _SQ2PI, 0.5, 0.5 / _SQ2PI),
    "IDENTITY": (0.0, 1.0, 0.0),
}
_DZETA = {
    "ABS": (0.0, _S2OPI, 0.0, -_S2OPI / 6.0),
    "RELU": (0.5, 1.0 / _SQ2PI, 0.0, -_S2OPI / 12.0),
    "IDENTITY": (1.0,),
}

# (degree of zeta's part, degree of zeta''s part) per scheme; the residuals
# then grow like |u| (degree 1) or u^2 (degree 2) in the tails.
_DEGREES = {"hermite": (1, 1), "hermite2": (2, 1)}


def coefficients(mechanism: str, deriv: bool, scheme: str) -> tuple[float, ...]:
    """Coefficients ``c_0..c_K`` of the closed-form part of ``zeta`` (or of
    ``zeta'`` when ``deriv``) that ``scheme`` (``'hermite'`` or ``'hermite2'``) uses.

    Example:
        >>> coefficients("RELU", False, "hermite")
        (0.3989422804014327, 0.5)
    """
    dz, dd = _DEGREES[scheme]
    if deriv:
        return _DZETA[mechanism][: dd + 1]
    return _ZETA[mechanism][: dz + 1]


def polynomials(u: Array, degree: int) -> list[Array]:
    """Probabilists' Hermite polynomials ``[He_0(u), ..., He_degree(u)]``.

    Example:
        >>> import jax.numpy as jnp
        >>> [float(p) for p in polynomials(jnp.array(2.0), 3)]
        [1.0, 2.0, 3.0, 2.0]
    """
    out = [jnp.ones_like(u), u]
    for k in range(1, degree):
        out.append(u * out[k] - k * out[k - 1])
    return out[: degree + 1]
