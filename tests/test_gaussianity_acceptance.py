"""Acceptance: the outputs of finite standard-scaling attention are a Gaussian scale
mixture that becomes Gaussian as heads grow (issue: limit-checking utilities).

A single SOFTMAX head (key/value width 256) is clearly non-Gaussian; 64 heads pass
every test; the excess kurtosis falls like 1/H.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from infattn import stax
from infattn.diagnostics import gaussianity_report, kurtosis_vs_heads, mardia, skew_kurtosis

DRAWS, WIDTH = 4096, 256
X = np.random.default_rng(0).standard_normal((1, 4, 4))


def output_samples(n_heads: int, draws: int = DRAWS, seed: int = 0) -> np.ndarray:
    """``(draws, L)``: one output channel at every position, one row per initialisation."""
    init_fn, apply_fn, _ = stax.GlobalSelfAttention(
        1, WIDTH, WIDTH, n_heads, linear_scaling=False, W_query_std=2.0, W_key_std=2.0
    )

    def one(key):
        _, params = init_fn(key, X.shape)
        return apply_fn(params, X)[0, :, 0]

    keys = jax.random.split(jax.random.PRNGKey(seed), draws)
    return np.asarray(jax.lax.map(one, keys, batch_size=256))


@pytest.mark.slow
def test_single_head_is_not_gaussian():
    samples = output_samples(1)
    moments = skew_kurtosis(samples)
    assert np.all(moments.excess_kurtosis > 0)
    report = gaussianity_report(samples, seed=0)
    kurtosis_p = [p for name, p in report.p_values.items() if name.startswith("excess_kurtosis")]
    assert len(kurtosis_p) == X.shape[1] and max(kurtosis_p) < 1e-3
    assert mardia(samples).kurtosis_p < 1e-3
    assert report.rejects_gaussian


@pytest.mark.slow
def test_many_heads_are_gaussian():
    samples = output_samples(64, seed=1)
    report = gaussianity_report(samples, alpha=0.01, seed=0)
    assert not report.rejects_gaussian, str(report)


@pytest.mark.slow
def test_kurtosis_falls_like_one_over_heads():
    heads = (1, 2, 4, 8, 16, 32)
    scaling = kurtosis_vs_heads({h: output_samples(h, seed=10 + h) for h in heads}, seed=0)
    assert abs(scaling.slope + 1) < 0.3, f"slope {scaling.slope:.3f} ± {scaling.slope_se:.3f}"
