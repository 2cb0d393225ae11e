"""The finite-head law of a whole model (``limits.sample_finite_head_outputs``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infattn import limits, stax
from infattn.kernel import Kernel
from tools import law_vs_finite

X = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 4))  # N=2, L=3


def attention(n_heads, linear_scaling=False):
    return stax.GlobalSelfAttention(
        8,
        8,
        8,
        n_heads=n_heads,
        linear_scaling=linear_scaling,
        W_key_std=1.5,
        W_query_std=1.5,
        b_std=0.1,
        mc_samples=8192,
    )


def flat(y):
    return np.asarray(y).reshape(y.shape[0], -1)


def excess_kurtosis(y):
    """Excess kurtosis pooled over entries (each standardised by its own moments)."""
    z = (y - y.mean(0)) / y.std(0)
    return float(np.mean(z**4) - 3.0)


@pytest.mark.parametrize("n_heads", [1, 4])
def test_one_layer_covariance_is_the_nngp(n_heads):
    _, _, kernel_fn = attention(n_heads)
    y = flat(limits.sample_finite_head_outputs(kernel_fn, X, 4000, jax.random.PRNGKey(0)))
    k = kernel_fn(X, get=("nngp", "nngp_se"))
    prods = y[:, :, None] * y[:, None, :]  # outputs have mean zero
    cov = prods.mean(0)
    se = prods.std(0) / np.sqrt(len(y))
    nngp = np.asarray(k.nngp).transpose(0, 2, 1, 3).reshape(6, 6)
    nngp_se = np.asarray(k.nngp_se).transpose(0, 2, 1, 3).reshape(6, 6)
    z = np.abs(cov - nngp) / np.sqrt(se**2 + nngp_se**2)
    assert z.max() < 4.0, z.max()


def test_one_head_is_heavy_tailed_and_one_over_d_is_gaussian():
    key = jax.random.PRNGKey(2)
    heavy = flat(limits.sample_finite_head_outputs(attention(1)[2], X, 4000, key))
    gauss = flat(limits.sample_finite_head_outputs(attention(1, True)[2], X, 4000, key))
    # SE of a pooled excess kurtosis of 4000 Gaussian draws is about 0.04 here
    assert excess_kurtosis(heavy) > 0.5, excess_kurtosis(heavy)
    assert abs(excess_kurtosis(gauss)) < 0.2, excess_kurtosis(gauss)


def test_two_attention_layers_with_masks():
    mc = dict(n_heads=2, linear_scaling=False, mc_samples=64)
    _, _, kernel_fn = stax.serial(
        stax.Dense(8),
        stax.GlobalSelfAttention(8, 8, 8, **mc),
        stax.LayerNorm(),
        stax.Dense(8),
        stax.Relu(),
        stax.Dense(8),
        stax.GlobalSelfAttention(8, 8, 8, **mc),
        stax.GlobalAvgPool(),
    )
    key = jax.random.PRNGKey(3)
    y = limits.sample_finite_head_outputs(kernel_fn, X, 6, key, n_channels=2, batch_size=4)
    assert y.shape == (6, 2, 2) and bool(jnp.all(jnp.isfinite(y)))
    assert float(jnp.std(y[:, 0, 0])) > 0
    xm = X.at[1, 2].set(-7.0)  # last position of the second input is padding
    ym = limits.sample_finite_head_outputs(kernel_fn, xm, 6, key, mask_constant=-7.0)
    assert ym.shape == (6, 2, 1) and bool(jnp.all(jnp.isfinite(ym)))


def test_bad_inputs_raise():
    _, _, kernel_fn = attention(1)
    with pytest.raises(TypeError, match="key"):
        limits.sample_finite_head_outputs(kernel_fn, X, 3, 0)
    with pytest.raises(ValueError, match="n_samples"):
        limits.sample_finite_head_outputs(kernel_fn, X, 0, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="x"):
        limits.sample_finite_head_outputs(
            kernel_fn, X.at[0, 0, 0].set(jnp.nan), 3, jax.random.PRNGKey(0)
        )

    def not_psd(k: Kernel) -> Kernel:
        return k.replace(nngp=-kernel_fn(k).nngp)

    with pytest.raises(ValueError, match="positive semi-definite"):
        limits.sample_finite_head_outputs(not_psd, X, 3, jax.random.PRNGKey(0))


def _covariance_error(n_heads, n_samples, key):
    """Max over entries of ``|law covariance - nngp| / SE`` and the relative Frobenius error,
    for two standard-scaling layers with LayerNorm and a ReLU MLP between."""
    _, _, kernel_fn = stax.serial(
        stax.Dense(8),
        attention(n_heads),
        stax.LayerNorm(),
        stax.Dense(8),
        stax.Relu(),
        stax.Dense(8),
        attention(n_heads),
    )
    y = limits.sample_finite_head_outputs(kernel_fn, X, n_samples, key, n_channels=8)
    y = np.asarray(y).transpose(0, 3, 1, 2).reshape(n_samples, 8, 6)
    prods = np.mean(y[:, :, :, None] * y[:, :, None, :], axis=1)  # per draw, over channels
    cov, se = prods.mean(0), prods.std(0) / np.sqrt(n_samples)
    k = kernel_fn(X, get=("nngp", "nngp_se"))
    nngp, nngp_se = (np.asarray(a).transpose(0, 2, 1, 3).reshape(6, 6) for a in k)
    z = np.abs(cov - nngp) / np.sqrt(se**2 + nngp_se**2)
    return float(z.max()), float(np.linalg.norm(cov - nngp) / np.linalg.norm(nngp))


@pytest.mark.slow
def test_deep_model_converges_to_the_nngp_as_heads_grow():
    """With a nonlinear map between two layers the law's covariance is biased at finite H
    (E f(K) != f(E K)), by O(1/H): resolved at H = 1, within SE at H = 32, and the relative
    error falls with H (figures in docs/limits.md)."""
    errors = {h: _covariance_error(h, 3000, jax.random.PRNGKey(h)) for h in (1, 4, 32)}
    (z1, r1), (_, r4), (z32, r32) = errors.values()
    assert z1 > 5.0 and z32 < 4.0, errors
    assert r1 > r4 and r1 > 2 * r32, errors


def test_one_layer_law_matches_wide_finite_networks():
    """Finite networks (width 256), the finite-head law and the GP of one SOFTMAX layer with
    one head, 2000 draws each (the pre-LN stack needs more draws than CI affords: figures
    from ``tools/law_vs_finite.py`` in ``docs/limits.md``). Both are clearly heavy-tailed,
    the law's excess kurtosis matches the networks' and the energy test cannot tell them
    apart, while it does tell the GP (same covariance) from the networks."""
    with jax.enable_x64(False):
        c = law_vs_finite.compare(law_vs_finite.one_layer(1), 2000)
    for k, se in ((c.kurtosis_finite, c.kurtosis_finite_se), (c.kurtosis_law, c.kurtosis_law_se)):
        assert np.all(k > 2 * se), c.lines()
    assert np.all(np.abs(c.kurtosis_z()) < 4.0), c.lines()
    assert c.energy_law.p_value > 0.01 and c.energy_gp.p_value < 0.01, c.lines()
