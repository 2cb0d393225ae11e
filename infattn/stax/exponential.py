"""Nonlinearities built from exponentials: Sin, Cos, Rbf, Exp, Gaussian, ExpNormalized, Gabor.

Each closed form is a Gaussian integral of ``exp`` of a quadratic plus a linear
form in ``(u, v)``: for ``u, v`` with covariance ``Q = [[q11, q12], [q12, q22]]``,
``E[exp(i t.(u, v))] = exp(-t.Q t / 2)`` (Sin, Cos, Rbf, Exp) and
``E[exp(-(u^2 + v^2) b')] = det(I + 2 b' Q)^(-1/2)`` (Gaussian, Gabor). Rules follow
:mod:`infattn.stax.elementwise`: ``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from infattn.stax.elementwise import Rule, rule_layer
from infattn.validation import check_std

Array = jax.Array


def sin_rule(a: float, b: float, c: float) -> Rule:
    """``phi(x) = a sin(b x + c)``.

    ``E = a^2/2 [exp(-b^2 (q11 + q22 - 2 q12) / 2) - cos(2c) exp(-b^2 (q11 + q22 + 2 q12) / 2)]``.
    """

    def rule(q12, q11, q22):
        total = q11 + q22
        minus = jnp.exp(-(b**2) * (total - 2 * q12) / 2)
        plus = jnp.exp(-(b**2) * (total + 2 * q12) / 2) * math.cos(2 * c)
        return a**2 / 2 * (minus - plus), (a * b) ** 2 / 2 * (minus + plus)

    return rule


def exp_rule(a: float, b: float) -> Rule:
    """``phi(x) = a exp(b x)``: ``E = a^2 exp(b^2 (q11 + q22 + 2 q12) / 2)``."""

    def rule(q12, q11, q22):
        nngp = a**2 * jnp.exp(b**2 * (q11 + q22 + 2 * q12) / 2)
        return nngp, b**2 * nngp

    return rule


def gaussian_rule(a: float, b: float) -> Rule:
    """``phi(x) = a exp(b x^2)``: ``E = a^2 / sqrt((1 - 2b q11)(1 - 2b q22) - 4 b^2 q12^2)``."""

    def rule(q12, q11, q22):
        det = (1 - 2 * b * q11) * (1 - 2 * b * q22) - 4 * b**2 * q12**2
        root = jnp.sqrt(jnp.maximum(det, 0.0))
        return a**2 / root, a**2 * 4 * b**2 * q12 / root**3

    return rule


def exp_normalized_rule(gamma: float, shift: float, do_clip: bool) -> Rule:
    """``sqrt(q11 q22) exp(gamma (rho + shift))`` with ``rho = q12 / sqrt(q11 q22)``."""

    def rule(q12, q11, q22):
        scale = jnp.sqrt(jnp.maximum(q11 * q22, 1e-30))
        rho = q12 / scale
        if do_clip:
            rho = jnp.clip(rho, -1.0, 1.0)
        factor = jnp.exp(gamma * (rho + shift))
        return scale * factor, gamma * factor

    return rule


def gabor_nngp(q12: Array, q11: Array, q22: Array) -> Array:
    """``E[exp(-u^2 - v^2) sin(u) sin(v)]``.

    With ``D = det(I + 2Q)`` and ``t^T Q (I + 2Q)^-1 t = (q11 + q22 + 4 det(Q) -+ 2 q12) / D``
    for ``t = (1, -+1)``: ``E = (exp(-(s - 2 q12) / 2D) - exp(-(s + 2 q12) / 2D)) / (2 sqrt D)``,
    ``s = q11 + q22 + 4 (q11 q22 - q12^2)``.
    """
    s = q11 + q22 + 4 * (q11 * q22 - q12**2)
    det = 1 + 2 * (q11 + q22) + 4 * (q11 * q22 - q12**2)
    minus = jnp.exp(-(s - 2 * q12) / (2 * det))
    plus = jnp.exp(-(s + 2 * q12) / (2 * det))
    return (minus - plus) / (2 * jnp.sqrt(det))


def gabor_rule(q12, q11, q22):
    """``phi(x) = exp(-x^2) sin(x)``; ``E[phi' phi']`` is ``d E / d q12`` (Price's theorem)."""
    return jax.jvp(lambda c: gabor_nngp(c, q11, q22), (q12,), (jnp.ones_like(q12),))


def Sin(a: float = 1.0, b: float = 1.0, c: float = 0.0):
    """``a sin(b x + c)``.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(2, W_std=0.0), Sin(c=np.pi / 2))
        >>> float(kernel_fn(np.ones((1, 2)), get="nngp")[0, 0])  # sin(pi / 2)^2
        1.0
    """
    return rule_layer(
        f"Sin({a}, {b}, {c})", lambda x: a * jnp.sin(b * x + c), sin_rule(a, b, c), True
    )


def Cos(a: float = 1.0, b: float = 1.0, c: float = 0.0):
    """``a cos(b x + c) = a sin(b x + c + pi / 2)``.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(2, W_std=0.0), Cos())
        >>> round(float(kernel_fn(np.ones((1, 2)), get="nngp")[0, 0]), 12)  # cos(0)^2
        1.0
    """
    return Sin(a, b, c + math.pi / 2)


def Rbf(gamma: float = 1.0):
    """``sqrt(2) sin(sqrt(2 gamma) x + pi / 4)``, whose kernel is ``exp(-gamma |x - x'|^2)``.

    NNGP: ``exp(-gamma (q11 + q22 - 2 q12))``, the squared-exponential kernel of
    the inputs' features (the ``sin`` rule with ``cos(2 c) = 0``).

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(2), Rbf())
        >>> round(float(kernel_fn(np.ones((1, 2)), get="nngp")[0, 0]), 12)
        1.0
    """
    check_std(gamma, "gamma")
    a, b = math.sqrt(2), math.sqrt(2 * gamma)
    return rule_layer(
        f"Rbf({gamma})",
        lambda x: a * jnp.sin(b * x + math.pi / 4),
        sin_rule(a, b, math.pi / 4),
        True,
    )


def Exp(a: float = 1.0, b: float = 1.0):
    """``a exp(b x)``.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(2, W_std=0.0), Exp(a=2.0))
        >>> float(kernel_fn(np.ones((1, 2)), get="nngp")[0, 0])
        4.0
    """
    return rule_layer(f"Exp({a}, {b})", lambda x: a * jnp.exp(b * x), exp_rule(a, b), True)


def Gaussian(a: float = 1.0, b: float = -1.0):
    """``a exp(b x^2)``.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(2, W_std=0.0), Gaussian(a=3.0))
        >>> float(kernel_fn(np.ones((1, 2)), get="nngp")[0, 0])
        9.0
    """
    return rule_layer(
        f"Gaussian({a}, {b})", lambda x: a * jnp.exp(b * x**2), gaussian_rule(a, b), True
    )


def ExpNormalized(gamma: float = 1.0, shift: float = -1.0, do_clip: bool = False):
    """The "Gaussian normalized kernel" (kernel only; ``apply_fn`` raises).

    ``nngp' = sqrt(q11 q22) exp(gamma (q12 / sqrt(q11 q22) + shift))``;
    ``do_clip`` clips the normalised covariance to ``[-1, 1]``.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(2), ExpNormalized())
        >>> float(kernel_fn(np.ones((1, 2)), get="nngp")[0, 0])  # rho = 1: exp(0)
        1.0
    """
    return rule_layer(
        f"ExpNormalized({gamma}, {shift})", None, exp_normalized_rule(gamma, shift, do_clip), True
    )


def Gabor():
    """``exp(-x^2) sin(x)``.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(2, W_std=0.0), Gabor())
        >>> float(kernel_fn(np.ones((1, 2)), get="nngp")[0, 0])
        0.0
    """
    return rule_layer("Gabor", lambda x: jnp.exp(-(x**2)) * jnp.sin(x), gabor_rule)
