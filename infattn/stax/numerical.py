"""User-given nonlinearities: a closed form (Elementwise) or quadrature (ElementwiseNumerical).

* :func:`Elementwise`: the user supplies ``nngp_fn(cov12, var1, var2) = E[fn(u) fn(v)]``
  and optionally ``d_nngp_fn = E[fn'(u) fn'(v)]``; without it, the derivative of
  ``nngp_fn`` in ``cov12`` (Price's theorem) by autodiff.
* :func:`ElementwiseNumerical`: both expectations by two-dimensional Gauss-Hermite
  quadrature with ``deg`` nodes per axis. Writing ``u = sqrt(2 q11) x``,
  ``v = sqrt(2) (q12 / sqrt(q11)) x + sqrt(2 (q22 - q12^2 / q11)) y`` turns the
  Gaussian density into ``exp(-x^2 - y^2) / pi``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from infattn.stax.elementwise import Rule, rule_layer

Array = jax.Array


def user_rule(nngp_fn: Callable, d_nngp_fn: Callable | None) -> Rule:
    """``(nngp_fn, d_nngp_fn)`` applied entrywise (scalar functions are vectorised)."""
    nngp = jnp.vectorize(nngp_fn)
    dot = jnp.vectorize(jax.grad(nngp_fn) if d_nngp_fn is None else d_nngp_fn)

    def rule(q12, q11, q22):
        q11, q22 = jnp.broadcast_to(q11, q12.shape), jnp.broadcast_to(q22, q12.shape)
        return nngp(q12, q11, q22), dot(q12, q11, q22)

    return rule


def quadrature_rule(fn: Callable, df: Callable, deg: int) -> Rule:
    """``E[fn(u) fn(v)]`` and ``E[df(u) df(v)]`` by Gauss-Hermite quadrature of degree ``deg``."""
    nodes, weights = np.polynomial.hermite.hermgauss(deg)

    def rule(q12, q11, q22):
        safe = jnp.where(q11 > 0, q11, 1.0)
        slope = jnp.where(q11 > 0, q12 / jnp.sqrt(safe), 0.0) * np.sqrt(2)
        rest = jnp.sqrt(2 * jnp.maximum(q22 - jnp.where(q11 > 0, q12**2 / safe, 0.0), 0.0))
        scale = jnp.sqrt(2 * jnp.maximum(q11, 0.0))
        y, wy = jnp.asarray(nodes, q12.dtype), jnp.asarray(weights / np.pi, q12.dtype)
        nngp, dot = jnp.zeros_like(q12), jnp.zeros_like(q12)
        for x, wx in zip(nodes, weights, strict=True):  # the inner axis is vectorised
            u = scale * x
            v = (slope * x)[..., None] + rest[..., None] * y
            nngp = nngp + wx * fn(u) * (fn(v) @ wy)
            dot = dot + wx * df(u) * (df(v) @ wy)
        return nngp, dot

    return rule


def Elementwise(
    fn: Callable[[Array], Array] | None = None,
    nngp_fn: Callable[[Array, Array, Array], Array] | None = None,
    d_nngp_fn: Callable[[Array, Array, Array], Array] | None = None,
):
    """A nonlinearity ``fn`` with its kernel ``nngp_fn(cov12, var1, var2)`` given by the user.

    ``d_nngp_fn``: ``E[fn'(u) fn'(v)]`` (default: ``d nngp_fn / d cov12`` by
    autodiff). ``fn=None``: kernel only; ``nngp_fn=None``: finite network only.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> def nngp_fn(cov12, var1, var2):  # erf
        ...     return 2 / np.pi * jnp.arcsin(2 * cov12 / jnp.sqrt((1 + 2 * var1) * (1 + 2 * var2)))
        >>> erf = Elementwise(jax.scipy.special.erf, nngp_fn)
        >>> x = np.random.default_rng(0).normal(size=(2, 3))
        >>> a = stax.serial(stax.Dense(2), erf)[2](x, get="ntk")
        >>> b = stax.serial(stax.Dense(2), stax.Erf())[2](x, get="ntk")
        >>> bool(np.allclose(a, b, rtol=1e-5))
        True
    """
    if fn is None and nngp_fn is None:
        raise ValueError("fn, nngp_fn: give at least one (the layer would do nothing)")
    name = getattr(fn if fn is not None else nngp_fn, "__name__", "Elementwise")
    if nngp_fn is None:

        def missing(q12, q11, q22):
            raise NotImplementedError(f"Elementwise({name}): no nngp_fn, so no kernel")

        return rule_layer(f"Elementwise({name})", fn, missing, True)
    return rule_layer(f"Elementwise({name})", fn, user_rule(nngp_fn, d_nngp_fn), True)


def ElementwiseNumerical(
    fn: Callable[[Array], Array], deg: int, df: Callable[[Array], Array] | None = None
):
    """A nonlinearity ``fn`` whose kernels are computed by Gauss-Hermite quadrature.

    ``deg``: nodes per axis (cost ``deg^2`` evaluations per kernel entry; ~25 for
    smooth functions, poor for kinks such as ReLU). ``df``: ``fn``'s derivative
    (default: autodiff).

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> x = np.random.default_rng(0).normal(size=(2, 3))
        >>> a = stax.serial(stax.Dense(2), ElementwiseNumerical(jnp.sin, deg=25))[2](x, get="nngp")
        >>> b = stax.serial(stax.Dense(2), stax.Sin())[2](x, get="nngp")
        >>> bool(np.allclose(a, b, rtol=1e-5))
        True
    """
    if isinstance(deg, bool) or not isinstance(deg, int | np.integer) or deg < 1:
        raise ValueError(f"deg: expected a positive integer, got {deg!r}")
    derivative = jnp.vectorize(jax.grad(fn)) if df is None else df
    name = getattr(fn, "__name__", "fn")
    return rule_layer(
        f"ElementwiseNumerical({name}, deg={deg})",
        fn,
        quadrature_rule(fn, derivative, int(deg)),
        True,
    )
