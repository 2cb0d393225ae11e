"""Dropout, FanInConcat, FanInProd and multi-input parallel: finite widths, masks, errors.

Parity with neural-tangents lives in ``tests/reference`` (cases ``dropout_*``,
``concat_*``, ``fanin_prod*``); here: Monte Carlo of wide finite networks against
the kernels (relative Frobenius error below 10%, several standard errors above the
Monte Carlo noise of these sizes), properties and errors.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from infattn import stax
from infattn.empirical import monte_carlo_kernel_fn

X = np.random.default_rng(0).standard_normal((3, 4, 3))
WIDE = 256


def _mc_error(layers, kind="nngp", draws=32, **kwargs):
    init_fn, apply_fn, kernel_fn = stax.serial(*layers)
    exact = np.asarray(kernel_fn(X, None, kind, **kwargs))
    mc = monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(3), draws)
    est = mc(X, None, kind, return_se=True, **kwargs)
    diff = np.asarray(est.mean(kind)) - exact
    return np.linalg.norm(diff) / np.linalg.norm(exact), np.linalg.norm(
        est.se(kind)
    ) / np.linalg.norm(exact)


@pytest.mark.parametrize(
    "name",
    ["dropout", "concat-channels", "concat-positions", "prod"],
)
def test_wide_network_matches_kernel(name):
    pair = stax.parallel(stax.Dense(WIDE, W_std=1.5), stax.serial(stax.Relu(), stax.Dense(WIDE)))
    middle = {
        "dropout": [stax.Relu(), stax.Dropout(0.5)],
        "concat-channels": [stax.FanOut(2), pair, stax.FanInConcat()],
        "concat-positions": [
            stax.FanOut(2),
            stax.parallel(stax.Dense(WIDE), stax.Dense(WIDE, W_std=2.0)),
            stax.FanInConcat(axis=1),
            stax.Relu(),
        ],
        "prod": [stax.FanOut(2), pair, stax.FanInProd()],
    }[name]
    layers = [stax.Dense(WIDE, b_std=0.2), *middle, stax.Dense(WIDE)]
    err, se = _mc_error(layers, draws=128)  # 32 draws: SE 0.06 against the bound 0.1
    assert err < 0.1, f"{name}: relative error {err:.3f} (MC SE {se:.3f})"


def test_dropout_scales_only_self_pairs():
    base = stax.serial(stax.Dense(4), stax.Relu())
    drop = stax.serial(base, stax.Dropout(0.25))
    k0, k1 = base[2](X, None, "nngp"), drop[2](X, None, "nngp")
    same = np.zeros(k0.shape, bool)
    for i in range(3):
        same[i, i] = np.eye(4, dtype=bool)
    np.testing.assert_allclose(k1[same], 4 * k0[same])
    np.testing.assert_allclose(k1[~same], k0[~same])
    # x2 equal to x1 counts as the same inputs (neural-tangents' x1_is_x2), another x2 not
    np.testing.assert_allclose(drop[2](X, X + 0.0, "nngp"), k1)
    np.testing.assert_allclose(
        drop[2](X, X + 1e-3, "nngp")[same], base[2](X, X + 1e-3, "nngp")[same]
    )
    test_mode = stax.serial(base, stax.Dropout(0.25, mode="test"))
    np.testing.assert_allclose(test_mode[2](X, None, "nngp"), k0)


def test_dropout_apply():
    _, apply_fn, _ = stax.Dropout(0.5)
    y = np.asarray(apply_fn((), np.ones((50, 40)), rng=jax.random.PRNGKey(0)))
    assert set(np.unique(y)) == {0.0, 2.0} and abs(np.mean(y == 2.0) - 0.5) < 0.05
    with pytest.raises(ValueError, match="rng"):
        apply_fn((), np.ones((2, 3)))
    assert np.all(stax.Dropout(0.5, "test")[1]((), np.ones((2, 3))) == 1.0)


def test_multi_input_parallel_equals_fan_out():
    branches = stax.parallel(stax.Dense(3, W_std=1.3), stax.serial(stax.Relu(), stax.Dense(3)))
    tail = stax.serial(stax.Dense(2), stax.FanOut(2))
    one = stax.serial(stax.Dense(3), stax.FanOut(2), branches, stax.FanInConcat())
    two = stax.serial(stax.parallel(stax.Dense(3), stax.Dense(3)), branches, stax.FanInConcat())
    x2 = X[:2] + 0.3
    ref = one[2](X, x2, ("nngp", "ntk"))
    got = two[2]((X, X), (x2, x2), ("nngp", "ntk"))
    # two independent Dense layers on the same input have the same kernel as one copied
    np.testing.assert_allclose(got.nngp, ref.nngp, rtol=1e-6)
    np.testing.assert_allclose(got.ntk, ref.ntk, rtol=1e-6)
    init_fn, apply_fn, _ = stax.serial(two, tail)
    _, params = init_fn(jax.random.PRNGKey(0), ((-1, 4, 3), (-1, 4, 3)))
    outs = apply_fn(params, (X, X[:, :, ::-1]))
    assert [o.shape for o in outs] == [(3, 4, 2)] * 2


def test_concat_masks_and_shapes():
    pad = X.copy()
    pad[1, 2:] = -9.0
    net = stax.serial(
        stax.Dense(3),
        stax.FanOut(2),
        stax.parallel(stax.Dense(2), stax.Dense(2)),
        stax.FanInConcat(axis=-2),
    )
    k = net[2](pad, None, ("nngp", "mask1"), mask_constant=-9.0)
    assert k.nngp.shape == (3, 3, 8, 8)
    assert k.mask1[1].tolist() == [False, False, True, True] * 2
    # positions of different branches are independent: off-diagonal blocks vanish
    assert np.all(np.asarray(k.nngp)[:, :, :4, 4:] == 0)
    init_fn, apply_fn, _ = net
    out_shape, params = init_fn(jax.random.PRNGKey(0), X.shape)
    y = apply_fn(params, pad, mask_constant=-9.0)
    assert out_shape == y.masked_value.shape == (3, 8, 2)
    np.testing.assert_array_equal(y.mask, k.mask1)


def test_fan_in_errors():
    two = stax.serial(stax.Dense(3), stax.FanOut(2), stax.parallel(stax.Relu(), stax.Relu()))
    with pytest.raises(NotImplementedError, match="batch axis"):
        stax.serial(two, stax.FanInConcat(axis=0))[2](X)
    with pytest.raises(ValueError, match="Gaussian"):
        stax.serial(two, stax.FanInConcat(axis=1))[2](X)
    widths = stax.parallel(stax.Dense(2), stax.Dense(3))
    with pytest.raises(ValueError, match="shapes"):
        stax.serial(stax.FanOut(2), widths, stax.FanInProd())[2](X)
    with pytest.raises(ValueError, match="rate"):
        stax.Dropout(0.0)
    with pytest.raises(ValueError, match="mode"):
        stax.Dropout(0.5, mode="eval")


def test_repeat_apply_uses_each_repetitions_parameters():
    block = stax.serial(stax.Dense(3, b_std=0.1), stax.Relu())
    init_fn, apply_fn, _ = stax.repeat(block, 3)
    _, params = init_fn(jax.random.PRNGKey(0), X.shape)
    y = X
    for i in range(3):
        y = block[1](jax.tree_util.tree_map(lambda p, i=i: p[i], params), y)
    np.testing.assert_allclose(apply_fn(params, X), y, rtol=1e-6)
    with pytest.raises(ValueError, match="keeps the shape"):
        stax.repeat(stax.Dense(5), 2)[0](jax.random.PRNGKey(0), X.shape)
