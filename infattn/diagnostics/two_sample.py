"""Two-sample tests: do the samples follow the reference's law (e.g. the finite-head law)?"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats
from scipy.spatial.distance import cdist

from infattn.diagnostics.samples import (
    Outcome,
    as_draws,
    exceedance_p,
    matching_reference,
)
from infattn.validation import check_int


def ks_two_sample(samples: ArrayLike, reference: ArrayLike) -> Outcome:
    """Two-sample KS test per coordinate (``scipy.stats.ks_2samp``), shape ``(d,)``.

    ``samples`` ``(n, *shape)`` and ``reference`` ``(m, *shape)`` with n, m >= 2.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> ks_two_sample(rng.normal(size=(300, 1)), rng.normal(2.0, size=(300, 1))).p_value < 1e-6
        array([ True])
    """
    x = as_draws(samples, "samples", 2, "a two-sample test", allow_constant=True)
    r = matching_reference(np.shape(samples), reference)
    results = [stats.ks_2samp(a, b) for a, b in zip(x.T, r.T, strict=True)]
    return Outcome(np.array([q.statistic for q in results]), np.array([q.pvalue for q in results]))


def _energy_two_sample_stats(dist: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Scaled energy statistics for label columns ``labels`` ``(N, P)`` (1: first sample)."""
    n = labels[:, 0].sum()
    m = dist.shape[0] - n
    s_xx = np.sum(labels * (dist @ labels), axis=0)
    s_xy = dist.sum(axis=1) @ labels - s_xx
    s_yy = dist.sum() - s_xx - 2.0 * s_xy
    return n * m / (n + m) * (2.0 * s_xy / (n * m) - s_xx / n**2 - s_yy / m**2)


def energy_two_sample(
    samples: ArrayLike, reference: ArrayLike, *, n_perm: int = 199, seed: int = 0
) -> Outcome:
    """Two-sample energy-distance permutation test (multivariate; Székely & Rizzo 2004).

    Statistic ``nm/(n+m) (2 E|X-Y| - E|X-X'| - E|Y-Y'|)`` with V-statistic means (so
    ``sqrt(statistic (n+m)/(nm))`` is ``scipy.stats.energy_distance`` for d = 1); p-value over
    ``n_perm`` random relabellings of the pooled draws. Memory O((n+m)^2). Scalars.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> out = energy_two_sample(rng.normal(size=(80, 2)), rng.normal(1.0, size=(80, 2)))
        >>> bool(out.p_value < 0.05)
        True
    """
    x = as_draws(samples, "samples", 2, "a two-sample test", allow_constant=True)
    r = matching_reference(np.shape(samples), reference)
    check_int(n_perm, "n_perm", 1)
    pooled = np.concatenate([x, r])
    n, big_n = x.shape[0], pooled.shape[0]
    rng = np.random.default_rng(seed)
    labels = np.zeros((big_n, n_perm + 1))
    labels[:n, 0] = 1.0
    for p in range(1, n_perm + 1):
        labels[rng.permutation(big_n)[:n], p] = 1.0
    t = _energy_two_sample_stats(cdist(pooled, pooled), labels)
    return Outcome(np.asarray(t[0]), exceedance_p(t[:1], t[1:])[0])
