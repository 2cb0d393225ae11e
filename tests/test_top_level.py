"""Top-level API checks (parity with neural-tangents: tests/reference/test_empirical_parity.py)."""

from __future__ import annotations

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import infattn
from infattn import stax

X = np.random.default_rng(0).standard_normal((4, 3, 2))


def test_batch_equals_unbatched_kernel_object():
    _, _, kernel_fn = stax.serial(stax.Dense(3), stax.Relu(), stax.Dense(2))
    x2 = X[:2] + 0.5
    for b in (None, x2):
        full, batched = kernel_fn(X, b), infattn.batch(kernel_fn, 2, store_on_device=False)(X, b)
        for f in ("nngp", "ntk", "cov1", "cov2"):
            if getattr(full, f) is None:
                assert getattr(batched, f) is None
            else:
                np.testing.assert_allclose(getattr(batched, f), getattr(full, f), rtol=1e-6)
        assert batched.shape1 == full.shape1
    with pytest.raises(ValueError, match="batch_size"):
        infattn.batch(kernel_fn, 3)(X)


def test_diagonal_layouts_shapes_and_errors():
    _, _, kernel_fn = stax.serial(stax.Dense(3), stax.Relu())
    k = kernel_fn(X, X[:2], diagonal_batch=False, diagonal_spatial=True)
    assert k.nngp.shape == (4, 2, 3) and k.cov1.shape == (4, 4, 3) and k.cov2.shape == (2, 2, 3)
    full = kernel_fn(X, X[:2])
    np.testing.assert_allclose(k.nngp, jnp.diagonal(full.nngp, axis1=2, axis2=3), rtol=1e-6)
    with pytest.raises(ValueError, match="diagonal_spatial"):
        kernel_fn(X, diagonal_spatial="yes")
    with pytest.raises(NotImplementedError, match="single array"):
        kernel_fn(stax.Dense(3)[2](X), diagonal_spatial=True)


def test_taylor_expand_is_exact_on_polynomials():
    f = lambda p, x: p["a"] ** 3 * x + p["a"] * p["b"]  # noqa: E731
    p0, p1 = {"a": 0.5, "b": -1.0}, {"a": 1.3, "b": 2.0}
    np.testing.assert_allclose(infattn.taylor_expand(f, p0, 3)(p1, 2.0), f(p1, 2.0), rtol=1e-6)
    assert abs(float(infattn.taylor_expand(f, p0, 1)(p1, 2.0) - f(p1, 2.0))) > 0.1
    np.testing.assert_allclose(
        infattn.linearize(f, p0)(p1, 2.0), infattn.taylor_expand(f, p0, 1)(p1, 2.0), rtol=1e-6
    )
    with pytest.raises(ValueError, match="degree"):
        infattn.taylor_expand(f, p0, -1)


def test_empirical_ntk_of_stax_model_by_every_implementation():
    init_fn, apply_fn, _ = stax.serial(
        stax.Dense(5), stax.Relu(), stax.GlobalAvgPool(), stax.Dense(2)
    )
    _, params = init_fn(jax.random.PRNGKey(0), X.shape)
    ntks = [
        infattn.empirical_ntk_fn(apply_fn, vmap_axes=0, implementation=i)(X, X[:2], params)
        for i in infattn.NtkImplementation
    ]
    for ntk in ntks[1:]:
        np.testing.assert_allclose(ntk, ntks[0], rtol=1e-5)
    with pytest.raises(ValueError, match="implementation"):
        infattn.empirical_ntk_fn(apply_fn, implementation=7)


def test_empirical_ntk_vp_fn_is_the_ntk_times_cotangents():
    init_fn, apply_fn, _ = stax.serial(stax.Dense(5), stax.Relu(), stax.Dense(2))
    _, params = init_fn(jax.random.PRNGKey(0), X.shape)
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    def jac(x):
        return jax.jacobian(lambda p: apply_fn(unravel(p), x).ravel())(flat)

    for x2 in (None, X[:2] + 0.5):
        other = X if x2 is None else x2
        ct = np.random.default_rng(1).standard_normal(apply_fn(params, other).shape)
        expected = (jac(X) @ (jac(other).T @ ct.ravel())).reshape(apply_fn(params, X).shape)
        vp_fn = infattn.empirical_ntk_vp_fn(apply_fn, X, x2, params)
        np.testing.assert_allclose(vp_fn(ct), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(jax.jit(vp_fn)(ct), expected, rtol=1e-5, atol=1e-6)
