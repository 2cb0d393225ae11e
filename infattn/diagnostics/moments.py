"""Skewness and excess kurtosis per coordinate, with standard errors and their tests."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from infattn.diagnostics.samples import Outcome, as_draws, bootstrap
from infattn.validation import check_int

REPORT_MIN_DRAWS = 20
"""``kurtosistest`` (and so ``normaltest``) uses a normal approximation valid only for n >= 20."""


@dataclasses.dataclass(frozen=True, eq=False)
class Moments:
    """Sample skewness G1 and excess kurtosis G2 per coordinate, shape ``(d,)`` each.

    ``se_method`` is ``"exact"`` (exact finite-sample SD of G1/G2 under normality) or
    ``"bootstrap"`` (SD over nonparametric bootstrap resamples of the draws).
    """

    skewness: np.ndarray
    skewness_se: np.ndarray
    excess_kurtosis: np.ndarray
    excess_kurtosis_se: np.ndarray
    se_method: str


def g1_g2(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Adjusted Fisher-Pearson skewness G1 and excess kurtosis G2 of ``x`` ``(n, d)``.

    Example:
        >>> g1, g2 = g1_g2(np.array([[0.0], [1.0], [2.0], [10.0]]))
        >>> bool(g1[0] > 0 and g2[0] > 0)
        True
    """
    n = x.shape[0]
    c = x - x.mean(axis=0)
    m2 = np.mean(c**2, axis=0)
    g1 = np.mean(c**3, axis=0) / m2**1.5
    g2 = np.mean(c**4, axis=0) / m2**2 - 3.0
    big_g1 = g1 * math.sqrt(n * (n - 1)) / (n - 2)
    big_g2 = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * g2 + 6.0)
    return big_g1, big_g2


def _exact_se(n: int) -> tuple[float, float]:
    """Exact SDs of G1 and G2 for n normal draws (Cramér; Joanes & Gill 1998)."""
    se_skew = math.sqrt(6.0 * n * (n - 1) / ((n - 2) * (n + 1) * (n + 3)))
    se_kurt = 2.0 * se_skew * math.sqrt((n * n - 1.0) / ((n - 3) * (n + 5)))
    return se_skew, se_kurt


def skew_kurtosis(
    samples: ArrayLike,
    *,
    se: Literal["exact", "bootstrap"] = "exact",
    n_boot: int = 200,
    seed: int = 0,
) -> Moments:
    """Skewness G1 and excess kurtosis G2 with standard errors, per coordinate.

    Args:
        samples: ``(n, *shape)`` draws, n >= 4.
        se: ``"exact"``: the exact SD of G1/G2 for normal data (the spread under the Gaussian
            null; depends on n only). ``"bootstrap"``: the SD over ``n_boot`` resamples of the
            draws, valid for non-Gaussian data with finite eighth moment.
        n_boot, seed: bootstrap resamples and seed (``se="bootstrap"`` only).

    Returns:
        ``Moments`` with arrays of shape ``(d,)``; G1, G2 equal ``scipy.stats.skew`` and
        ``scipy.stats.kurtosis`` with ``bias=False``.

    Example:
        >>> m = skew_kurtosis(np.random.default_rng(0).standard_normal((2000, 2)))
        >>> bool(np.all(np.abs(m.excess_kurtosis) < 4 * m.excess_kurtosis_se))
        True
    """
    x = as_draws(samples, "samples", 4, "skewness/kurtosis")
    g1, g2 = g1_g2(x)
    if se == "exact":
        se_skew, se_kurt = _exact_se(x.shape[0])
        return Moments(g1, np.full_like(g1, se_skew), g2, np.full_like(g2, se_kurt), se)
    if se != "bootstrap":
        raise ValueError(f"se: expected 'exact' or 'bootstrap', got {se!r}")
    check_int(n_boot, "n_boot", 2)
    reps = bootstrap(x, lambda r: np.stack(g1_g2(r)), n_boot, seed)
    spread = reps.std(axis=0, ddof=1)
    return Moments(g1, spread[0], g2, spread[1], se)


def skewness_test(samples: ArrayLike) -> Outcome:
    """D'Agostino's skewness z-test per coordinate (``scipy.stats.skewtest``); n >= 8.

    Example:
        >>> skewness_test(np.random.default_rng(0).exponential(size=(500, 1))).p_value < 1e-6
        array([ True])
    """
    r = stats.skewtest(as_draws(samples, "samples", 8, "skewtest"), axis=0)
    return Outcome(np.asarray(r.statistic), np.asarray(r.pvalue))


def kurtosis_test(samples: ArrayLike) -> Outcome:
    """Anscombe-Glynn kurtosis z-test per coordinate (``scipy.stats.kurtosistest``).

    Needs n >= 20, below which SciPy's normal approximation is not valid.

    Example:
        >>> kurtosis_test(np.random.default_rng(0).laplace(size=(500, 1))).p_value < 1e-6
        array([ True])
    """
    r = stats.kurtosistest(as_draws(samples, "samples", REPORT_MIN_DRAWS, "kurtosistest"), axis=0)
    return Outcome(np.asarray(r.statistic), np.asarray(r.pvalue))


def dagostino_pearson(samples: ArrayLike) -> Outcome:
    """D'Agostino-Pearson K^2 omnibus test per coordinate (``scipy.stats.normaltest``); n >= 20.

    Example:
        >>> dagostino_pearson(np.random.default_rng(0).laplace(size=(500, 1))).p_value < 1e-6
        array([ True])
    """
    r = stats.normaltest(as_draws(samples, "samples", REPORT_MIN_DRAWS, "normaltest"), axis=0)
    return Outcome(np.asarray(r.statistic), np.asarray(r.pvalue))
