"""Gradient descent of finite networks against the NTK's prediction."""

import jax
import numpy as np
import pytest

from infattn import predict, stax, train


def test_linear_model_follows_its_ntk():
    # A single Dense layer is linear in its parameters: its NTK is exact and constant,
    # so discrete GD matches the gradient-flow prediction up to O(learning_rate).
    init_fn, apply_fn, kernel_fn = stax.Dense(2, W_std=1.5, b_std=0.3)
    rng = np.random.default_rng(0)
    x, xt = rng.standard_normal((6, 3)), rng.standard_normal((4, 3))
    y, yt = rng.standard_normal((6, 2)), rng.standard_normal((4, 2))
    lr = 0.01
    key = jax.random.PRNGKey(1)
    tr = train.gradient_descent(
        init_fn, apply_fn, key, x, y, xt, yt, learning_rate=lr, steps=400, n_models=3,
        record_every=100,
    )  # fmt: skip
    assert tr.fx_train.shape == (5, 3, 6, 2) and tr.test_loss.shape == (5, 3)
    assert np.all(np.diff(tr.train_loss, axis=0) < 0)
    k_dd, k_td = kernel_fn(x, None, "ntk"), kernel_fn(xt, x, "ntk")
    predict_fn = predict.gradient_descent_mse(k_dd, y, learning_rate=lr)
    for m in range(3):
        want_train, want_test = predict_fn(tr.steps, tr.fx_train[0, m], tr.fx_test[0, m], k_td)
        change = np.max(np.abs(want_test[-1] - tr.fx_test[0, m]))
        assert change > 0.1
        np.testing.assert_allclose(tr.fx_train[:, m], want_train, atol=0.01 * change)
        np.testing.assert_allclose(tr.fx_test[:, m], want_test, atol=0.01 * change)


def test_steps_must_be_a_multiple_of_record_every():
    init_fn, apply_fn, _ = stax.Dense(1)
    x = np.ones((2, 2))
    with pytest.raises(ValueError, match="record_every"):
        train.gradient_descent(init_fn, apply_fn, jax.random.PRNGKey(0), x, x[:, :1], x,
                               x[:, :1], learning_rate=0.1, steps=5, record_every=2)  # fmt: skip
