"""Elementwise nonlinearities: one closed form per function, one layer builder.

For a Gaussian pair ``(u, v)`` with covariance ``[[q11, q12], [q12, q22]]``
each rule returns ``E[phi(u) phi(v)]`` and ``E[phi'(u) phi'(v)]``; the second is
the derivative of the first in ``q12`` (Price's theorem), which the tests check.
Then ``nngp' = E[phi phi]`` and ``ntk' = ntk * E[phi' phi']``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

from infattn.kernel import Kernel, outer_per_position
from infattn.stax.angles import arctan2
from infattn.stax.diagonal import Diagonal, variances
from infattn.stax.layer import make_layer

Array = jax.Array
Rule = Callable[[Array, Array, Array], tuple[Array, Array]]


def _safe_sqrt(x: Array) -> Array:
    return jnp.sqrt(jnp.maximum(x, 0.0))


def _angle(q12: Array, q11: Array, q22: Array) -> tuple[Array, Array]:
    """The angle between ``u`` and ``v`` and ``sqrt(q11 q22 - q12^2)``.

    The angle is ``pi / 2`` when both vanish (masked or zero inputs).
    """
    root = _safe_sqrt(q11 * q22 - q12**2)
    return jnp.where((root == 0) & (q12 == 0), math.pi / 2, arctan2(root, q12)), root


def abrelu_rule(a: float, b: float) -> Rule:
    """``phi(x) = a min(x, 0) + b max(x, 0)`` (ReLU: a=0, b=1; |x|: a=-1, b=1)."""
    factor = (a - b) ** 2 / (2 * math.pi)

    def rule(q12, q11, q22):
        angle, root = _angle(q12, q11, q22)
        dot = (a**2 + b**2) / 2 - factor * angle
        return factor * root + dot * q12, dot

    return rule


def erf_rule(q12, q11, q22):
    """``phi = erf``: ``(2/pi) arcsin(2 q12 / sqrt((1 + 2 q11)(1 + 2 q22)))``."""
    root = _safe_sqrt((1 + 2 * q11) * (1 + 2 * q22) - 4 * q12**2)
    return (2 / math.pi) * arctan2(2 * q12, root), (4 / math.pi) / root


def sign_rule(q12, q11, q22):
    """``phi = sign``: ``1 - 2 angle / pi``; ``phi' = 0`` (almost everywhere)."""
    angle, _ = _angle(q12, q11, q22)
    return 1 - 2 * angle / math.pi, jnp.zeros_like(q12)


def gelu_rule(q12, q11, q22):
    """``phi(x) = x Phi(x)`` (Gaussian error linear unit)."""
    prod = q11 * q22
    prod1 = (1 + q11) * (1 + q22)
    delta2 = prod1 - q12**2
    delta = _safe_sqrt(delta2)
    angle = arctan2(q12, delta)
    nngp = q12 / 4 + (q12 * angle + (q12**2 + prod * delta2) / (prod1 * delta)) / (2 * math.pi)
    dot = 0.25 + angle / (2 * math.pi)
    dot = dot + q12 / (2 * math.pi * delta) * (1 / delta2 + (1 - prod) / prod1 + 1)
    return nngp, dot


def apply_rule(k: Kernel, rule: Rule) -> Kernel:
    """Map ``(nngp, ntk, cov1, cov2)`` through a nonlinearity's closed form."""
    if not k.is_gaussian:
        raise ValueError(
            "nonlinearity: its input must be Gaussian, i.e. the output of a Dense, Conv, "
            "GlobalSelfAttention or LayerNorm layer (got the raw inputs or another nonlinearity)"
        )
    v1, v2 = variances(k)
    nngp, dot = rule(k.nngp, *outer_per_position(v1, v2))
    cov1, _ = rule(k.cov1, *outer_per_position(v1, v1, diagonal_batch=True))
    cov2 = None if k.cov2 is None else rule(k.cov2, *outer_per_position(v2, v2, True))[0]
    ntk = None if k.ntk is None else k.ntk * dot
    return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=False)


def _scale(k: Kernel, var: float, shift: float = 0.0, ntk_scale: float | None = None) -> Kernel:
    ntk_scale = var if ntk_scale is None else ntk_scale
    return k.replace(
        nngp=var * k.nngp + shift,
        cov1=var * k.cov1 + shift,
        cov2=None if k.cov2 is None else var * k.cov2 + shift,
        ntk=None if k.ntk is None else ntk_scale * k.ntk,
    )


def _elementwise(
    name: str, fn: Callable[[Array], Array] | None, kernel: Callable[[Kernel], Kernel]
):
    """A layer applying ``fn`` entrywise (``None``: kernel only, ``apply_fn`` raises)."""

    def init(rng, input_shape):
        return input_shape, ()

    def apply(params, x, mask, **kwargs):
        if fn is None:
            raise NotImplementedError(f"{name} has no finite-width function (kernel only)")
        return fn(x), mask

    return make_layer(init, apply, kernel, name, positionwise=True, diagonal=Diagonal())


def rule_layer(name: str, fn: Callable[[Array], Array] | None, rule: Rule, remask: bool = False):
    """The layer of a nonlinearity ``fn`` with closed form ``rule``.

    ``remask``: zero the kernel entries touching padding afterwards (for functions
    with ``phi(0) != 0``, whose kernel is not zero there), as neural-tangents does.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> square = rule_layer("Square", jnp.square, lambda q12, q11, q22: (
        ...     q11 * q22 + 2 * q12**2, 4 * q12))
        >>> _, _, kernel_fn = stax.serial(stax.Dense(1), square)
        >>> float(kernel_fn(np.ones((1, 1)), get="nngp")[0, 0])  # E[z^4]
        3.0
    """

    def kernel(k):
        out = apply_rule(k, rule)
        return out.remask() if remask else out

    return _elementwise(name, fn, kernel)


def ABRelu(a: float, b: float, do_stabilize: bool = False):
    """``a * min(x, 0) + b * max(x, 0)``.

    ``do_stabilize`` rescales the kernel to unit maximum before the closed form
    and back after (the rule is homogeneous of degree 1), for very deep nets.
    """
    rule = abrelu_rule(a, b)

    def kernel(k):
        if not do_stabilize:
            return apply_rule(k, rule)
        factor = jnp.maximum(jnp.max(jnp.abs(k.nngp)), 1e-12)
        out = apply_rule(_scale(k, 1 / factor, ntk_scale=1.0), rule)
        return _scale(out, factor, ntk_scale=1.0)

    return _elementwise(
        f"ABRelu({a}, {b})", lambda x: a * jnp.minimum(x, 0) + b * jnp.maximum(x, 0), kernel
    )


def Relu(do_stabilize: bool = False):
    """Rectified linear unit ``max(x, 0)``."""
    return ABRelu(0.0, 1.0, do_stabilize)


def LeakyRelu(alpha: float, do_stabilize: bool = False):
    """``alpha * min(x, 0) + max(x, 0)``."""
    return ABRelu(alpha, 1.0, do_stabilize)


def Abs(do_stabilize: bool = False):
    """Absolute value ``|x|``."""
    return ABRelu(-1.0, 1.0, do_stabilize)


def Erf(a: float = 1.0, b: float = 1.0, c: float = 0.0):
    """``a * erf(b * x) + c`` (kernel as in neural-tangents: ``c`` adds ``c^2``)."""

    def kernel(k):
        out = apply_rule(_scale(k, b**2), erf_rule)
        return _scale(out, a**2, c**2).remask()

    return _elementwise(f"Erf({a}, {b}, {c})", lambda x: a * erf(b * x) + c, kernel)


def Sign():
    """``sign(x)``: the kernel ``1 - 2 angle / pi``; the NTK vanishes (``sign' = 0``).

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(3), Sign())
        >>> float(kernel_fn(np.ones((1, 2)), get="nngp")[0, 0])
        1.0
    """
    return rule_layer("Sign", jnp.sign, sign_rule)


def Sigmoid_like():
    """``0.5 erf(x / 2.4020563531719796) + 0.5``, close to the logistic sigmoid (NT's constant).

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(3, W_std=0.0), Sigmoid_like())
        >>> float(kernel_fn(np.ones((1, 2)), get="nngp")[0, 0])  # phi(0)^2
        0.25
    """
    return Erf(a=0.5, b=1 / 2.4020563531719796, c=0.5)


def Gelu(approximate: bool = False):
    """Gaussian error linear unit ``x Phi(x)``; ``approximate`` uses the tanh form in
    the finite network (the kernel is the exact one either way)."""

    def kernel(k):
        return apply_rule(k, gelu_rule)

    return _elementwise("Gelu", lambda x: jax.nn.gelu(x, approximate=approximate), kernel)
