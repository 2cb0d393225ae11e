"""What the panels compute: library results, progressive and consistent."""

import jax
import numpy as np
import pytest

from infattn.explore import compute
from infattn.explore.model import Config, build_model, make_inputs

TINY = Config(width=8, draws=8, n_inputs=2, seq_len=3)


def test_normal_init_has_the_parameter_structure_and_standard_normal_law():
    init_fn = build_model(Config(width=16))[0]
    shape = (2, 8, 4)
    out, params = init_fn(jax.random.PRNGKey(0), shape)
    out_n, params_n = compute.normal_init(init_fn)(jax.random.PRNGKey(0), shape)
    assert out_n == out
    a, b = jax.tree_util.tree_structure(params), jax.tree_util.tree_structure(params_n)
    assert a == b
    leaves = jax.tree_util.tree_leaves
    for p, q in zip(leaves(params), leaves(params_n), strict=True):
        assert p.shape == q.shape and p.dtype == q.dtype
    flat = np.concatenate([np.ravel(q) for q in jax.tree_util.tree_leaves(params_n)])
    n = flat.size  # mean 0, variance 1, kurtosis 3 within 5 standard errors
    assert abs(flat.mean()) < 5 / np.sqrt(n)
    assert abs(flat.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(np.mean(flat**4) - 3) < 5 * np.sqrt(96 / n)


def test_kernel_views_refine_the_estimate_and_match_the_library():
    views = list(compute.kernel_views(TINY.replace(draws=12)))
    assert views[0].mean is None and [v.n_draws for v in views[1:]] == [8, 12]
    last = views[-1]
    x = make_inputs(TINY)
    k = build_model(TINY)[2](x, None, ("nngp", "ntk"))
    np.testing.assert_allclose(last.analytic["ntk"][0], k.ntk, rtol=5e-5)  # padded: float32 order
    for kind in ("nngp", "ntk"):  # the running estimate is the draws' mean and SE
        d = last.distance[kind]
        assert d.n_samples == 12
        dev = np.linalg.norm(last.mean[kind] - last.analytic[kind][0]) / d.analytic_norm
        assert dev == pytest.approx(d.rel_fro, rel=1e-5)
        assert np.all(last.se[kind] > 0)


def test_attention_view_limits():
    cfg = Config(seq_len=5, pos_emb="NONE")
    tied = compute.attention_view(cfg)
    assert np.allclose(tied.weights.sum(-1), 1.0) and tied.R is None
    # tied 1/d attention -> softmax(S), S the read-in Dense(b_std=0.1) kernel x x^T / C + 0.01
    x = make_inputs(cfg)[0].astype(np.float64)
    s = x @ x.T / x.shape[1] + 0.01
    logw = np.log(tied.weights)
    np.testing.assert_allclose(logw - logw[:, :1], s - s[:, :1], atol=1e-4)
    untied = compute.attention_view(Config(seq_len=5, scaling="1/d untied"))
    np.testing.assert_allclose(untied.weights, np.full((5, 5), 0.2), rtol=1e-6)
    assert untied.R.shape == (5, 5) and np.allclose(np.diag(untied.R), 1.0)
    sqrt = compute.attention_view(Config(seq_len=5, scaling="1/sqrt(d)", seed=3))
    assert np.allclose(sqrt.weights.sum(-1), 1.0) and not np.allclose(sqrt.weights, 0.2)
    with pytest.raises(ValueError, match="index"):
        compute.attention_view(Config(n_inputs=2), index=2)


def test_models_are_cached_per_structure():
    a = compute.model(Config(heads=2))
    assert compute.model(Config(heads=2, draws=16)) is a  # draws do not change the model
    assert compute.model(Config(heads=4)) is not a


def test_unoptimised_and_optimised_monte_carlo_steps_draw_the_same_networks():
    x = make_inputs(TINY)
    fast, optimised = (compute.kernel_chunk(TINY, x, 1, optimized) for optimized in (False, True))
    for kind in compute.KINDS:
        ref = optimised[kind]
        np.testing.assert_allclose(fast[kind], ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_float64_configurations_compute_in_float64_without_changing_the_default():
    view = next(compute.kernel_views(TINY.replace(dtype="float64")))
    assert view.analytic["nngp"][0].dtype == np.float64
    assert jax.numpy.zeros(1).dtype == (np.float64 if jax.config.jax_enable_x64 else np.float32)


def test_standard_scaling_kernels_carry_their_standard_errors():
    view = next(compute.kernel_views(TINY.replace(scaling="1/sqrt(d)")))
    for kind in compute.KINDS:
        mean, se = view.analytic[kind]
        assert se is not None and se.shape == mean.shape
        assert 0 < se.max() < 0.05 * np.abs(mean).max()
    assert next(compute.kernel_views(TINY)).analytic["nngp"][1] is None


@pytest.mark.parametrize(
    "cfg",
    [
        Config(n_inputs=3, seq_len=5),
        Config(n_inputs=2, seq_len=7, pos_emb="CONCAT", depth=2, residual=False),
        Config(n_inputs=4, seq_len=3, layernorm=False, val_pos_emb=True, decay="exponential"),
        Config(n_inputs=3, seq_len=4, scaling="1/d untied", nonlinearity="gelu"),
        Config(n_inputs=3, inputs="digits rows", dtype="float64"),
    ],
    ids=["default", "concat-deep", "no-ln-val-pos", "untied", "digits-f64"],
)
def test_padded_analytic_kernels_equal_the_kernels_of_the_inputs_themselves(cfg):
    x = make_inputs(cfg)
    xp, sentinel = compute.padded(x)
    assert xp.shape[:2] == compute.PADDED_SHAPE and np.all(np.abs(x) < sentinel)
    got = compute.analytic_kernels(cfg, x)
    with compute.precision(cfg):
        want = build_model(cfg)[2](x, None, ("nngp", "ntk"))
    tol = 1e-9 if cfg.dtype == "float64" else 5e-5  # summation order differs
    for kind in ("nngp", "ntk"):
        ref = np.asarray(getattr(want, kind))
        assert got[kind][0].shape == ref.shape == (len(x), len(x))
        np.testing.assert_allclose(got[kind][0], ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_padding_keeps_inputs_larger_than_the_panel_shape():
    x = np.zeros((20, 40, 2), np.float32)
    xp, _ = compute.padded(x)
    assert xp.shape == (20, 40, 2)
