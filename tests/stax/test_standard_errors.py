"""The standard errors of a deep model with Monte Carlo attention are honest.

For 20 values of ``mc_seed`` (few samples each) the spread of the estimates of every
kernel entry must match the standard error the model reports: per entry the standard
deviation of the 20 estimates divided by the mean reported SE, median within
``[0.8, 1.25]`` (``docs/standard-errors.md``). Measured: about 0.95 to 1.06.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from infattn import stax

X = np.random.default_rng(0).standard_normal((4, 3, 4))
SEEDS = range(20)


def _attention(seed: int):
    return stax.GlobalSelfAttention(
        4,
        4,
        4,
        2,
        linear_scaling=False,
        attention_mechanism="SOFTMAX",
        mc_samples=64,
        mc_seed=seed,
        W_key_std=2.0,
        W_query_std=2.0,
    )


def _mlp():
    return [stax.LayerNorm(), stax.Dense(8), stax.Relu(), stax.Dense(4)]


def one_layer_then_pooling(seed: int):
    """Attention, LayerNorm, MLP, pooling, readout."""
    return stax.serial(
        stax.Dense(4), _attention(seed), *_mlp(), stax.GlobalAvgPool(), stax.Dense(1)
    )


def two_layers(seed: int):
    """Two Monte Carlo attention layers with LayerNorm and an MLP between."""
    return stax.serial(
        stax.Dense(4), _attention(seed), *_mlp(), stax.LayerNorm(), _attention(1000 + seed),
        stax.Dense(2),
    )  # fmt: skip


@pytest.mark.parametrize("model", [one_layer_then_pooling, two_layers])
def test_spread_over_seeds_matches_reported_standard_errors(model):
    kernels = [model(seed)[2](X) for seed in SEEDS]
    for kind in ("nngp", "ntk"):
        estimates = np.stack([getattr(k, kind) for k in kernels])
        ses = np.stack([getattr(k, f"{kind}_se") for k in kernels])
        assert np.all(ses > 0), kind
        ratio = np.median(estimates.std(0, ddof=1) / ses.mean(0))
        assert 0.8 <= ratio <= 1.25, f"{model.__name__} {kind}: spread / SE = {ratio:.3f}"


def test_two_layers_under_jit_match_eager():
    """The second layer's replicate seeds are Python ints also while ``jit`` traces."""
    kernel_fn = two_layers(0)[2]
    get = ("nngp", "ntk", "nngp_se", "ntk_se")
    eager = kernel_fn(X, None, get)
    jitted = jax.jit(lambda x: kernel_fn(x, None, get))(X)
    for a, b in zip(eager, jitted, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
