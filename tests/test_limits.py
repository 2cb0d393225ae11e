"""Convergence sweeps: bias/noise separation, slopes, and the rates of docs/limits.md."""

from __future__ import annotations

import jax
import matplotlib
import numpy as np
import pytest

from infattn import stax
from infattn.limits import (
    ConvergenceSweep,
    convergence_sweep,
    distance,
    fit_loglog_slope,
    uniform_collapse,
)

matplotlib.use("Agg")

KEY = jax.random.PRNGKey(3)


def test_fit_recovers_known_slope() -> None:
    rng = np.random.default_rng(0)
    x = np.array([4, 8, 16, 32, 64, 128.0])
    rel_err = 0.05
    slopes, ses = [], []
    for _ in range(200):
        y = 3.0 * x**-1.0 * np.exp(rel_err * rng.standard_normal(x.size))
        f = fit_loglog_slope(x, y, rel_err * y)
        slopes.append(f.slope)
        ses.append(f.slope_se)
    slopes = np.array(slopes)
    assert abs(slopes.mean() + 1.0) < 0.01
    # the reported SE matches the spread of the fitted slopes
    assert 0.7 < np.mean(ses) / slopes.std() < 1.5
    f = fit_loglog_slope(x, 2.0 * x**-0.5)
    assert abs(f.slope + 0.5) < 1e-10 and abs(np.exp(f.intercept) - 2.0) < 1e-9
    assert np.isnan(fit_loglog_slope([1.0, 2.0], [1.0, -1.0]).slope)


def test_distance_separates_bias_from_noise() -> None:
    """bias_sq is unbiased for ||delta||^2 (also 0), and its SE is right."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 4))
    delta = 0.05 * rng.standard_normal((4, 4))
    for d, target in ((delta, float(np.sum(delta**2))), (0.0 * delta, 0.0)):
        est, se = [], []
        for _ in range(300):
            draws = a + d + 0.3 * rng.standard_normal((40, 4, 4))
            r = distance(draws, a)
            est.append(r.bias_sq)
            se.append(r.bias_sq_se)
        est = np.array(est)
        assert abs(est.mean() - target) < 4 * est.std() / np.sqrt(len(est))
        assert 0.75 < np.mean(se) / est.std() < 1.33
    # analytic kernel with its own Monte Carlo error, declared through analytic_se
    est = []
    for _ in range(300):
        a_hat = a + 0.1 * rng.standard_normal((4, 4))
        draws = a + delta + 0.3 * rng.standard_normal((40, 4, 4))
        est.append(distance(draws, a_hat, np.full((4, 4), 0.1)).bias_sq)
    est = np.array(est)
    assert abs(est.mean() - np.sum(delta**2)) < 4 * est.std() / np.sqrt(len(est))
    r = distance(a + delta + 0.01 * rng.standard_normal((50, 4, 4)), a)
    assert r.resolved and abs(r.rel_bias - np.linalg.norm(delta) / np.linalg.norm(a)) < 0.01
    assert r.rel_bias_ci[0] <= r.rel_bias <= r.rel_bias_ci[1]
    with pytest.raises(ValueError, match="draws"):
        distance(np.zeros((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match="analytic"):
        distance(np.zeros((5, 3)), np.ones(4))


def _scaled_dense_factory(n_heads: int, width: int) -> tuple:
    """Synthetic: E[NNGP] = (1 + 1/(heads * width)) <x, x'>/C, a known 1/(H w) bias."""
    init_fn, apply_fn, kernel_fn = stax.Dense(256, W_std=float(np.sqrt(1 + 1 / (n_heads * width))))
    return init_fn, apply_fn, kernel_fn


def test_sweep_recovers_known_rates_and_reports() -> None:
    x = jax.random.normal(KEY, (3, 6))
    analytic = {"nngp": np.asarray(x @ x.T / 6)}
    sweep = convergence_sweep(
        _scaled_dense_factory,
        x,
        heads=[1, 2, 4],
        widths=[2, 4, 8, 16],
        n_samples=200,
        key=KEY,
        get="nngp",
        analytic=analytic,
    )
    assert isinstance(sweep, ConvergenceSweep)
    for h in (1, 2, 4):
        f = sweep.fit("nngp", "width", h)
        assert abs(f.slope + 1) < max(0.15, 3 * f.slope_se), str(f)
    for w in (2, 4):
        f = sweep.fit("nngp", "heads", w)
        assert abs(f.slope + 1) < max(0.2, 3 * f.slope_se), str(f)
    r = sweep.row("nngp", 1, 2)
    assert r.resolved and abs(r.rel_bias - 0.5) < 0.05
    text = str(sweep)
    assert "rel_bias" in text and "slope" in text
    fig = sweep.plot()
    assert len(fig.axes) == 2


def test_sweep_rejects_factory_ignoring_heads() -> None:
    x = jax.random.normal(KEY, (2, 3, 4))

    def factory(n_heads: int, width: int) -> tuple:
        return stax.GlobalSelfAttention(width, width, width, 2)  # ignores n_heads

    with pytest.raises(ValueError, match="n_heads"):
        convergence_sweep(factory, x, heads=[1, 2], widths=[4], n_samples=4, key=KEY)


def test_tied_linear_attention_nngp_bias_falls_like_one_over_key_width() -> None:
    """docs/limits.md: relative NNGP bias = B / d_k + O(d_k^-2), flat in heads (one layer).

    Over d_k = 8..64 the local slope rises from -0.77 to -0.95 (exact check in the
    docs), so the fitted slope is expected in [-1.05, -0.75].
    """
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 8))

    def factory(n_heads: int, width: int) -> tuple:
        return stax.GlobalSelfAttention(512, width, 32, n_heads, W_key_std=2.0)

    sweep = convergence_sweep(
        factory,
        x,
        heads=[16],
        widths=[8, 16, 32, 64],
        n_samples=192,
        key=KEY,
        get="nngp",
        vmap_axes=0,
    )
    f = sweep.fit("nngp", "width", 16)
    assert len(f.x) >= 3, str(sweep)
    assert -1.05 - 2 * f.slope_se < f.slope < -0.75 + 2 * f.slope_se, str(sweep)
    assert f.slope_se < 0.15


def test_standard_scaling_sweep_uses_analytic_standard_errors() -> None:
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 4))

    def factory(n_heads: int, width: int, seed: int = 0) -> tuple:
        return stax.GlobalSelfAttention(
            64, width, 16, n_heads, linear_scaling=False, mc_samples=64, mc_seed=seed
        )

    reps = [factory(1, 8, s)[2](x, None, "nngp") for s in range(3)]
    reps = [{"nngp": r} for r in reps]
    sweep = convergence_sweep(
        factory,
        x,
        heads=[1, 4],
        widths=[8],
        n_samples=16,
        key=KEY,
        get="nngp",
        analytic=reps,
        vmap_axes=0,
    )
    exact = convergence_sweep(
        factory,
        x,
        heads=[1, 4],
        widths=[8],
        n_samples=16,
        key=KEY,
        get="nngp",
        analytic=reps[0],
        vmap_axes=0,
    )
    for h in (1, 4):
        a, b = sweep.row("nngp", h, 8), exact.row("nngp", h, 8)
        assert np.isfinite(a.bias_sq) and a.bias_sq_se > 0
        assert a.rel_noise > b.rel_noise  # the analytic estimate's SE is included


def test_untied_linear_attention_collapses_to_uniform_averaging() -> None:
    """docs/limits.md: attention matrices -> uniform like d^-1/2, kernel bias like 1/d."""
    x = jax.random.normal(jax.random.PRNGKey(2), (2, 4, 6))
    w_std = float(np.sqrt(2.0))

    def factory(width: int) -> tuple:
        return stax.GlobalSelfAttention(
            256, width, 16, 4, W_key_std=w_std, W_query_std=w_std, tie_query_key=False
        )

    res = uniform_collapse(
        x, [8, 32, 128, 512], key=KEY, n_samples=96, qk_std=2.0, factory=factory, vmap_axes=0
    )
    f = res.attention_fit
    assert abs(f.slope + 0.5) < max(0.08, 3 * f.slope_se), str(res)
    f = res.kernel.fit("nngp", "width", 1)
    assert len(f.x) >= 2 and f.slope < -0.6, str(res)
    assert "slope" in str(res)
    res.plot()
