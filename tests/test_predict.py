"""infattn.predict: properties of the posteriors and dynamics, jitter, errors (float64)."""

from __future__ import annotations

import doctest
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infattn import linalg, predict, stax


def _kernel(n: int, seed: int = 0, rank: int | None = None) -> np.ndarray:
    """A random PSD ``(n, n)`` kernel of the given rank (full by default)."""
    f = np.random.default_rng(seed).standard_normal((n, rank or n + 2))
    return f @ f.T / f.shape[1]


def _model():
    return stax.serial(stax.Dense(16, b_std=0.1), stax.Relu(), stax.Dense(2))


def test_docstring_examples_run():
    for module in (predict, linalg):
        result = doctest.testmod(module, extraglobs={"jnp": jnp})
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_gp_interpolates_train_set_and_covariance_vanishes_there():
    k = _kernel(5)
    y = np.random.default_rng(1).standard_normal((5, 3))
    gp = predict.gp_inference(k, y)
    mean, cov = gp("nngp", k, k)
    np.testing.assert_allclose(mean, y, atol=1e-9)
    np.testing.assert_allclose(cov, 0.0, atol=1e-9)


def test_gp_posterior_covariance_is_psd_and_below_prior():
    k_all = _kernel(8, seed=2)
    k_dd, k_td, k_tt = k_all[:5, :5], k_all[5:, :5], k_all[5:, 5:]
    gp = predict.gp_inference(k_dd, np.ones((5, 1)))
    cov = np.asarray(gp("nngp", k_td, k_tt).covariance)
    assert np.linalg.eigvalsh(cov).min() > -1e-12
    assert np.linalg.eigvalsh(k_tt - cov).min() > -1e-12  # conditioning never adds variance


def test_gradient_descent_reaches_the_converged_solution():
    k_all = _kernel(7, seed=3)
    k_dd, k_td = k_all[:4, :4], k_all[4:, :4]
    y = np.random.default_rng(4).standard_normal((4, 2))
    f0, g0 = 0.1 * np.ones((4, 2)), -0.2 * np.ones((3, 2))
    gd = predict.gradient_descent_mse(k_dd, y)
    late = gd(1e9, f0, g0, k_td)
    done = gd(None, f0, g0, k_td)
    for a, b in zip(late, done, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-8)
    start = gd(np.array([0.0]), f0, g0, k_td)
    np.testing.assert_allclose(start[0][0], f0)
    np.testing.assert_allclose(start[1][0], g0)


def test_gradient_descent_matches_euler_steps():
    """Many small Euler steps of df/dt = -Theta (f - y) / n follow the closed form."""
    k_all = _kernel(6, seed=5)
    k_dd, k_td = k_all[:4, :4], k_all[4:, :4]
    y = np.random.default_rng(6).standard_normal((4, 1))
    f, g, dt, steps = np.zeros((4, 1)), np.zeros((2, 1)), 0.01, 400
    for _ in range(steps):
        r = (f - y) / y.size
        f, g = f - dt * k_dd @ r, g - dt * k_td @ r
    gd = predict.gradient_descent_mse(k_dd, y, learning_rate=dt)
    ft, gt = gd(steps, np.zeros((4, 1)), np.zeros((2, 1)), k_td)
    np.testing.assert_allclose(ft, f, rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(gt, g, rtol=2e-3, atol=1e-6)


def test_ensemble_at_time_zero_is_the_prior_and_at_infinity_the_posterior():
    _, _, kernel_fn = _model()
    rng = np.random.default_rng(7)
    x_train, x_test = rng.standard_normal((5, 3)), rng.standard_normal((3, 3))
    y = rng.standard_normal((5, 2))
    ens = predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y)
    prior = ens(0.0, x_test, "ntk", compute_cov=True)
    np.testing.assert_allclose(prior.mean, 0.0, atol=1e-12)
    np.testing.assert_allclose(prior.covariance, kernel_fn(x_test, None, "nngp"), rtol=1e-9)
    late, done = ens(1e10, x_test, "nngp", True), ens(None, x_test, "nngp", True)
    np.testing.assert_allclose(late.mean, done.mean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(late.covariance, done.covariance, rtol=1e-6, atol=1e-9)
    both = ens(None, x_test)
    assert type(both).__name__ == "Gaussians" and both._fields == ("nngp", "ntk")


def test_singular_kernel_gets_jitter_with_a_warning():
    k = _kernel(6, seed=8, rank=2)
    k[5] = k[4]
    k[:, 5] = k[:, 4]  # two identical examples
    y = np.arange(12.0).reshape(6, 2)
    with pytest.warns(linalg.SingularKernelWarning, match=r"added jitter [0-9.e-]+ \("):
        mean = predict.gp_inference(k, y)("nngp", k[:2])
    assert np.all(np.isfinite(mean))


def test_well_conditioned_kernel_gets_no_jitter():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict.gp_inference(_kernel(4), np.ones((4, 1)))("nngp", _kernel(4))


def test_jitter_under_jit_stays_finite():
    k = jnp.asarray(_kernel(6, seed=9, rank=2))
    with pytest.warns(linalg.SingularKernelWarning):
        factor = jax.jit(linalg.cholesky)(k)
        jax.block_until_ready(factor)
    assert np.all(np.isfinite(factor))


def test_indefinite_kernel_is_refused():
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        linalg.cholesky(-jnp.eye(3))


def test_zero_eigenvalue_contributes_nothing_at_finite_time():
    k = np.diag([1.0, 0.0])
    y = np.array([[1.0], [1.0]])
    k_td = np.array([[1.0, 0.0]])
    out = predict.gradient_descent_mse(k, y)(3.0, None, np.zeros((1, 1)), k_td)
    assert np.all(np.isfinite(out))


def test_trace_axes_in_the_middle_match_a_transposed_problem():
    """y (N, K, L) traced over axis 1 == y (N, L, K) traced over the last axis, transposed."""
    rng = np.random.default_rng(10)
    f = rng.standard_normal((5 * 3, 20))
    k = (f @ f.T / 20).reshape(5, 3, 5, 3).transpose(0, 2, 1, 3)  # (N, N, L, L)
    k_td = k[:2]
    y = rng.standard_normal((5, 3, 2))  # (N, L, K)
    last = predict.gp_inference(k, y)("nngp", k_td)
    mid = predict.gp_inference(k, y.transpose(0, 2, 1), trace_axes=(1,))("nngp", k_td)
    np.testing.assert_allclose(mid, np.asarray(last).transpose(0, 2, 1), rtol=1e-10)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: predict.gp_inference(np.eye(2), np.ones((2, 1)))("nnpg"), NotImplementedError,
         "get"),
        (lambda: predict.gp_inference(np.eye(2), np.ones((2, 1)))(()), ValueError, "non-empty"),
        (lambda: predict.gp_inference(np.eye(2), np.ones((2, 1)))("ntk", np.eye(2), np.eye(2)),
         ValueError, "NNGP"),
        (lambda: predict.gradient_descent_mse(np.eye(2), np.ones((2, 1)))(1.0, None, None),
         ValueError, "both None"),
        (lambda: predict.gradient_descent_mse(np.eye(2), np.ones((2, 1)))(1.0, 0.0, np.ones(1)),
         ValueError, "k_test_train"),
        (lambda: predict.gp_inference(np.eye(2), np.ones((2, 1)), trace_axes=(3,)), ValueError,
         "trace_axes"),
    ],
)  # fmt: skip
def test_errors_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_ensemble_rejects_conflicting_kernel_arguments():
    _, _, kernel_fn = _model()
    x = np.random.default_rng(11).standard_normal((3, 3))
    ens = predict.gradient_descent_mse_ensemble(kernel_fn, x, np.ones((3, 2)), mask_constant=0.0)
    with pytest.raises(ValueError, match="mask_constant"):
        ens(None, x, "nngp", mask_constant=1.0)


def test_max_learning_rate_is_the_stability_edge():
    k = _kernel(5, seed=12)
    lr = predict.max_learning_rate(k, y_train_size=5, eps=0.0)
    step = np.eye(5) - lr * k / 5
    assert np.isclose(np.abs(np.linalg.eigvalsh(step)).max(), 1.0)
