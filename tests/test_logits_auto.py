"""``n_samples="auto"`` of the joint estimator: what it stops on, and the NTK's early stop.

The criterion is the standard error that is returned: with replicates, their
spread (what a ``Kernel``'s ``nngp_se``/``ntk_se`` are), each kernel's entries
against their natural scale ``sqrt(K_aa(x, x) K_bb(x, x'))``. When the NTK meets
the target first, its draws stop and the nngp goes on alone: each kernel is then
the fixed-size estimate of its own number of draws (float64, same seed and chunks).
"""

from __future__ import annotations

import logging
import re

import jax.numpy as jnp
import numpy as np
import pytest

from infattn.logits import monte_carlo
from infattn.logits.inputs import attention_inputs
from infattn.statistics import batch_means_se

N, L, R = 2, 8, 10
TARGET = 0.04


def _inputs():
    """Rank-2 ``S = V`` of ``N x L`` inputs (the factored NTK path), ``T = T_v = 0``."""
    x = np.random.default_rng(5).standard_normal((N, L, 2))
    k = jnp.asarray(np.einsum("iac,jbc->ijab", x, x) / 2)
    trip = (k, jnp.diagonal(k, axis1=0, axis2=1).transpose(2, 0, 1), None)
    return attention_inputs(trip, trip, 0 * k, 0 * k, None, None)


def _run(n_samples, factored=None):
    opts = monte_carlo.Options(
        "SOFTMAX", 1.5, n_samples, 7, "antithetic", sample_chunk=4, target_rse=TARGET,
        n_replicates=R, progress=False, factored=factored,
    )  # fmt: skip
    return monte_carlo.estimate(_inputs(), opts)


def _rel_se(mean: np.ndarray, reps: np.ndarray) -> float:
    """Largest ``batch_means_se(reps) / sqrt(K_aa(x, x) K_bb(x', x'))``."""
    d = np.einsum("iiaa->ia", mean)
    scale = np.sqrt(d[:, None, :, None] * d[None, :, None, :])
    return float(np.max(np.asarray(batch_means_se(jnp.asarray(reps))) / scale))


@pytest.fixture(scope="module")
def auto_run():
    logger = logging.getLogger("infattn.logits.driver")
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda r: records.append(r.getMessage())
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        out = _run(None)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    (message,) = [m for m in records if "target met" in m]
    return out, message


def test_auto_stops_on_the_returned_standard_errors(auto_run):
    out, _ = auto_run
    assert out.nngp.dtype == jnp.float64
    reps = out.replicates
    worst = [_rel_se(np.asarray(m), np.asarray(r)) for m, r in ((out.nngp, reps.nngp),
                                                                 (out.ntk, reps.ntk))]  # fmt: skip
    assert max(worst) <= TARGET
    assert float(out.rel_se) == pytest.approx(max(worst), rel=1e-10)


def test_ntk_stops_early_and_equals_fixed_runs(auto_run):
    out, message = auto_run
    draws = int(re.search(r"after (\d+) draws", message).group(1))
    ntk_draws = int(re.search(r"\((\d+) for the NTK\)", message).group(1))
    assert ntk_draws < draws == out.n_samples
    nngp_fixed, ntk_fixed = _run(draws), _run(ntk_draws)
    pairs = [
        ("nngp", nngp_fixed),
        ("nngp_se", nngp_fixed),
        ("ntk", ntk_fixed),
        ("ntk_se", ntk_fixed),
    ]
    for name, fixed in pairs:
        a, b = np.asarray(getattr(out, name)), np.asarray(getattr(fixed, name))
        assert np.max(np.abs(a - b)) <= 1e-10 * np.max(np.abs(b)), name
    for name, fixed in (("nngp", nngp_fixed), ("ntk", ntk_fixed)):
        a = np.asarray(getattr(out.replicates, name))
        b = np.asarray(getattr(fixed.replicates, name))
        assert np.max(np.abs(a - b)) <= 1e-10 * np.max(np.abs(b)), name


@pytest.mark.parametrize("factored", [False, True])
def test_both_paths_meet_the_target(factored):
    out = _run(None, factored)
    reps = out.replicates
    assert _rel_se(np.asarray(out.nngp), np.asarray(reps.nngp)) <= TARGET
    assert _rel_se(np.asarray(out.ntk), np.asarray(reps.ntk)) <= TARGET


def test_nngp_alone_never_splits(caplog):
    k = _inputs().v
    trip = (k, jnp.diagonal(k, axis1=0, axis2=1).transpose(2, 0, 1), None)
    opts = monte_carlo.Options(
        "SOFTMAX", 1.5, None, 7, "antithetic", sample_chunk=4, target_rse=TARGET, progress=False
    )
    with caplog.at_level(logging.INFO, logger="infattn.logits.driver"):
        out = monte_carlo.estimate(attention_inputs(trip, trip, None, None, None, None), opts)
    (message,) = [r.getMessage() for r in caplog.records if "target met" in r.getMessage()]
    assert "for the NTK" not in message and out.ntk is None
    assert float(out.rel_se) <= TARGET
