"""Univariate normality tests per coordinate: Shapiro-Wilk, Anderson-Darling, Lilliefors, Q-Q."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats

from infattn.diagnostics.samples import (
    BLOCK,
    Outcome,
    as_draws,
    coordinate_index,
    exceedance_p,
    thin,
)
from infattn.validation import check_int

SHAPIRO_MAX_DRAWS = 5000
"""Shapiro-Wilk p-values are accurate for n <= 5000; larger samples are thinned to this size."""
AD_SIGNIFICANCE = np.array([0.15, 0.10, 0.05, 0.025, 0.01])
AD_CRITICAL_MODIFIED = np.array([0.561, 0.631, 0.752, 0.873, 1.035])
"""Case-3 (mean and variance estimated) upper points of A*^2 = A^2 (1 + 0.75/n + 2.25/n^2),
D'Agostino & Stephens (1986), Table 4.7; the values scipy.stats.anderson uses."""


@dataclasses.dataclass(frozen=True, eq=False)
class AndersonDarling:
    """Anderson-Darling test against the fitted normal, per coordinate.

    ``statistic`` and ``modified_statistic`` (A^2 and A*^2) and ``p_value`` have shape ``(d,)``;
    ``critical_values`` ``(d, 5)`` are the A^2 thresholds at ``significance_levels`` ``(5,)``.
    """

    statistic: np.ndarray
    modified_statistic: np.ndarray
    critical_values: np.ndarray
    significance_levels: np.ndarray
    p_value: np.ndarray


def shapiro_wilk(samples: ArrayLike) -> Outcome:
    """Shapiro-Wilk W and p-value per coordinate (``scipy.stats.shapiro``), shape ``(d,)``.

    Needs n >= 3. Samples with n > ``SHAPIRO_MAX_DRAWS`` (5000, the range of SciPy's accurate
    p-values) are thinned deterministically to 5000 evenly spaced draws.

    Example:
        >>> shapiro_wilk(np.random.default_rng(0).exponential(size=(300, 1))).p_value < 1e-6
        array([ True])
    """
    x = thin(as_draws(samples, "samples", 3, "Shapiro-Wilk"), SHAPIRO_MAX_DRAWS)
    results = [stats.shapiro(col) for col in x.T]
    return Outcome(np.array([r.statistic for r in results]), np.array([r.pvalue for r in results]))


def _anderson_statistic(x: np.ndarray) -> float:
    with warnings.catch_warnings():  # SciPy >= 1.17 warns about its deprecated critical values
        warnings.simplefilter("ignore", FutureWarning)
        return float(stats.anderson(x, dist="norm").statistic)


def anderson_p_value(modified_statistic: ArrayLike) -> np.ndarray:
    """Approximate p-value of the case-3 modified statistic A*^2 (D'Agostino & Stephens 1986).

    ``A*^2 = A^2 (1 + 0.75/n + 2.25/n^2)``; piecewise formula, Table 4.9. Above A*^2 = 153.5
    (where the quadratic exponent turns) the value there, about 1e-190, is returned.

    Example:
        >>> bool(anderson_p_value(0.752) < anderson_p_value(0.5))  # 0.752: the 5% point
        True
    """
    a = np.minimum(np.asarray(modified_statistic, dtype=np.float64), 5.709 / (2 * 0.0186))
    p = np.select(
        [a >= 0.6, a >= 0.34, a >= 0.2],
        [
            np.exp(1.2937 - 5.709 * a + 0.0186 * a**2),
            np.exp(0.9177 - 4.279 * a - 1.38 * a**2),
            1.0 - np.exp(-8.318 + 42.796 * a - 59.938 * a**2),
        ],
        1.0 - np.exp(-13.436 + 101.14 * a - 223.73 * a**2),
    )
    return np.clip(p, 0.0, 1.0)


def anderson_darling(samples: ArrayLike) -> AndersonDarling:
    """Anderson-Darling test against the normal with fitted mean and SD, per coordinate.

    A^2 comes from ``scipy.stats.anderson``; critical values are ``AD_CRITICAL_MODIFIED``
    divided by the modification factor; the p-value is ``anderson_p_value(A*^2)``. Needs
    n >= 8 (the smallest n of the tabulated approximation).

    Example:
        >>> ad = anderson_darling(np.random.default_rng(0).exponential(size=(300, 1)))
        >>> bool(ad.p_value[0] < 0.01)
        True
    """
    x = as_draws(samples, "samples", 8, "Anderson-Darling")
    n = x.shape[0]
    a2 = np.array([_anderson_statistic(col) for col in x.T])
    factor = 1.0 + 0.75 / n + 2.25 / n**2
    critical = np.broadcast_to(AD_CRITICAL_MODIFIED / factor, (a2.size, AD_CRITICAL_MODIFIED.size))
    return AndersonDarling(
        a2, a2 * factor, critical.copy(), AD_SIGNIFICANCE.copy(), anderson_p_value(a2 * factor)
    )


def _ks_fitted_normal(columns: np.ndarray) -> np.ndarray:
    """KS distance of each row of ``columns`` ``(k, n)`` to its fitted normal, ``(k,)``."""
    n = columns.shape[1]
    z = np.sort(columns, axis=1)
    z = (z - z.mean(axis=1, keepdims=True)) / z.std(axis=1, ddof=1, keepdims=True)
    cdf = special.ndtr(z)
    i = np.arange(1, n + 1)
    return np.maximum((i / n - cdf).max(axis=1), (cdf - (i - 1) / n).max(axis=1))


def _ks_null(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` fitted-normal KS distances of standard normal samples of size n."""
    rng = np.random.default_rng(seed)
    step = max(1, BLOCK // n)
    return np.concatenate(
        [
            _ks_fitted_normal(rng.standard_normal((min(step, n_boot - s), n)))
            for s in range(0, n_boot, step)
        ]
    )


def lilliefors(samples: ArrayLike, *, n_boot: int = 999, seed: int = 0) -> Outcome:
    """Kolmogorov-Smirnov test against the fitted normal with the Lilliefors correction.

    The statistic is the KS distance to the normal with the sample mean and SD (``ddof=1``,
    as Lilliefors and ``scipy.stats.goodness_of_fit`` with ``stats.norm``). Fitting makes the
    plain ``kstest`` p-value conservative, so the null distribution is simulated (parametric
    bootstrap: ``n_boot`` standard normal samples of the same size, each refitted; the
    statistic is location-scale invariant, so one simulation serves all coordinates). Needs
    n >= 5. Shape ``(d,)``.

    Example:
        >>> x = np.random.default_rng(0).exponential(size=(200, 1))
        >>> bool(lilliefors(x, n_boot=99).p_value[0] < 0.05)
        True
    """
    x = as_draws(samples, "samples", 5, "Lilliefors")
    check_int(n_boot, "n_boot", 1)
    observed = _ks_fitted_normal(x.T)
    return Outcome(observed, exceedance_p(observed, _ks_null(x.shape[0], n_boot, seed)))


def qq_data(samples: ArrayLike, coordinate: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Normal Q-Q data for one coordinate: (theoretical, sample) quantiles, each ``(n,)``.

    Theoretical quantiles are those of the fitted normal (sample mean, SD with ``ddof=1``) at
    Blom's plotting positions ``(i - 3/8) / (n + 1/4)``; sample quantiles are the sorted draws.
    Gaussian data lie near the line y = x.

    Example:
        >>> theory, sample = qq_data(np.arange(5.0))
        >>> sample.tolist()
        [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    x = as_draws(samples, "samples", 2, "a Q-Q plot")
    col = x[:, coordinate_index(coordinate, x.shape[1])]
    n = col.size
    z = special.ndtri((np.arange(1, n + 1) - 0.375) / (n + 0.25))
    return col.mean() + col.std(ddof=1) * z, np.sort(col)
