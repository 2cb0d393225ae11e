"""Replicates carry a Monte Carlo layer's uncertainty through the layers after it.

A test-only Monte Carlo layer adds to ``nngp`` and ``ntk`` the mean of ``n``
Gaussian draws of standard deviation ``sigma`` (true SE ``sigma / sqrt(n)``) and
reports ``R`` sub-stream means as replicates, as a real MC layer does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infattn import stax
from infattn.kernel import N_REPLICATES, Kernel
from infattn.stax.layer import make_layer

X = np.random.default_rng(0).standard_normal((3, 4, 5))


def noise_layer(sigma: float, n: int, seed: int, r: int = N_REPLICATES):
    """Adds the mean of ``n`` N(0, sigma^2) draws per entry; ``r`` sub-streams."""

    def init(rng, shape):
        return shape, ()

    def apply(params, x, mask, **kwargs):
        return x, mask

    def draws(k, salt):
        key = jax.random.fold_in(jax.random.PRNGKey(seed), salt)
        eps = sigma * jax.random.normal(key, (r, n // r, *k.nngp.shape), k.nngp.dtype)
        return eps.mean(1)  # (r, *nngp.shape): sub-stream means

    def add(k, sub):  # k: one kernel, sub: the noise to add to nngp and ntk
        return k.replace(nngp=k.nngp + sub[0], ntk=None if k.ntk is None else k.ntk + sub[1])

    def kernel(k):
        noise = jnp.stack([draws(k, 0), draws(k, 1)], 1)  # (r, 2, *nngp.shape)
        main = add(k.replace(replicates=None), noise.mean(0))
        if k.replicates is None:
            reps = jax.vmap(lambda s: add(k.replace(replicates=None), s))(noise)
        else:
            reps = jax.vmap(add)(k.replicates.replace(mask1=k.mask1, mask2=k.mask2), noise)
        return main.replace(replicates=reps.replace(mask1=k.mask1, mask2=k.mask2))

    return make_layer(init, apply, kernel, "Noise", pairwise=False, handles_replicates=True)


def _spread_over_se(model, kind, seeds=20, x=X):
    """Per entry: std over seeds of the estimate / mean reported SE; the median."""
    ests, ses = [], []
    for seed in range(seeds):
        k = model(seed)[2](x)
        ests.append(getattr(k, kind))
        ses.append(getattr(k, f"{kind}_se"))
    ratio = np.std(np.stack(ests), 0, ddof=1) / np.mean(np.stack(ses), 0)
    return float(np.median(ratio))


def test_closed_form_kernel_has_no_standard_errors():
    k = stax.serial(stax.Dense(4), stax.Relu())[2](X)
    assert k.nngp_se is None and k.ntk_se is None and k.replicates is None


def test_se_of_one_noise_layer_is_its_true_se():
    _, _, kernel_fn = noise_layer(0.3, 1000, 0)
    k = kernel_fn(X)
    assert k.replicates is None
    se = np.asarray(k.nngp_se)
    # 9 degrees of freedom per entry: the median of many entries is within 10%
    assert abs(np.median(se) / (0.3 / np.sqrt(1000)) - 1) < 0.1
    assert k.ntk_se.shape == k.ntk.shape


@pytest.mark.parametrize("kind", ["nngp", "ntk"])
def test_se_after_nonlinear_layers_is_honest(kind):
    def model(seed):
        return stax.serial(
            stax.Dense(4),
            noise_layer(0.05, 200, seed),
            stax.Relu(),
            stax.LayerNorm(),
            stax.Dense(3),
            noise_layer(0.05, 200, 1000 + seed),
            stax.Erf(),
            stax.GlobalAvgPool(),
            stax.Dense(2),
        )

    assert 0.8 <= _spread_over_se(model, kind) <= 1.25


def test_residual_sum_broadcasts_a_branch_without_replicates():
    def model(seed):
        block = stax.serial(stax.Dense(4), noise_layer(0.05, 200, seed), stax.Relu(), stax.Dense(4))
        return stax.serial(
            stax.Dense(4), stax.FanOut(2), stax.parallel(stax.Identity(), block), stax.FanInSum()
        )

    k = model(0)[2](X)
    closed = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(4))[2](stax.Dense(4)[2](X))
    # the identity branch adds no noise: the SE is the noisy branch's alone
    assert np.all(np.asarray(k.nngp_se) > 0)
    assert k.nngp.shape == closed.nngp.shape
    assert 0.8 <= _spread_over_se(model, "nngp") <= 1.25


def test_kernel_input_keeps_replicates_for_the_next_layer():
    _, _, first = noise_layer(0.1, 100, 0)
    _, _, rest = stax.serial(stax.Relu(), stax.Dense(2))
    k = first(stax.Dense(3)[2](X))
    assert isinstance(k.replicates, Kernel) and k.replicates.nngp.shape[0] == N_REPLICATES
    out = rest(k)
    assert out.replicates.nngp.shape == (N_REPLICATES, *out.nngp.shape)
    np.testing.assert_allclose(
        out.nngp_se, np.std(out.replicates.nngp, 0, ddof=1) / np.sqrt(N_REPLICATES), rtol=1e-6
    )


def test_get_standard_errors_and_tuple_type():
    _, _, kernel_fn = stax.serial(stax.Dense(2), noise_layer(0.1, 100, 0))
    out = kernel_fn(X, None, ("nngp", "NNGP_SE"))
    assert type(out).__name__ == "AnalyticKernel"
    assert out._fields == ("nngp", "nngp_se") and out.nngp_se.shape == out.nngp.shape
    assert kernel_fn(X, None, "ntk_se").shape == out.nngp.shape


def test_get_is_validated_before_any_work():
    def kernel(k):
        raise AssertionError("the kernel rule ran")

    _, _, kernel_fn = make_layer(lambda r, s: (s, ()), lambda p, x, m: (x, m), kernel, "Never")
    with pytest.raises(ValueError, match="get: unknown kernel field 'nngp_es'"):
        kernel_fn(X, None, "nngp_es")


def test_tiled_model_with_replicates_is_refused():
    _, _, kernel_fn = noise_layer(0.1, 100, 0)
    # a layer that makes replicates but claims to be pairwise would be tiled wrongly
    init, apply, rule = kernel_fn.layer.init, kernel_fn.layer.apply, kernel_fn.layer.kernel
    _, _, bad = make_layer(init, apply, rule, "BadNoise", pairwise=True, handles_replicates=True)
    x = np.random.default_rng(1).standard_normal((24, 64, 1))
    with pytest.raises(ValueError, match="pairwise=False"):
        bad(x)


def _one_replicate(k: Kernel, r: int) -> Kernel:
    reps = k.replicates
    return k.replace(
        nngp=reps.nngp[r],
        ntk=reps.ntk[r],
        cov1=reps.cov1[r],
        cov2=None if reps.cov2 is None else reps.cov2[r],
        replicates=None,
    )


IMAGES = np.random.default_rng(2).standard_normal((2, 3, 3, 2))
LAYERS = {
    "Dense": (stax.Dense(3, 1.5, 0.1), X),
    "Conv": (stax.Conv(3, (2, 2), padding="SAME"), IMAGES),
    "ConvTranspose": (stax.ConvTranspose(3, (2, 2), (2, 1), "CIRCULAR", b_std=0.2), IMAGES),
    "ConvLocal": (stax.ConvLocal(3, (2, 2), padding="SAME", b_std=0.2), IMAGES),
    "ImageResize": (stax.ImageResize((-1, 5, 2, -1), "linear"), IMAGES),
    "Relu": (stax.Relu(), X),
    "Erf": (stax.Erf(), X),
    "Gelu": (stax.Gelu(), X),
    "ABRelu": (stax.ABRelu(-0.5, 1.0), X),
    "LayerNorm": (stax.LayerNorm(), X),
    "LayerNorm-spatial": (stax.LayerNorm(axis=(1, 2)), X),
    "GlobalAvgPool": (stax.GlobalAvgPool(), X),
    "Dropout": (stax.Dropout(0.7), X),
    "Flatten": (stax.Flatten(), IMAGES),
    "Index": (stax.Index(stax.Slice[::2, 1:]), X),
    "DotGeneral": (
        stax.DotGeneral(
            rhs=np.array([1.0, -1.0, 0.5, 2.0]), dimension_numbers=(((1,), (0,)), ((), ()))
        ),
        X,
    ),
    "attention-1/d": (stax.GlobalSelfAttention(3, 3, 3, 2, linear_scaling=True), X),
    "residual": (
        stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), stax.Dense(3)), stax.FanInSum()),
        X,
    ),
}


MASKED = (
    "LayerNorm-spatial",
    "GlobalAvgPool",
    "attention-1/d",
    "Index",
    "DotGeneral",
    "ConvTranspose",
    "ImageResize",
)


@pytest.mark.parametrize(
    ("name", "masked"), [(n, False) for n in LAYERS] + [(n, True) for n in MASKED]
)
def test_each_layer_maps_its_rule_over_replicates(name, masked):
    (_, _, kernel_fn), x = LAYERS[name]
    x = np.array(x)
    if masked:
        x[1, -1] = np.nan  # the last position (row) of the second input is padding
    x2 = x[:1] + 0.5
    k0 = stax.Dense(4)[2](x, x2, mask_constant=np.nan if masked else None)
    k_in = noise_layer(0.02, 100, 0, r=2)[2](k0)
    out = kernel_fn(k_in)
    assert out.replicates.nngp.shape == (2, *out.nngp.shape)
    for r in range(2):
        expected = kernel_fn(_one_replicate(k_in, r))
        for f in ("nngp", "ntk", "cov1", "cov2"):
            np.testing.assert_allclose(
                getattr(_one_replicate(out, r), f), getattr(expected, f), rtol=1e-5, atol=1e-7
            )
    assert out.mask1 is out.replicates.mask1
