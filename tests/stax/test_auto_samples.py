"""``mc_samples="auto"`` of a standard-scaling attention layer: the target or the cap.

The layer keeps drawing chunks of logits until the largest relative standard
error over its kernel's entries meets ``mc_target_rse`` (an ``INFO`` record says
so) or ``mc_max_samples`` draws are taken (a ``RuntimeWarning`` says so). The
estimate that met a 3% target is checked against a fixed run of many more draws.
"""

from __future__ import annotations

import logging
import re
import warnings

import numpy as np
import pytest

from infattn import stax

X = np.random.default_rng(0).standard_normal((2, 3, 2))
LOGGER = "infattn.logits.driver"


def attention(**kwargs):
    return stax.GlobalSelfAttention(
        2, 4, 4, 1, linear_scaling=False, W_query_std=1.5, W_key_std=1.5, b_std=0.1, **kwargs
    )[2]


def natural_scale(nngp: np.ndarray) -> np.ndarray:
    """``sqrt(K_aa(x, x) K_bb(x', x'))`` for every entry of a ``(N, N, L, L)`` kernel."""
    d = np.einsum("iiaa->ia", nngp)
    return np.sqrt(d[:, None, :, None] * d[None, :, None, :])


def test_auto_meets_the_target_and_says_so(caplog):
    target = 0.03
    kernel_fn = attention(mc_target_rse=target, mc_max_samples=10**6, progress=False)
    with caplog.at_level(logging.INFO, logger=LOGGER), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the cap must not be reached
        auto = kernel_fn(X, get=("nngp", "nngp_se"))
    met = [r.getMessage() for r in caplog.records if "target met" in r.getMessage()]
    assert met, "no record that the target was met"
    draws = int(re.search(r"after (\d+) draws", met[-1]).group(1))
    assert draws < 10**6
    exact = np.asarray(attention(mc_samples=32768, progress=False)(X, get="nngp"))
    scale = natural_scale(exact)
    error = np.abs(np.asarray(auto.nngp) - exact) / scale
    # the target bounds one SE per entry; allow 4 SEs (plus the reference's own noise)
    assert error.max() < 4 * target, f"max relative error {error.max():.3g} after {draws} draws"
    reported = np.asarray(auto.nngp_se) / scale
    assert 0 < np.max(reported) <= target  # the criterion is the Kernel's SEs (10 sub-streams)


def test_auto_bounds_the_returned_kernels_worst_entry():
    """The promise: every entry of the returned Kernel (nngp and ntk) has
    ``se <= target * sqrt(K_aa(x, x) K_bb(x', x'))``."""
    target = 0.05
    kernel_fn = attention(mc_target_rse=target, mc_max_samples=10**6, progress=False)
    k = kernel_fn(X, get=("nngp", "ntk", "nngp_se", "ntk_se"))
    for name in ("nngp", "ntk"):
        value, se = np.asarray(getattr(k, name)), np.asarray(getattr(k, name + "_se"))
        assert np.max(se / natural_scale(value)) <= target, name


def test_auto_stops_at_the_cap_with_a_warning():
    kernel_fn = attention(mc_target_rse=1e-5, mc_max_samples=512, progress=False)
    with pytest.warns(RuntimeWarning, match=r"cap of \d+ draws.*above the target"):
        k = kernel_fn(X, get=("nngp", "nngp_se"))
    assert np.all(np.isfinite(np.asarray(k.nngp))) and np.all(np.asarray(k.nngp_se) > 0)


def test_fixed_samples_do_not_log_or_warn(caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        attention(mc_samples=64, progress=False)(X, get="nngp")
    assert not [r for r in caplog.records if r.name == LOGGER]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mc_samples": "many"}, TypeError, "mc_samples: expected 'auto' or an integer >= 2"),
        ({"mc_samples": 1}, ValueError, "mc_samples: expected 'auto' or an integer >= 2"),
        ({"mc_target_rse": 0.0}, ValueError, "mc_target_rse: expected a finite positive"),
        ({"mc_max_samples": 1}, ValueError, "mc_max_samples: expected an integer >= 2"),
        ({"progress": "yes"}, TypeError, "progress: expected None, True or False"),
    ],
)
def test_auto_arguments_are_checked(kwargs, error, match):
    with pytest.raises(error, match=match):
        stax.GlobalSelfAttention(2, 4, 4, 1, linear_scaling=False, **kwargs)
