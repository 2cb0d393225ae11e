"""Variable-length sequences: padding is invisible to the unpadded positions."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from infattn import stax

PAD = -1e4
RNG = np.random.default_rng(3)


def decay(d):
    return 1.0 / (1.0 + d**2)


def transformer(mechanism="SOFTMAX", linear_scaling=True, pos_emb_type="SUM"):
    attention = stax.GlobalSelfAttention(
        8,
        8,
        8,
        2,
        linear_scaling=linear_scaling,
        attention_mechanism=mechanism,
        pos_emb_type=pos_emb_type,
        pos_emb_decay_fn=decay,
        b_std=0.1,
    )
    mlp = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(8))
    return stax.serial(
        stax.Dense(8, b_std=0.2),
        stax.FanOut(2),
        stax.parallel(stax.Identity(), attention),
        stax.FanInSum(),
        stax.LayerNorm(),
        stax.FanOut(2),
        stax.parallel(stax.Identity(), mlp),
        stax.FanInSum(),
        stax.LayerNorm(),
    )


def padded(x, n_pad):
    out = np.concatenate([x, np.full((x.shape[0], n_pad, x.shape[2]), PAD)], axis=1)
    return out


VARIANTS = [
    ("SOFTMAX", True),
    ("RELU", True),
    ("ABS", True),
    ("IDENTITY", True),
    ("IDENTITY", False),
]


@pytest.mark.parametrize(("mechanism", "linear"), VARIANTS)
def test_padding_does_not_change_unpadded_kernel(mechanism, linear):
    x = RNG.standard_normal((1, 5, 3))
    _, _, kernel_fn = transformer(mechanism, linear)
    short = kernel_fn(x, None, ("nngp", "ntk"))
    long = kernel_fn(padded(x, 3), None, ("nngp", "ntk"), mask_constant=PAD)
    # ReLU's angle arccos(q12 / sqrt(q11 q22)) has infinite slope at q12 = sqrt(q11 q22):
    # on the diagonal a rounding error eps in q12 moves the NTK factor by sqrt(eps) ~ 1e-8.
    for name, rtol in (("nngp", 1e-10), ("ntk", 1e-7)):
        full = np.asarray(getattr(long, name))
        np.testing.assert_allclose(full[..., :5, :5], getattr(short, name), rtol=rtol, atol=1e-12)
        assert np.all(full[..., 5:, :] == 0) and np.all(full[..., :, 5:] == 0)


@pytest.mark.parametrize(("mechanism", "linear"), VARIANTS)
def test_pooled_kernel_ignores_padding(mechanism, linear):
    x = RNG.standard_normal((2, 4, 3))
    _, _, kernel_fn = stax.serial(
        transformer(mechanism, linear), stax.GlobalAvgPool(), stax.Dense(1)
    )
    reference = kernel_fn(x, None, ("nngp", "ntk"))
    mixed = np.concatenate([padded(x[:1], 2), padded(x[1:], 2)])
    mixed[1, 3:] = PAD  # second example is shorter: compare with its truncation too
    out = kernel_fn(mixed, None, ("nngp", "ntk"), mask_constant=PAD)
    np.testing.assert_allclose(out.nngp[0, 0], reference.nngp[0, 0], rtol=1e-8)
    short = kernel_fn(x[1:, :3], None, ("nngp", "ntk"))
    np.testing.assert_allclose(out.nngp[1, 1], short.nngp[0, 0], rtol=1e-8)
    np.testing.assert_allclose(out.ntk[1, 1], short.ntk[0, 0], rtol=1e-8)


@pytest.mark.parametrize(("mechanism", "linear"), VARIANTS)
def test_fully_masked_sequence_is_finite(mechanism, linear):
    x = RNG.standard_normal((3, 4, 3))
    x[1] = PAD
    init_fn, apply_fn, kernel_fn = stax.serial(
        transformer(mechanism, linear), stax.GlobalAvgPool(), stax.Dense(1)
    )
    k = kernel_fn(x, None, ("nngp", "ntk", "cov1"), mask_constant=PAD)
    for name in ("nngp", "ntk", "cov1"):
        assert np.all(np.isfinite(getattr(k, name))), name
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    out = apply_fn(params, x, mask_constant=PAD)
    assert isinstance(out, stax.MaskedArray)
    assert np.all(np.isfinite(out.masked_value))
    assert bool(out.mask[1]) and not bool(out.mask[0])


@pytest.mark.parametrize("mechanism", ["SOFTMAX", "RELU", "IDENTITY"])
def test_finite_attention_ignores_padded_keys(mechanism):
    x = RNG.standard_normal((2, 5, 3))
    init_fn, apply_fn, _ = stax.GlobalSelfAttention(
        6, 4, 4, 2, attention_mechanism=mechanism, pos_emb_type="SUM", pos_emb_decay_fn=decay
    )
    _, params = init_fn(jax.random.PRNGKey(1), (2, 8, 3))
    long = apply_fn(params, padded(x, 3), mask_constant=PAD)
    short_params = dict(params, pos_emb=params["pos_emb"][:, :5])
    short = apply_fn(short_params, x)
    # the Cholesky factor of the leading block is the leading block of the factor
    np.testing.assert_allclose(long.masked_value[:, :5], short, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(long.mask[:, 5:], True)


@pytest.mark.parametrize("constant", [10.0, float("nan")])
def test_mask_constant_can_be_traced(constant):
    """``jit`` with ``mask_constant`` as a traced argument, as NT's tests call it."""
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Dense(4, b_std=0.1), stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1)
    )
    x1 = RNG.standard_normal((3, 5, 2))
    x2 = RNG.standard_normal((2, 5, 2))
    x1[0, 3:] = constant
    x2[1, 1:] = constant
    get = ("nngp", "ntk")
    eager = kernel_fn(x1, x2, get, mask_constant=constant)
    traced = jax.jit(kernel_fn, static_argnames="get")(x1, x2, get, mask_constant=constant)
    for a, b in zip(eager, traced, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)

    # the mask changes the entries of padded examples only
    def zero_filled(x):
        return np.where((x == constant) | np.isnan(x), 0.0, x)

    plain_k = kernel_fn(zero_filled(x1), zero_filled(x2), "nngp")
    assert not np.allclose(eager.nngp[0, 0], plain_k[0, 0])
    np.testing.assert_allclose(eager.nngp[1:, 0], plain_k[1:, 0], rtol=1e-6)
    _, params = init_fn(jax.random.PRNGKey(0), x1.shape)
    out = apply_fn(params, x1, mask_constant=constant)
    out_jit = jax.jit(apply_fn)(params, x1, mask_constant=constant)
    np.testing.assert_allclose(out.masked_value, out_jit.masked_value, rtol=1e-6)
    np.testing.assert_array_equal(out.mask, out_jit.mask)
    # the padding changes the pooled output of example 0 only
    plain = apply_fn(params, zero_filled(x1))
    assert not np.allclose(out.masked_value[0], plain[0])
    np.testing.assert_allclose(out.masked_value[1:], plain[1:], rtol=1e-6)
