"""The factored (low-rank) NTK path of the joint estimator (:mod:`infattn.logits.factored`).

On the same draws (same seed and chunks) it must give the ``O(L^3)`` path's
estimates, means and standard errors, up to rounding (float64).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infattn.logits import factored, monte_carlo
from infattn.logits.inputs import attention_inputs

N, L = 3, 6


def _kernel(x: np.ndarray) -> jnp.ndarray:
    """``x``: (N, L, C) -> (N, N, L, L) with entries <x_ia, x_jb> / C."""
    return jnp.asarray(np.einsum("iac,jbc->ijab", x, x) / x.shape[-1])


def _bdiag(k):
    return jnp.diagonal(k, axis1=0, axis2=1).transpose(2, 0, 1)


def _inputs(seed: int, mask: bool, ntk: str, s_kind: str, full_v: bool = False):
    """Rank-2 ``V`` (2 channels; ``full_v``: plus a full-rank term); ``S`` equal to
    ``V``, ``V`` plus a rank-1 term, or ``V`` plus a full-rank term (a positional
    embedding of ``L`` channels, and an input-specific one); ``T``, ``T_v`` zero or
    low-rank."""
    rng = np.random.default_rng(seed)

    def low_rank(c: int):
        return _kernel(rng.standard_normal((N, L, c)))

    def full_rank():
        pe = rng.standard_normal((L, L))
        eye = np.eye(N)[:, :, None, None] * np.eye(L)
        return jnp.asarray(pe @ pe.T / L + eye)

    v = low_rank(2) + (0.2 * full_rank() if full_v else 0.0)
    s = {"same": v, "other": v + 0.5 * low_rank(1)}.get(s_kind)
    if s is None:
        s = v + 0.3 * full_rank()
    t = tv = 0.0 * v
    if ntk == "low-rank":
        t, tv = 0.7 * low_rank(1), 0.4 * low_rank(2)
    key_mask = jnp.asarray(rng.random((N, L)) < 0.3) if mask else None
    return attention_inputs((s, _bdiag(s), None), (v, _bdiag(v), None), t, tv, key_mask, None)


def _both(inputs, mechanism: str, scheme: str, qk_std: float = 1.3):
    opts = monte_carlo.Options(mechanism, qk_std, 96, 3, scheme, sample_chunk=4)
    return [monte_carlo.estimate(inputs, opts._replace(factored=f)) for f in (False, True)]


def _assert_same(full, fact) -> None:
    for name in ("nngp", "ntk", "nngp_se", "ntk_se"):
        a, b = np.asarray(getattr(full, name)), np.asarray(getattr(fact, name))
        assert np.max(np.abs(a - b)) <= 1e-10 * np.max(np.abs(a)), name
    assert float(full.rel_se) == pytest.approx(float(fact.rel_se), rel=1e-10)


@pytest.mark.parametrize(
    "mechanism, scheme, mask, ntk, s_kind",
    [
        ("SOFTMAX", "antithetic", False, "zero", "same"),
        ("SOFTMAX", "antithetic", True, "low-rank", "other"),
        ("SOFTMAX", "none", True, "zero", "other"),
        ("SOFTMAX", "none", False, "low-rank", "same"),
        ("ABS", "hermite", True, "low-rank", "same"),
        ("ABS", "none", False, "zero", "other"),
        ("RELU", "hermite", False, "low-rank", "other"),
        ("RELU", "none", True, "zero", "same"),
        ("IDENTITY", "none", True, "low-rank", "other"),
        ("IDENTITY", "none", False, "zero", "same"),
    ],
)
def test_factored_matches_full_path(mechanism, scheme, mask, ntk, s_kind):
    inputs = _inputs(1, mask, ntk, s_kind)
    f = factored.joint_factors(inputs, mechanism)
    assert f is not None, "low-rank inputs: the factored path is chosen"
    r_v, _, r_s, r_t = factored.ranks(f)
    assert (r_v, r_s, r_t) == (2, {"same": 2, "other": 3}[s_kind], int(ntk == "low-rank"))
    assert (f.s is None) == (s_kind == "same")
    _assert_same(*_both(inputs, mechanism, scheme))


def test_full_rank_s_factored_exactly():
    """With a rank-2 ``V`` the factored path stays cheaper even for a full-rank ``S``."""
    inputs = _inputs(2, False, "low-rank", "positional")
    assert factored.ranks(factored.joint_factors(inputs, "SOFTMAX"))[:3] == (2, 4, N * L)
    _assert_same(*_both(inputs, "SOFTMAX", "antithetic"))


def test_full_rank_v_and_s_keep_the_full_path():
    inputs = _inputs(2, False, "low-rank", "positional", full_v=True)
    assert factored.joint_factors(inputs, "SOFTMAX") is None
    assert factored.ranks(factored.joint_factors(inputs, "SOFTMAX", force=True))[0] == N * L


def test_not_factored_under_jit_nor_without_ntk():
    inputs = _inputs(3, False, "zero", "same")
    seen = []

    @jax.jit
    def traced(inp):
        seen.append(factored.joint_factors(inp, "SOFTMAX", force=True))
        return inp.s

    traced(inputs)
    assert seen == [None]
    assert factored.joint_factors(inputs._replace(t=None, tv=None), "SOFTMAX", True) is None


def test_cost_model_prefers_factors_only_when_cheaper():
    assert factored.factored_pair_flops(512, (8, 8, 8, 0), same=True) < factored.full_pair_flops(
        512, "SOFTMAX"
    )
    assert factored.factored_pair_flops(16, (32, 32, 32, 32)) > factored.full_pair_flops(
        16, "SOFTMAX"
    )


def test_replicates_agree():
    inputs = _inputs(4, True, "low-rank", "other")
    opts = monte_carlo.Options("SOFTMAX", 1.0, 64, 5, "antithetic", sample_chunk=4, n_replicates=4)
    full, fact = (monte_carlo.estimate(inputs, opts._replace(factored=f)) for f in (False, True))
    for name in ("nngp", "ntk"):
        a, b = (np.asarray(getattr(x.replicates, name)) for x in (full, fact))
        assert a.shape[0] == 4
        assert np.max(np.abs(a - b)) <= 1e-10 * np.max(np.abs(a)), name
