"""``infattn.ode.gradient_descent``: the ODE solver against closed forms and discrete steps.

Parity with neural-tangents' ``predict.gradient_descent`` is in
``tests/reference/predict_grid.py``; here, properties that need no reference.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infattn import predict


@pytest.fixture
def problem() -> dict:
    rng = np.random.RandomState(0)
    a = rng.standard_normal((5, 5))
    k_dd = a @ a.T / 5 + 0.1 * np.eye(5)
    k_td = rng.standard_normal((3, 5)) @ a.T / 5
    return {
        "k_dd": k_dd,
        "k_td": k_td,
        "y": rng.standard_normal((5, 2)),
        "f_dd": 0.3 * rng.standard_normal((5, 2)),
        "f_td": 0.3 * rng.standard_normal((3, 2)),
    }


def _mse(fx, y):
    return 0.5 * jnp.mean((fx - y) ** 2)


def test_mse_matches_the_closed_form(problem: dict) -> None:
    """With the MSE loss the ODE's solution is gradient_descent_mse's closed form."""
    p = problem
    t = np.array([0.0, 3.0, 40.0])
    ode = predict.gradient_descent(_mse, p["k_dd"], p["y"], learning_rate=0.5)
    closed = predict.gradient_descent_mse(p["k_dd"], p["y"], learning_rate=0.5)
    ours = ode(t, p["f_dd"], p["f_td"], p["k_td"])
    ref = closed(t, p["f_dd"], p["f_td"], p["k_td"])
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_momentum_follows_small_discrete_steps(problem: dict) -> None:
    """Heavy-ball steps of a small learning rate approach the momentum ODE."""
    p = problem
    eta, m, steps = 1e-3, 0.9, 2000
    grad = jax.grad(lambda f: _mse(f, p["y"]))
    f, v = jnp.asarray(p["f_dd"]), jnp.zeros_like(p["f_dd"])
    for _ in range(steps):
        v = m * v - eta * p["k_dd"] @ grad(f)
        f = f + v
    ode = predict.gradient_descent(_mse, p["k_dd"], p["y"], learning_rate=eta, momentum=m)
    np.testing.assert_allclose(ode(float(steps), p["f_dd"]), f, rtol=0.02, atol=2e-3)


def test_state_in_state_out(problem: dict) -> None:
    """An ODEState gives an ODEState; resuming from it equals one longer run."""
    p = problem
    ode = predict.gradient_descent(_mse, p["k_dd"], p["y"], momentum=0.5)
    s0 = predict.ODEState(p["f_dd"], p["f_td"])
    s1 = ode(1.0, s0, None, p["k_td"])
    assert isinstance(s1, predict.ODEState) and s1.qx_test.shape == p["f_td"].shape
    both = ode(np.array([1.0, 2.0]), s0, None, p["k_td"])
    resumed = ode(1.0, s1, None, p["k_td"])
    np.testing.assert_allclose(resumed.fx_test, both.fx_test[1], rtol=1e-5, atol=1e-7)


def test_bad_input_is_refused(problem: dict) -> None:
    p = problem
    ode = predict.gradient_descent(_mse, p["k_dd"], p["y"])
    with pytest.raises(ValueError, match="t: gradient_descent integrates to finite times"):
        ode(None, p["f_dd"])
    with pytest.raises(ValueError, match="increasing times"):
        ode(np.array([2.0, 1.0]), p["f_dd"])
    with pytest.raises(ValueError, match="k_test_train"):
        ode(1.0, p["f_dd"], p["f_td"])
    with pytest.raises(ValueError, match="momentum"):
        ode(1.0, predict.ODEState(p["f_dd"], qx_train=p["f_dd"]))
    with pytest.raises(ValueError, match="k_train_train"):
        predict.gradient_descent(_mse, p["k_dd"][:3, :3], p["y"])
