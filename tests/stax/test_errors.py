"""Bad input gets a clear error naming the argument."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from infattn import stax

X = np.random.default_rng(0).standard_normal((2, 4, 3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"attention_mechanism": "TANH"}, "attention_mechanism"),
        ({"pos_emb_type": "ROTARY"}, "pos_emb_type"),
        ({"W_key_std": -1.0}, "W_key_std"),
        ({"W_value_std": float("nan")}, "W_value_std"),
        ({"W_out_std": float("inf")}, "W_out_std"),
        ({"b_std": -0.1}, "b_std"),
        ({"W_pos_emb_std": -2.0}, "W_pos_emb_std"),
        ({"n_chan_pos_emb": 0}, "n_chan_pos_emb"),
        ({"pos_emb_decay_fn": 3.0}, "pos_emb_decay_fn"),
        ({"mc_samples": 1}, "mc_samples"),
    ],
)
def test_attention_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        stax.GlobalSelfAttention(4, 4, 4, 2, **kwargs)


def test_attention_seed_must_be_integer():
    with pytest.raises(TypeError, match="mc_seed"):
        stax.GlobalSelfAttention(4, 4, 4, 2, mc_seed=1.5)
    with pytest.raises(TypeError, match="mc_seed"):
        stax.GlobalSelfAttention(4, 4, 4, 2, mc_seed=True)


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        (lambda: stax.Dense(0), "out_dim"),
        (lambda: stax.Dense(4, W_std=-1.0), "W_std"),
        (lambda: stax.Dense(4, b_std=float("nan")), "b_std"),
        (lambda: stax.Dense(4, parameterization="mup"), "parameterization"),
        (lambda: stax.Conv(4, (0,)), "filter_shape"),
        (lambda: stax.Conv(4, (2,), padding="CAUSAL"), "padding"),
        (lambda: stax.Conv(4, (2,), strides=(1, 1)), "strides"),
        (lambda: stax.FanOut(0), "num"),
        (lambda: stax.LayerNorm(eps=-1.0), "eps"),
    ],
)
def test_layer_constructor_errors(layer, match):
    with pytest.raises(ValueError, match=match):
        layer()


def test_input_rank_and_shapes():
    _, _, kernel_fn = stax.serial(stax.Dense(4), stax.GlobalSelfAttention(4, 4, 4, 1))
    with pytest.raises(ValueError, match="inputs: GlobalSelfAttention needs"):
        kernel_fn(X[:, 0])  # no spatial axis
    with pytest.raises(ValueError, match="x1"):
        kernel_fn(np.ones(3))
    with pytest.raises(ValueError, match="x2: non-batch shape"):
        kernel_fn(X, X[:, :3])
    _, _, conv_kernel_fn = stax.Conv(4, (2, 2))
    with pytest.raises(ValueError, match="Conv needs inputs with 4 axes"):
        conv_kernel_fn(X)


def test_channel_count_mismatch_in_finite_network():
    init_fn, apply_fn, _ = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(2))
    _, params = init_fn(jax.random.PRNGKey(0), X.shape)
    with pytest.raises(ValueError, match="initialised for 3 input channels"):
        apply_fn(params, X[..., :2])
    init_fn, apply_fn, _ = stax.GlobalSelfAttention(4, 4, 4, 1)
    _, params = init_fn(jax.random.PRNGKey(0), X.shape)
    with pytest.raises(ValueError, match="initialised for other input channels"):
        apply_fn(params, X[..., :2])


def test_sum_embedding_channel_mismatch():
    _, _, kernel_fn = stax.GlobalSelfAttention(4, 4, 4, 1, pos_emb_type="SUM", n_chan_pos_emb=5)
    with pytest.raises(ValueError, match="n_chan_pos_emb"):
        kernel_fn(X)


def test_nonlinearity_needs_gaussian_input():
    _, _, kernel_fn = stax.Relu()
    with pytest.raises(ValueError, match="must be Gaussian"):
        kernel_fn(X)
    _, _, kernel_fn = stax.serial(stax.Dense(3), stax.Relu(), stax.Erf())
    with pytest.raises(ValueError, match="must be Gaussian"):
        kernel_fn(X)


def test_fan_in_sum_needs_gaussian_branches():
    _, _, kernel_fn = stax.serial(
        stax.FanOut(2), stax.parallel(stax.Identity(), stax.Dense(3)), stax.FanInSum()
    )
    with pytest.raises(ValueError, match="FanInSum"):
        kernel_fn(X)


def test_decay_function_not_positive_definite():
    def bad_decay(d):
        return 1.0 + 0.0 * d  # rank-one covariance: every position identical

    init_fn, _, kernel_fn = stax.GlobalSelfAttention(
        4, 4, 4, 1, pos_emb_type="SUM", pos_emb_decay_fn=bad_decay
    )
    with pytest.raises(ValueError, match=r"pos_emb_decay_fn: .* not positive definite"):
        init_fn(jax.random.PRNGKey(0), X.shape)
    kernel_fn(X)  # the infinite-width kernel only needs R to be a covariance


def test_non_finite_inputs():
    bad = X.copy()
    bad[0, 1, 2] = np.nan
    _, apply_fn, kernel_fn = stax.Dense(3)
    with pytest.raises(ValueError, match="x1: 1 entries are NaN or infinite"):
        kernel_fn(bad)
    with pytest.raises(ValueError, match="x2: 1 entries"):
        kernel_fn(X, np.where(np.isnan(bad), np.inf, bad))
    # NaN as the mask constant is fine
    kernel_fn(np.where(np.isnan(bad), np.nan, bad), mask_constant=np.nan)
    with pytest.raises(ValueError, match="inputs: 1 entries"):
        apply_fn((np.ones((3, 3)), None), bad)


def test_unknown_get_field():
    _, _, kernel_fn = stax.Dense(3)
    with pytest.raises(ValueError, match="get: unknown kernel field 'nngpp'"):
        kernel_fn(X, None, "nngpp")


def test_combinator_rejects_foreign_layers():
    foreign = (lambda rng, s: (s, ()), lambda p, x: x, lambda x1, x2=None, get=None: None)
    with pytest.raises(TypeError, match=r"not built by infattn\.stax"):
        stax.serial(stax.Dense(3), foreign)


def test_unknown_kernel_fn_keyword():
    _, _, kernel_fn = stax.Dense(3)
    with pytest.raises(TypeError, match="diagonal_spacial"):
        kernel_fn(X, None, "nngp", diagonal_spacial=True)


def test_complex_list_and_integer_key_inputs_are_refused_alike():
    init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(3), stax.Relu())
    _, params = init_fn(jax.random.PRNGKey(0), X.shape)
    for call in (lambda z: kernel_fn(z), lambda z: apply_fn(params, z)):
        with pytest.raises(ValueError, match="expected real numbers, got dtype complex"):
            call(X + 1j)
        with pytest.raises(TypeError, match="expected an array"):
            call(X.tolist())
    with pytest.raises(TypeError, match="rng: expected a JAX PRNG key"):
        init_fn(0, X.shape)
