"""Polynomial nonlinearities: Polynomial, Monomial, Hermite, RectifiedMonomial.

A polynomial ``phi(x) = sum_n c_n x^n`` of ``u = sqrt(q) z`` has the Hermite
expansion ``phi(u) = sum_l q^(l/2) b_l(q) He_l(z) / sqrt(l!)`` with
``b_l(q) = sum_i c_{l+2i} q^i (l+2i)! / (2^i i! sqrt(l!))`` (from
``z^n = sum_i n! / (2^i i! (n-2i)!) He_{n-2i}(z)``), and ``He_l / sqrt(l!)`` are
orthonormal with ``E[He_l(z1) He_l(z2)] / l! = rho^l``. Hence, with no division
by the variances,

    E[phi(u) phi(v)] = sum_l b_l(q11) b_l(q22) q12^l.

Rectified monomials ``x^d 1{x > 0}`` use the arc-cosine recursion of
:func:`rectified_moments`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from infattn.stax.elementwise import Rule, rule_layer

Array = jax.Array


def _check_degree(degree: int) -> None:
    if isinstance(degree, bool) or not isinstance(degree, int | np.integer) or degree < 0:
        raise ValueError(f"degree: expected a non-negative integer, got {degree!r}")


def hermite_coefficients(coef: Sequence[float]) -> list[list[float]]:
    """``b_l`` as polynomials in ``q``: ``out[l][i]`` is the coefficient of ``q^i``.

    Example:
        >>> hermite_coefficients([0.0, 0.0, 1.0])  # x^2 = q (He_0) + sqrt(2) q (He_2 / sqrt 2!)
        [[0.0, 1.0], [0.0], [1.414213562373095]]
    """
    n = len(coef)
    out = []
    for l in range(n):
        terms = [
            coef[l + 2 * i]
            * math.factorial(l + 2 * i)
            / (2**i * math.factorial(i) * math.sqrt(math.factorial(l)))
            for i in range((n - 1 - l) // 2 + 1)
        ]
        out.append([float(t) for t in terms])
    return out


def polynomial_rule(coef: Sequence[float]) -> Rule:
    """``phi(x) = sum_n coef[n] x^n``: ``E = sum_l b_l(q11) b_l(q22) q12^l``."""
    b = hermite_coefficients(coef)

    def poly(c, q):
        return sum((ci * q**i for i, ci in enumerate(c)), jnp.zeros_like(q))

    def rule(q12, q11, q22):
        nngp, dot = jnp.zeros_like(q12), jnp.zeros_like(q12)
        for l, c in enumerate(b):
            weight = poly(c, q11) * poly(c, q22)
            nngp = nngp + weight * q12**l
            if l:
                dot = dot + l * weight * q12 ** (l - 1)
        return nngp, dot

    return rule


def _positive_moment(k: int) -> float:
    """``E[z_+^k]`` for a standard normal ``z``."""
    return 2 ** (k / 2 - 1) * math.gamma((k + 1) / 2) / math.sqrt(math.pi)


def rectified_moments(a: int, b: int, rho: Array) -> Array:
    """``E[u_+^a v_+^b]`` for standard normals with correlation ``rho``.

    Stein's lemma on ``u`` (``E[u g] = E[d_u g] + rho E[d_v g]``) with
    ``g = u_+^(a-1) v_+^b`` gives, for ``a >= 2``,
    ``f(a, b) = (a - 1) f(a - 2, b) + rho b f(a - 1, b - 1)``, where ``b = 0``
    replaces the last term by ``rho phi(0) (1 - rho^2)^((a-1)/2) E[z_+^(a-1)]``
    (the density of ``v = 0``); ``f(0, 0) = (pi - arccos rho) / (2 pi)``,
    ``f(1, 0) = (1 + rho) / (2 sqrt(2 pi))``, ``f(1, 1) = (sqrt(1 - rho^2) +
    rho (pi - arccos rho)) / (2 pi)`` and ``f`` is symmetric.

    Example:
        >>> float(rectified_moments(2, 2, jnp.array(1.0)))  # E[z_+^4] = 3/2
        1.5
    """
    root = jnp.sqrt(jnp.maximum(1 - rho**2, 0.0))
    density0 = 1 / math.sqrt(2 * math.pi)

    @functools.cache
    def f(i: int, j: int) -> Array:
        if i < j:
            return f(j, i)
        if i == 0:
            return (math.pi - jnp.arccos(rho)) / (2 * math.pi)
        if i == 1 and j == 0:
            return (1 + rho) * density0 / 2
        if i == 1:
            return root * density0 * _positive_moment(1) + rho * f(0, 0)
        if j == 0:
            tail = rho * density0 * root ** (i - 1) * _positive_moment(i - 1)
            return (i - 1) * f(i - 2, 0) + tail
        return (i - 1) * f(i - 2, j) + rho * j * f(i - 1, j - 1)

    return f(a, b)


def rectified_rule(degree: int) -> Rule:
    """``phi(x) = x^d 1{x >= 0}``: ``E = (q11 q22)^(d/2) f(d, d)(rho)``, Price for the NTK."""

    def rule(q12, q11, q22):
        prod = q11 * q22
        scale = jnp.sqrt(jnp.maximum(prod, 0.0))
        rho = jnp.clip(q12 / jnp.where(scale > 0, scale, 1.0), -1.0, 1.0)
        nngp = scale**degree * rectified_moments(degree, degree, rho)
        if degree == 0:
            return nngp, jnp.zeros_like(q12)
        low = rectified_moments(degree - 1, degree - 1, rho)
        return nngp, degree**2 * scale ** (degree - 1) * low

    return rule


def Polynomial(coef: Sequence[float]):
    """``coef[0] + coef[1] x + ... + coef[n] x^n`` (``numpy.polynomial`` order).

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(2), Polynomial([1.0, 0.0, 1.0]))
        >>> float(kernel_fn(np.ones((1, 2)), get="nngp")[0, 0])  # E[(1 + z^2)^2] = 1 + 2 + 3
        6.0
    """
    coef = [float(c) for c in coef]
    reversed_coef = jnp.asarray(coef[::-1]) if coef else jnp.zeros(1)
    return rule_layer(
        f"Polynomial({coef})", lambda x: jnp.polyval(reversed_coef, x), polynomial_rule(coef)
    )


def Monomial(degree: int):
    """``x^degree``.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(2), Monomial(3))
        >>> float(kernel_fn(np.ones((1, 2)), get="nngp")[0, 0])  # E[z^6]
        15.0
    """
    _check_degree(degree)
    return rule_layer(
        f"Monomial({degree})", lambda x: x**degree, polynomial_rule([0.0] * degree + [1.0])
    )


def Hermite(degree: int):
    """The normalised probabilists' Hermite polynomial ``He_d(x) / sqrt(d!)``.

    As in neural-tangents, inputs are assumed to have unit variance, so the
    kernel is ``nngp^d`` (``He_d / sqrt(d!)`` are orthonormal under ``N(0, 1)``).

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(2), Hermite(2))
        >>> float(kernel_fn(np.ones((1, 2)), np.array([[1.0, -1.0]]), get="nngp")[0, 0])
        0.0
    """
    _check_degree(degree)
    coef = np.polynomial.hermite_e.herme2poly([0] * degree + [1]) / math.sqrt(
        math.factorial(degree)
    )
    reversed_coef = jnp.asarray(coef[::-1])

    def rule(q12, q11, q22):
        dot = degree * q12 ** (degree - 1) if degree else jnp.zeros_like(q12)
        return q12**degree, dot

    return rule_layer(f"Hermite({degree})", lambda x: jnp.polyval(reversed_coef, x), rule, True)


def RectifiedMonomial(degree: int):
    """``x^degree`` for ``x >= 0``, else 0 (the arc-cosine kernels; ``degree=1`` is ReLU).

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(2), RectifiedMonomial(2))
        >>> float(kernel_fn(np.ones((1, 2)), get="nngp")[0, 0])  # E[z_+^4]
        1.5
    """
    _check_degree(degree)
    return rule_layer(
        f"RectifiedMonomial({degree})",
        lambda x: jnp.where(x >= 0, x**degree, 0.0),
        rectified_rule(degree),
    )
