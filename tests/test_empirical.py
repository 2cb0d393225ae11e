"""Monte Carlo kernels: unbiasedness, standard errors, conventions and input checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infattn import stax
from infattn.empirical import (
    Interrupted,
    MonteCarloEstimate,
    MonteCarloKernel,
    empirical_kernel_draws,
    monte_carlo_kernel_fn,
)

KEY = jax.random.PRNGKey(7)


def _x(shape: tuple[int, ...], seed: int = 0) -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(seed), shape)


def _dense_formula(x1: jax.Array, x2: jax.Array, w_std: float, b_std: float) -> np.ndarray:
    """``W^2 <x, x'> / C + b^2`` for flat inputs ``(N, C)``."""
    x1, x2 = np.asarray(x1), np.asarray(x2)
    return w_std**2 * x1 @ x2.T / x1.shape[-1] + b_std**2


# ------------------------------------------------------------------ exact / unbiased cases


def test_dense_nngp_unbiased_and_ntk_exact() -> None:
    """One Dense layer: the NNGP is unbiased at any width, the NTK exact per draw."""
    w_std, b_std = 1.3, 0.4
    x1, x2 = _x((3, 5)), _x((2, 5), 1)
    init_fn, apply_fn, kernel_fn = stax.Dense(8, W_std=w_std, b_std=b_std)
    est = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 400)(x1, x2, None, return_se=True)
    target = _dense_formula(x1, x2, w_std, b_std)
    np.testing.assert_allclose(kernel_fn(x1, x2, "nngp"), target, rtol=1e-10)
    z = np.asarray(est.zscores("nngp", target))
    assert np.all(np.abs(z) < 4.5), z
    assert np.all(np.asarray(est.nngp_se) > 0)
    np.testing.assert_allclose(est.ntk, target, rtol=1e-10)
    np.testing.assert_allclose(est.ntk_se, 0.0, atol=1e-10)


def test_linear_network_ntk_unbiased() -> None:
    """Dense-Dense (linear): E[empirical NTK] equals the analytic NTK at any width."""
    x = _x((3, 4, 6))
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Dense(16, W_std=1.2, b_std=0.3), stax.Dense(4, W_std=0.9, b_std=0.2)
    )
    est = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 300, vmap_axes=0)(
        x, None, ("nngp", "ntk"), return_se=True
    )
    ref = kernel_fn(x, None, ("nngp", "ntk"))
    assert est.nngp.shape == (3, 3, 4, 4)
    for kind in ("nngp", "ntk"):
        z = np.asarray(est.zscores(kind, getattr(ref, kind)))
        assert np.all(np.abs(z) < 4.5), (kind, np.abs(z).max())


def test_standard_errors_match_spread_of_independent_estimates() -> None:
    """Mean reported SE^2 over 24 repetitions ~ empirical variance of the 24 means."""
    x = _x((2, 3))
    init_fn, apply_fn, _ = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(2))
    fn = jax.jit(lambda k: k)  # keys only
    means, ses = [], []
    for r in range(24):
        est = monte_carlo_kernel_fn(init_fn, apply_fn, fn(jax.random.PRNGKey(100 + r)), 12)(
            x, None, ("nngp", "ntk"), return_se=True
        )
        means.append(np.stack([est.nngp, est.ntk]))
        ses.append(np.stack([est.nngp_se, est.ntk_se]))
    means, ses = np.stack(means), np.stack(ses)
    ratio = means.var(0, ddof=1) / (ses**2).mean(0)
    # chi^2_23 / 23 per entry: 99.9% within [0.3, 2.3]; averaged over 8 entries tighter
    assert 0.6 < ratio.mean() < 1.5, ratio
    assert np.all((ratio > 0.2) & (ratio < 3.0)), ratio


# ------------------------------------------------------------------ conventions


@pytest.fixture(scope="module")
def small_model() -> tuple:
    return stax.serial(stax.Dense(6, b_std=0.1), stax.Relu(), stax.Dense(3))


def test_list_n_samples_matches_separate_calls(small_model: tuple) -> None:
    init_fn, apply_fn, _ = small_model
    x = _x((3, 2, 4))
    gen = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, [5, 2, 9, 5], chunk_size=4)
    results = list(gen(x, None, ("nngp", "ntk"), return_se=True))
    assert [r.n_samples for r in results] == [2, 5, 9]
    for r in results:
        single = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, r.n_samples)(
            x, None, ("nngp", "ntk"), return_se=True
        )
        for kind in ("nngp", "ntk"):
            np.testing.assert_allclose(r.mean(kind), single.mean(kind), rtol=1e-9)
            np.testing.assert_allclose(r.se(kind), single.se(kind), rtol=1e-7, atol=1e-12)


def test_chunking_tiling_and_storage_do_not_change_results(small_model: tuple) -> None:
    init_fn, apply_fn, _ = small_model
    x1, x2 = _x((4, 2, 4)), _x((2, 2, 4), 3)
    ref = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 7, chunk_size=7)(
        x1, x2, None, return_se=True
    )
    for kw in (
        {"chunk_size": 3, "store_on_device": False},
        {"batch_size": 2},
        {"vmap_axes": 0, "draws_in_parallel": 3},
        {"implementation": 2, "chunk_size": 7},
    ):
        est = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 7, **kw)(x1, x2, None, return_se=True)
        for kind in ("nngp", "ntk"):
            np.testing.assert_allclose(est.mean(kind), ref.mean(kind), rtol=1e-8, err_msg=str(kw))
            np.testing.assert_allclose(
                est.se(kind), ref.se(kind), rtol=1e-6, atol=1e-12, err_msg=str(kw)
            )


def test_x2_none_equals_x2_x1_and_get_forms(small_model: tuple) -> None:
    init_fn, apply_fn, _ = small_model
    x = _x((3, 2, 4))
    fn = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 4)
    a, b = fn(x), fn(x, x)
    assert isinstance(a, MonteCarloKernel)
    np.testing.assert_allclose(a.nngp, b.nngp, rtol=1e-10)
    np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-10)
    assert a.nngp.shape == (3, 3, 2, 2)
    nngp = fn(x, None, "nngp")
    np.testing.assert_allclose(nngp, a.nngp, rtol=1e-10)
    only = fn(x, None, ("ntk",))
    assert only._fields == ("ntk",)
    est = fn(x, None, ("ntk", "nngp"), return_se=True)
    assert isinstance(est, MonteCarloEstimate) and est.get == ("ntk", "nngp")
    assert est.kernel()._fields == ("ntk", "nngp")


def test_trace_and_diagonal_axes_against_explicit_contractions() -> None:
    """Fixed parameters (init ignores its key): the estimate is the empirical kernel."""
    init0, apply_fn, _ = stax.serial(stax.Dense(3), stax.Relu(), stax.Dense(5))
    x1, x2 = _x((2, 3, 4)), _x((2, 3, 4), 1)
    out_shape, params = init0(jax.random.PRNGKey(0), x1.shape)

    def init_fn(key: jax.Array, shape: tuple) -> tuple:
        return out_shape, params

    f1, f2 = np.asarray(apply_fn(params, x1)), np.asarray(apply_fn(params, x2))

    def flat_jac(x: jax.Array) -> np.ndarray:
        j = jax.jacobian(lambda p: apply_fn(p, x))(params)
        leaves = jax.tree_util.tree_leaves(j)
        return np.concatenate([np.asarray(v).reshape(*x.shape[:-1], 5, -1) for v in leaves], -1)

    j1, j2 = flat_jac(x1), flat_jac(x2)
    cases = {
        ((-1,), ()): ("iac,jbc->ijab", 5),
        ((-1,), (0,)): ("iac,ibc->iab", 5),
        ((-1,), (1,)): ("iac,jac->ija", 5),
        ((1, 2), ()): ("iac,jac->ij", 15),
    }
    for (trace, diag), (spec, size) in cases.items():
        fn = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 2, trace_axes=trace, diagonal_axes=diag)
        k = fn(x1, x2)
        np.testing.assert_allclose(k.nngp, np.einsum(spec, f1, f2) / size, rtol=1e-9)
        spec_j = spec.replace(",", "p,").replace("->", "p->")
        np.testing.assert_allclose(k.ntk, np.einsum(spec_j, j1, j2) / size, rtol=1e-9)
    full = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 2, trace_axes=())(x1, x2, "nngp")
    np.testing.assert_allclose(full, np.einsum("iac,jbd->ijabcd", f1, f2), rtol=1e-9)


# ------------------------------------------------------------------ masking and attention


def _attention_model(pool: bool) -> tuple:
    layers = [stax.Dense(8), stax.GlobalSelfAttention(8, 8, 8, 2), stax.LayerNorm()]
    if pool:
        layers += [stax.GlobalAvgPool(), stax.Dense(2)]
    return stax.serial(*layers)


def test_masked_inputs_equal_unpadded_inputs() -> None:
    """Padding positions (``mask_constant``) change nothing, draw by draw."""
    x = _x((3, 4, 3))
    padded = jnp.concatenate([x, jnp.full((3, 2, 3), -7.0)], axis=1)
    init_fn, apply_fn, _ = _attention_model(pool=True)
    fn = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 5, vmap_axes=0)
    a = fn(x, None, ("nngp", "ntk"), return_se=True)
    b = fn(padded, None, ("nngp", "ntk"), return_se=True, mask_constant=-7.0)
    for kind in ("nngp", "ntk"):
        np.testing.assert_allclose(b.mean(kind), a.mean(kind), rtol=1e-7)
        np.testing.assert_allclose(b.se(kind), a.se(kind), rtol=1e-5, atol=1e-12)


def test_masked_sequence_outputs_are_zero_at_padding() -> None:
    x = _x((2, 5, 3)).at[1, 3:].set(jnp.nan)
    init_fn, apply_fn, _ = _attention_model(pool=False)
    est = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 3)(
        x, None, "nngp", return_se=True, mask_constant=jnp.nan
    )
    k = np.asarray(est.nngp)
    assert k.shape == (2, 2, 5, 5) and np.all(np.isfinite(k))
    assert np.all(k[1, :, 3:, :] == 0) and np.all(k[:, 1, :, 3:] == 0)
    assert np.all(k[0, 0] != 0)


def test_tied_attention_model_agrees_with_analytic_kernel() -> None:
    """Wide tied 1/d attention with a readout: MC within a few SE (+ small bias) of analytic."""
    x = _x((3, 4, 4))
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.GlobalSelfAttention(256, 256, 64, 4, pos_emb_type="SUM"),
        stax.GlobalAvgPool(),
        stax.Dense(1),
    )
    est = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 64, vmap_axes=0)(
        x, None, ("nngp", "ntk"), return_se=True
    )
    ref = kernel_fn(x, None, ("nngp", "ntk"))
    for kind in ("nngp", "ntk"):
        mean, se, a = np.asarray(est.mean(kind)), np.asarray(est.se(kind)), getattr(ref, kind)
        a = np.asarray(a)
        # finite key width 256 leaves an O(1/256) relative bias
        assert np.all(np.abs(mean - a) < 4.5 * se + 0.02 * np.abs(a).max()), kind


def test_tuple_inputs_of_a_parallel_model_agree_with_analytic_kernel() -> None:
    """``x1 = (xa, xb)`` for a model starting with ``parallel``: tiles, Jacobians and
    NTK-vector products give one estimate, within a few SE of the analytic kernel."""
    x1, x2 = (_x((4, 3), 1), _x((4, 5, 2), 2)), (_x((2, 3), 3), _x((2, 5, 2), 4))
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.parallel(
            stax.serial(stax.Dense(64), stax.Relu(), stax.Dense(8)),
            stax.serial(stax.Flatten(), stax.Dense(64), stax.Erf(), stax.Dense(8)),
        ),
        stax.FanInSum(),
        stax.Relu(),
        stax.Dense(3),
    )
    ref = kernel_fn(x1, x2, ("nngp", "ntk"))
    runs = [
        monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 48, **kw)(x1, x2, None, return_se=True)
        for kw in ({}, {"batch_size": 2, "vmap_axes": 0}, {"implementation": 2})
    ]
    for kind in ("nngp", "ntk"):
        mean, se, a = (
            np.asarray(v) for v in (runs[0].mean(kind), runs[0].se(kind), getattr(ref, kind))
        )
        assert mean.shape == (4, 2)
        # width 64 leaves an O(1/64) relative bias
        assert np.all(np.abs(mean - a) < 4.5 * se + 0.02 * np.abs(a).max()), kind
        for other in runs[1:]:
            np.testing.assert_allclose(other.mean(kind), mean, rtol=1e-8, atol=1e-10)
    fn = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 2)
    assert fn(x1, None, "nngp").shape == (4, 4)
    with pytest.raises(ValueError, match="x2: expected inputs structured like x1"):
        fn(x1, x2[0])
    with pytest.raises(ValueError, match="x1: expected arrays with one batch size"):
        fn((x1[0], x1[1][:3]))


# ------------------------------------------------------------------ bad input


def test_bad_inputs_raise_value_errors_naming_the_argument(small_model: tuple) -> None:
    init_fn, apply_fn, _ = small_model
    x = _x((2, 2, 4))
    with pytest.raises(ValueError, match="n_samples"):
        monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 1)(x, return_se=True)
    with pytest.raises(ValueError, match="n_samples"):
        monte_carlo_kernel_fn(init_fn, apply_fn, KEY, [1, 4])(x, return_se=True).__next__()
    for bad in (0, [3, -1], [2.5]):
        with pytest.raises(ValueError, match="n_samples"):
            monte_carlo_kernel_fn(init_fn, apply_fn, KEY, bad)
    fn = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 2)
    with pytest.raises(ValueError, match="x2"):
        fn(x, _x((2, 2, 5)))
    with pytest.raises(ValueError, match="x1"):
        fn(x.at[0, 0, 0].set(jnp.inf))
    with pytest.raises(ValueError, match="x1"):
        fn(jnp.ones((4,)))
    with pytest.raises(ValueError, match="get"):
        fn(x, None, "cov1")
    with pytest.raises(ValueError, match="trace_axes"):
        monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 2, trace_axes=(5,))(x)
    with pytest.raises(ValueError, match="diagonal_axes"):
        monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 2, diagonal_axes=(-1,))(x)
    with pytest.raises(ValueError, match="batch_size"):
        monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 2, batch_size=3)(x)
    with pytest.raises(ValueError, match="chunk_size"):
        monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 2, chunk_size=0)


def test_non_finite_outputs_raise() -> None:
    init0, apply0, _ = stax.Dense(3)

    def apply_fn(params: object, x: jax.Array, **kw: object) -> jax.Array:
        return jnp.log(apply0(params, x))  # NaN where the output is negative

    with pytest.raises(ValueError, match="apply_fn"):
        monte_carlo_kernel_fn(init0, apply_fn, KEY, 4)(_x((3, 4)), None, "nngp")


def test_draws_match_estimator_and_progress_bar(small_model: tuple) -> None:
    init_fn, apply_fn, _ = small_model
    x = _x((2, 2, 4))
    draws = empirical_kernel_draws(init_fn, apply_fn, KEY, 6, x, chunk_size=4)
    est = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 6, progress=True)(
        x, None, None, return_se=True
    )
    for kind in ("nngp", "ntk"):
        d = np.asarray(draws[kind])
        assert d.shape == (6, 2, 2, 2, 2)
        np.testing.assert_allclose(d.mean(0), est.mean(kind), rtol=1e-9)
        np.testing.assert_allclose(d.std(0, ddof=1) / np.sqrt(6), est.se(kind), rtol=1e-6)


def test_compiler_options_change_the_compilation_not_the_draws(small_model: tuple) -> None:
    init_fn, apply_fn, _ = small_model
    x = _x((2, 2, 4))
    plain = empirical_kernel_draws(init_fn, apply_fn, KEY, 4, x)
    opts = {"xla_backend_optimization_level": 0}
    cheap = empirical_kernel_draws(init_fn, apply_fn, KEY, 4, x, compiler_options=opts)
    for kind in ("nngp", "ntk"):
        np.testing.assert_allclose(cheap[kind], plain[kind], rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="no_such_option"):  # the options reach XLA
        empirical_kernel_draws(init_fn, apply_fn, KEY, 4, x, compiler_options={"no_such_option": 1})


_MULTI_DEVICE = """
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
from infattn import stax
from infattn.empirical import monte_carlo_kernel_fn
assert len(jax.devices()) == 2
init_fn, apply_fn, _ = stax.serial(stax.Dense(6), stax.Relu(), stax.Dense(3))
x = jax.random.normal(jax.random.PRNGKey(0), (4, 5))
one = monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(1), 7, device_count=0)
two = monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(1), 7, device_count=-1)
a, b = one(x, None, None, return_se=True), two(x, None, None, return_se=True)
np.testing.assert_allclose(a.nngp, b.nngp, rtol=1e-9)
np.testing.assert_allclose(a.ntk_se, b.ntk_se, rtol=1e-7)
"""


def test_draws_sharded_over_two_devices_give_the_same_estimate() -> None:
    import os
    import subprocess
    import sys

    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu"
    )
    proc = subprocess.run(
        [sys.executable, "-c", _MULTI_DEVICE],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_ctrl_c_keeps_the_finished_draws(small_model: tuple, monkeypatch) -> None:
    """Ctrl-C between chunks raises Interrupted with the estimate of the draws so far."""
    import infattn.empirical.running as running

    init_fn, apply_fn, _ = small_model
    x = _x((2, 2, 4))
    real_update, calls = running.update, []

    def update_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # Ctrl-C arrives while the third chunk is merged
            raise KeyboardInterrupt
        return real_update(*args, **kwargs)

    monkeypatch.setattr(running, "update", update_then_interrupt)
    fn = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 8, chunk_size=2, progress=False)
    with pytest.raises(Interrupted) as info:
        fn(x, None, "nngp")
    assert isinstance(info.value, KeyboardInterrupt)
    monkeypatch.setattr(running, "update", real_update)
    partial = info.value.estimate
    assert partial.n_samples == 4
    full4 = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 4)(x, None, "nngp", return_se=True)
    np.testing.assert_allclose(partial.nngp, full4.nngp, rtol=1e-12)
    np.testing.assert_allclose(partial.nngp_se, full4.nngp_se, rtol=1e-9)


def test_integer_key_list_and_complex_inputs_are_refused(small_model: tuple) -> None:
    init_fn, apply_fn, _ = small_model
    with pytest.raises(TypeError, match="key: expected a JAX PRNG key"):
        monte_carlo_kernel_fn(init_fn, apply_fn, 0, 2)
    fn = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 2)
    with pytest.raises(TypeError, match="x1: expected an array"):
        fn([[[1.0] * 4] * 2] * 2)
    with pytest.raises(ValueError, match="x1: expected real numbers"):
        fn(np.ones((2, 2, 4), np.complex64))
