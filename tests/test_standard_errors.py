"""Honesty of the reported standard errors of Monte Carlo (standard-scaling) models.

The spread of a model's kernel over independent ``mc_seed`` values must match the
standard error ``kernel_fn`` reports (``docs/standard-errors.md``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infattn import stax

N_SEEDS = 20


def _model(seed: int, n_mc_layers: int):
    def attention(s):
        return stax.GlobalSelfAttention(
            8,
            4,
            4,
            2,
            linear_scaling=False,
            attention_mechanism="SOFTMAX",
            mc_samples=200,
            mc_seed=s,
        )

    block = [stax.LayerNorm(), stax.Dense(8), stax.Relu(), stax.Dense(8)]
    layers = [stax.Dense(8), attention(seed), *block]
    if n_mc_layers == 2:
        layers += [attention(seed + 1000), *block]
    return stax.serial(*layers, stax.GlobalAvgPool())[2]


@pytest.mark.parametrize("n_mc_layers", [1, 2])
def test_reported_se_matches_spread_over_seeds(n_mc_layers):
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 3, 4))
    ks = [_model(seed, n_mc_layers)(x, None) for seed in range(N_SEEDS)]
    for name in ("nngp", "ntk"):
        est = np.stack([np.asarray(getattr(k, name)) for k in ks])
        se = np.stack([np.asarray(getattr(k, name + "_se")) for k in ks])
        iu = np.triu_indices(x.shape[0])
        ratio = est.std(axis=0, ddof=1)[iu] / se.mean(axis=0)[iu]
        assert 0.8 <= float(np.median(ratio)) <= 1.25, (name, ratio)
    assert all(k.replicates is None for k in ks)
    assert jnp.all(jnp.isfinite(ks[0].nngp_se))
