"""Closed forms of the nonlinearities against numerical integration and Price's theorem."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import erf

from infattn.stax.elementwise import abrelu_rule, erf_rule, gelu_rule

HOMOGENEOUS = {
    "relu": (abrelu_rule(0.0, 1.0), lambda x: np.maximum(x, 0)),
    "abs": (abrelu_rule(-1.0, 1.0), np.abs),
    "leaky": (abrelu_rule(0.2, 1.0), lambda x: np.where(x > 0, x, 0.2 * x)),
    "abrelu": (abrelu_rule(-0.5, 1.5), lambda x: np.where(x > 0, 1.5 * x, -0.5 * x)),
}
SMOOTH = {
    "erf": (erf_rule, erf),
    "gelu": (gelu_rule, lambda x: jax.nn.gelu(x, approximate=False)),
}
RULES = HOMOGENEOUS | SMOOTH
# (q11, q22, q12): correlations from strongly negative to nearly one
PAIRS = [(1.0, 1.0, 0.3), (2.0, 0.5, -0.6), (0.7, 1.3, 0.9), (1.5, 1.5, 1.49), (0.3, 3.0, 0.0)]


def _correlated(a, b, q11, q22, q12):
    rho = q12 / np.sqrt(q11 * q22)
    return np.sqrt(q11) * a, np.sqrt(q22) * (rho * a + np.sqrt(max(1 - rho**2, 0.0)) * b)


def polar_expectation(phi, q11, q22, q12, n=400_000):
    """``E[phi(u) phi(v)]`` for positively 1-homogeneous ``phi``: in polar coordinates
    the radius factors out (``E r^2 = 2``), leaving a periodic integral over the angle."""
    theta = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    u, v = _correlated(np.cos(theta), np.sin(theta), q11, q22, q12)
    return 2.0 * float(np.mean(phi(u) * phi(v)))


def gauss_hermite_expectation(f, q11, q22, q12, order=120):
    """``E[f(u, v)]`` for the bivariate Gaussian by a tensor Gauss-Hermite rule."""
    t, w = np.polynomial.hermite_e.hermegauss(order)
    w = w / w.sum()
    u, v = _correlated(*np.meshgrid(t, t, indexing="ij"), q11, q22, q12)
    return float(np.sum(np.outer(w, w) * np.asarray(f(u, v))))


@pytest.mark.parametrize("name", list(HOMOGENEOUS))
@pytest.mark.parametrize(("q11", "q22", "q12"), PAIRS)
def test_homogeneous_nngp_matches_integration(name, q11, q22, q12):
    rule, phi = HOMOGENEOUS[name]
    value, _ = rule(jnp.asarray(q12), jnp.asarray(q11), jnp.asarray(q22))
    np.testing.assert_allclose(float(value), polar_expectation(phi, q11, q22, q12), rtol=1e-8)


@pytest.mark.parametrize("name", list(SMOOTH))
@pytest.mark.parametrize(("q11", "q22", "q12"), PAIRS)
def test_smooth_nngp_matches_integration(name, q11, q22, q12):
    rule, phi = SMOOTH[name]
    value, _ = rule(jnp.asarray(q12), jnp.asarray(q11), jnp.asarray(q22))
    expected = gauss_hermite_expectation(lambda u, v: phi(u) * phi(v), q11, q22, q12)
    np.testing.assert_allclose(float(value), expected, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("name", list(RULES))
@pytest.mark.parametrize(("q11", "q22", "q12"), PAIRS[:4])
def test_ntk_factor_is_derivative_in_q12(name, q11, q22, q12):
    """Price's theorem: E[phi'(u) phi'(v)] = d E[phi(u) phi(v)] / d q12."""
    rule, _ = RULES[name]
    grad = jax.grad(lambda c: rule(c, jnp.asarray(q11), jnp.asarray(q22))[0])(jnp.asarray(q12))
    _, dot = rule(jnp.asarray(q12), jnp.asarray(q11), jnp.asarray(q22))
    np.testing.assert_allclose(float(dot), float(grad), rtol=1e-9)


@pytest.mark.parametrize("name", list(RULES))
def test_zero_variance_gives_finite_values(name):
    rule, _ = RULES[name]
    value, dot = rule(jnp.zeros(()), jnp.zeros(()), jnp.asarray(1.0))
    assert np.isfinite(float(value)) and abs(float(value)) < 1e-12
    assert np.isfinite(float(dot))
