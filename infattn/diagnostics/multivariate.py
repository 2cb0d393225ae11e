"""Multivariate normality: Mardia's skewness and kurtosis, the energy test against a normal."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats
from scipy.spatial.distance import cdist

from infattn.diagnostics.samples import BLOCK, Outcome, as_draws, exceedance_p
from infattn.validation import check_int


@dataclasses.dataclass(frozen=True, eq=False)
class Mardia:
    """Mardia's multivariate skewness ``b1`` and kurtosis ``b2`` with their tests (scalars).

    Skewness: ``skewness_statistic = n k b1 / 6 ~ chi2(skewness_df)``, ``k = 1`` unless the
    small-sample correction is applied. Kurtosis: ``z = (b2 - kurtosis_expected) / kurtosis_se``
    with the exact mean and SD of ``b2`` under normality, two-sided normal p-value.
    """

    skewness: float
    skewness_statistic: float
    skewness_df: float
    skewness_p: float
    kurtosis: float
    kurtosis_expected: float
    kurtosis_se: float
    kurtosis_z: float
    kurtosis_p: float


def _whiten(x: np.ndarray, ddof: int) -> np.ndarray:
    """Centre ``x`` ``(n, d)`` and map it to identity sample covariance (``ddof``), ``(n, d)``."""
    c = x - x.mean(axis=0)
    cov = c.T @ c / (x.shape[0] - ddof)
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise ValueError(
            "samples: the sample covariance is singular (coordinates are linearly dependent); "
            "expected draws spanning all d coordinates"
        ) from None
    return np.linalg.solve(chol, c.T).T


def _third_moment_norm(y: np.ndarray) -> float:
    """``sum_rst m_rst^2`` with ``m_rst = mean_i y_ir y_is y_it``; equals Mardia's b1."""
    n, d = y.shape
    m = np.zeros((d * d, d))
    step = max(1, BLOCK // (d * d))
    for s in range(0, n, step):
        b = y[s : s + step]
        m += (b[:, :, None] * b[:, None, :]).reshape(len(b), d * d).T @ b
    return float(np.sum((m / n) ** 2))


def mardia(samples: ArrayLike, *, small_sample_correction: bool = True) -> Mardia:
    """Mardia's multivariate skewness and kurtosis tests for ``samples`` ``(n, *shape)``.

    With ``y_i = S^{-1/2}(x_i - mean)`` (``S``: ML covariance), ``b1 = mean_ij (y_i.y_j)^3``
    and ``b2 = mean_i |y_i|^4``. Skewness: ``n k b1 / 6 ~ chi2(d(d+1)(d+2)/6)`` where, if
    ``small_sample_correction`` and n < 20, ``k = (d+1)(n+1)(n+3) / (n((n+1)(d+1) - 6))``
    (else 1). Kurtosis: normal approximation with the exact null moments
    ``E b2 = d(d+2)(n-1)/(n+1)`` and
    ``Var b2 = 8d(d+2)(n-3)(n-d-1)(n-d+1) / ((n+1)^2 (n+3)(n+5))`` (Mardia 1974), which tend
    to ``d(d+2)`` and ``8d(d+2)/n``. Needs n >= max(4, d + 2). Cost O(n d^3).

    Example:
        >>> m = mardia(np.random.default_rng(0).standard_normal((500, 3)))
        >>> bool(m.kurtosis_p > 0.001 and m.skewness_p > 0.001)
        True
    """
    x = as_draws(samples, "samples", 4, "Mardia's tests")
    n, d = x.shape
    if n < d + 2:
        raise ValueError(f"samples: Mardia's tests need n >= d + 2 = {d + 2} draws, got {n}")
    y = _whiten(x, ddof=0)
    b1 = _third_moment_norm(y)
    b2 = float(np.mean(np.sum(y * y, axis=1) ** 2))
    k = 1.0
    if small_sample_correction and n < 20:
        k = (d + 1) * (n + 1) * (n + 3) / (n * ((n + 1) * (d + 1) - 6))
    skew_stat, df = n * k * b1 / 6.0, d * (d + 1) * (d + 2) / 6.0
    mean = d * (d + 2) * (n - 1) / (n + 1)
    var = 8.0 * d * (d + 2) * (n - 3) * (n - d - 1) * (n - d + 1)
    se = math.sqrt(var / ((n + 1) ** 2 * (n + 3) * (n + 5)))
    z = (b2 - mean) / se
    return Mardia(
        b1,
        skew_stat,
        df,
        float(stats.chi2.sf(skew_stat, df)),
        b2,
        mean,
        se,
        z,
        float(2.0 * stats.norm.sf(abs(z))),
    )


def expected_distance_to_normal(squared_norms: ArrayLike, d: int) -> np.ndarray:
    """``E|a - Z|`` for ``Z ~ N(0, I_d)`` given ``|a|^2`` (any shape, same shape out).

    ``|a - Z|`` is noncentral chi with d dof, whose mean is
    ``sqrt(2) Gamma((d+1)/2) / Gamma(d/2) * 1F1(-1/2; d/2; -|a|^2/2)``.

    Example:
        >>> round(float(expected_distance_to_normal(np.array([0.0]), 1)[0]), 10)  # sqrt(2 / pi)
        0.7978845608
    """
    scale = math.sqrt(2.0) * math.exp(special.gammaln((d + 1) / 2) - special.gammaln(d / 2))
    return scale * special.hyp1f1(-0.5, d / 2, -np.asarray(squared_norms, np.float64) / 2)


def _mean_pairwise_distance(y: np.ndarray) -> float:
    """``mean_ij |y_i - y_j|`` over all ordered pairs (diagonal included) of ``y`` ``(n, d)``."""
    n = y.shape[0]
    step = max(1, BLOCK // n)
    total = sum(cdist(y[s : s + step], y).sum() for s in range(0, n, step))
    return float(total) / n**2


def _energy_normality_statistic(x: np.ndarray) -> float:
    """Székely-Rizzo energy statistic of ``x`` ``(n, d)`` against its fitted normal."""
    y = _whiten(x, ddof=1)
    n, d = y.shape
    to_normal = float(expected_distance_to_normal(np.sum(y * y, axis=1), d).mean())
    normal_pair = 2.0 * math.exp(special.gammaln((d + 1) / 2) - special.gammaln(d / 2))
    return n * (2.0 * to_normal - normal_pair - _mean_pairwise_distance(y))


def energy_normality(samples: ArrayLike, *, n_boot: int = 199, seed: int = 0) -> Outcome:
    """Energy test of multivariate normality (Székely & Rizzo 2005), parametric bootstrap.

    Statistic: ``n (2 E|y - Z| - E|Z - Z'| - mean_ij |y_i - y_j|)`` for the draws standardised
    by their sample mean and covariance (``ddof=1``), ``Z ~ N(0, I)``. It is affine invariant,
    so the null is simulated from ``n_boot`` standard normal samples of the same shape, each
    re-standardised. Needs n >= d + 2; cost O(n_boot n^2 d). Scalars.

    Example:
        >>> x = np.random.default_rng(0).standard_normal((100, 2))
        >>> bool(energy_normality(x, n_boot=49).p_value > 0.01)
        True
    """
    x = as_draws(samples, "samples", 2, "the energy test")
    n, d = x.shape
    if n < d + 2:
        raise ValueError(f"samples: the energy test needs n >= d + 2 = {d + 2} draws, got {n}")
    check_int(n_boot, "n_boot", 1)
    observed = _energy_normality_statistic(x)
    rng = np.random.default_rng(seed)
    null = np.array(
        [_energy_normality_statistic(rng.standard_normal((n, d))) for _ in range(n_boot)]
    )
    return Outcome(np.asarray(observed), exceedance_p(np.asarray(observed), null))
