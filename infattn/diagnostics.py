"""Gaussianity diagnostics for samples of network outputs across random initialisations.

Every function takes ``samples`` of shape ``(n, *shape)``: ``n`` independent draws (one per
random initialisation) of the outputs at one or several inputs/positions. Trailing axes are
flattened in C order into ``d = prod(shape)`` *coordinates*; ``(n,)`` means ``d = 1``. NumPy and
JAX arrays are accepted; all statistics are computed in float64 with NumPy/SciPy.

Conventions (see ``docs/diagnostics.md``):

* Univariate tests act on each coordinate separately and return arrays of shape ``(d,)``.
* Bootstrap and permutation p-values are ``(1 + #{T_b >= T}) / (n_boot + 1)`` with a generator
  seeded by ``seed``, so results are reproducible and never exactly 0.
* Bad input raises ``ValueError`` naming the argument and what was expected.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats
from scipy.spatial.distance import cdist

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SHAPIRO_MAX_DRAWS = 5000
"""Shapiro-Wilk p-values are accurate for n <= 5000; larger samples are thinned to this size."""
REPORT_MIN_DRAWS = 20
"""``kurtosistest`` (and so ``normaltest``) uses a normal approximation valid only for n >= 20."""
ENERGY_MAX_DRAWS = 500
"""The report thins each sample to this many draws for the O(n^2) energy tests."""
AD_SIGNIFICANCE = np.array([0.15, 0.10, 0.05, 0.025, 0.01])
AD_CRITICAL_MODIFIED = np.array([0.561, 0.631, 0.752, 0.873, 1.035])
"""Case-3 (mean and variance estimated) upper points of A*^2 = A^2 (1 + 0.75/n + 2.25/n^2),
D'Agostino & Stephens (1986), Table 4.7; the values scipy.stats.anderson uses."""
_BLOCK = 1 << 21  # array entries per block in chunked computations


# --------------------------------------------------------------------------- result types


@dataclasses.dataclass(frozen=True, eq=False)
class Outcome:
    """A test's statistic and p-value: shape ``(d,)`` per coordinate, ``()`` if multivariate."""

    statistic: np.ndarray
    p_value: np.ndarray


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


@dataclasses.dataclass(frozen=True, eq=False)
class HeadsScaling:
    """Excess kurtosis against the number of heads and the fitted log-log slope.

    ``heads``, ``kurtosis``, ``kurtosis_se``: shape ``(m,)``, sorted by heads. The fit is
    ``log kurtosis = intercept + slope * log H`` by weighted least squares.
    """

    heads: np.ndarray
    kurtosis: np.ndarray
    kurtosis_se: np.ndarray
    slope: float
    slope_se: float
    intercept: float
    intercept_se: float
    reduced_chi2: float


# --------------------------------------------------------------------------- input checks


def _draws(
    samples: ArrayLike, name: str, minimum: int, purpose: str, *, allow_constant: bool = False
) -> np.ndarray:
    """Validate ``samples`` ``(n, *shape)`` and return float64 draws of shape ``(n, d)``."""
    a = np.asarray(samples)
    if a.ndim == 0:
        raise ValueError(f"{name}: expected an array of shape (n_draws, ...), got a scalar")
    if a.dtype.kind in "bcOSUMm":
        raise ValueError(f"{name}: expected real numbers, got dtype {a.dtype}")
    x = a.astype(np.float64).reshape(a.shape[0], -1)
    if x.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one coordinate, got shape {a.shape}")
    if x.shape[0] < minimum:
        raise ValueError(
            f"{name}: {purpose} needs at least {minimum} draws along axis 0, got {x.shape[0]}"
        )
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise ValueError(f"{name}: expected finite values, found {bad} NaN/inf entries")
    if not allow_constant:
        constant = np.flatnonzero(np.ptp(x, axis=0) == 0)
        if constant.size:
            raise ValueError(
                f"{name}: coordinates {constant[:5].tolist()} are constant across draws; "
                "Gaussianity statistics need positive variance"
            )
    return x


def _matching_reference(samples_shape: tuple[int, ...], reference: ArrayLike) -> np.ndarray:
    """Validate ``reference`` ``(m, *shape)`` against the samples' trailing ``shape``."""
    r = np.asarray(reference)
    if r.shape[1:] != samples_shape[1:]:
        raise ValueError(
            f"reference: expected shape (m, {', '.join(map(str, samples_shape[1:]))}) matching "
            f"samples' trailing axes, got {r.shape}"
        )
    return _draws(r, "reference", 2, "a two-sample test", allow_constant=True)


def _check_count(name: str, value: int, minimum: int) -> None:
    if not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")


def _thin(x: np.ndarray, size: int) -> np.ndarray:
    """Deterministic subsample: ``size`` evenly spaced draws of ``x`` ``(n, d)`` if n > size."""
    if x.shape[0] <= size:
        return x
    return x[np.linspace(0, x.shape[0] - 1, size).round().astype(int)]


# --------------------------------------------------------------------------- univariate


def _g1_g2(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Adjusted Fisher-Pearson skewness G1 and excess kurtosis G2 of ``x`` ``(n, d)``."""
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


def _bootstrap(
    x: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], n_boot: int, seed: int
) -> np.ndarray:
    """``statistic`` on ``n_boot`` resamples (with replacement) of the rows of ``x``."""
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    return np.stack([statistic(x[rng.integers(0, n, n)]) for _ in range(n_boot)])


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
    """
    x = _draws(samples, "samples", 4, "skewness/kurtosis")
    g1, g2 = _g1_g2(x)
    if se == "exact":
        se_skew, se_kurt = _exact_se(x.shape[0])
        return Moments(g1, np.full_like(g1, se_skew), g2, np.full_like(g2, se_kurt), se)
    if se != "bootstrap":
        raise ValueError(f"se: expected 'exact' or 'bootstrap', got {se!r}")
    _check_count("n_boot", n_boot, 2)
    reps = _bootstrap(x, lambda r: np.stack(_g1_g2(r)), n_boot, seed)
    spread = reps.std(axis=0, ddof=1)
    return Moments(g1, spread[0], g2, spread[1], se)


def shapiro_wilk(samples: ArrayLike) -> Outcome:
    """Shapiro-Wilk W and p-value per coordinate (``scipy.stats.shapiro``), shape ``(d,)``.

    Needs n >= 3. Samples with n > ``SHAPIRO_MAX_DRAWS`` (5000, the range of SciPy's accurate
    p-values) are thinned deterministically to 5000 evenly spaced draws.
    """
    x = _thin(_draws(samples, "samples", 3, "Shapiro-Wilk"), SHAPIRO_MAX_DRAWS)
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
    """
    x = _draws(samples, "samples", 8, "Anderson-Darling")
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
    step = max(1, _BLOCK // n)
    return np.concatenate(
        [
            _ks_fitted_normal(rng.standard_normal((min(step, n_boot - s), n)))
            for s in range(0, n_boot, step)
        ]
    )


def _exceedance_p(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """``(1 + #{null >= observed}) / (len(null) + 1)`` for each observed value."""
    count = len(null) - np.searchsorted(np.sort(null), observed, side="left")
    return (1.0 + count) / (len(null) + 1.0)


def lilliefors(samples: ArrayLike, *, n_boot: int = 999, seed: int = 0) -> Outcome:
    """Kolmogorov-Smirnov test against the fitted normal with the Lilliefors correction.

    The statistic is the KS distance to the normal with the sample mean and SD (``ddof=1``,
    as Lilliefors and ``scipy.stats.goodness_of_fit`` with ``stats.norm``). Fitting makes the
    plain ``kstest`` p-value conservative, so the null distribution is simulated (parametric
    bootstrap: ``n_boot`` standard normal samples of the same size, each refitted; the
    statistic is location-scale invariant, so one simulation serves all coordinates). Needs
    n >= 5. Shape ``(d,)``.
    """
    x = _draws(samples, "samples", 5, "Lilliefors")
    _check_count("n_boot", n_boot, 1)
    observed = _ks_fitted_normal(x.T)
    return Outcome(observed, _exceedance_p(observed, _ks_null(x.shape[0], n_boot, seed)))


def skewness_test(samples: ArrayLike) -> Outcome:
    """D'Agostino's skewness z-test per coordinate (``scipy.stats.skewtest``); n >= 8."""
    r = stats.skewtest(_draws(samples, "samples", 8, "skewtest"), axis=0)
    return Outcome(np.asarray(r.statistic), np.asarray(r.pvalue))


def kurtosis_test(samples: ArrayLike) -> Outcome:
    """Anscombe-Glynn kurtosis z-test per coordinate (``scipy.stats.kurtosistest``).

    Needs n >= 20, below which SciPy's normal approximation is not valid.
    """
    r = stats.kurtosistest(_draws(samples, "samples", REPORT_MIN_DRAWS, "kurtosistest"), axis=0)
    return Outcome(np.asarray(r.statistic), np.asarray(r.pvalue))


def dagostino_pearson(samples: ArrayLike) -> Outcome:
    """D'Agostino-Pearson K^2 omnibus test per coordinate (``scipy.stats.normaltest``); n >= 20."""
    r = stats.normaltest(_draws(samples, "samples", REPORT_MIN_DRAWS, "normaltest"), axis=0)
    return Outcome(np.asarray(r.statistic), np.asarray(r.pvalue))


def qq_data(samples: ArrayLike, coordinate: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Normal Q-Q data for one coordinate: (theoretical, sample) quantiles, each ``(n,)``.

    Theoretical quantiles are those of the fitted normal (sample mean, SD with ``ddof=1``) at
    Blom's plotting positions ``(i - 3/8) / (n + 1/4)``; sample quantiles are the sorted draws.
    Gaussian data lie near the line y = x.
    """
    x = _draws(samples, "samples", 2, "a Q-Q plot")
    col = x[:, _coordinate(coordinate, x.shape[1])]
    n = col.size
    z = special.ndtri((np.arange(1, n + 1) - 0.375) / (n + 0.25))
    return col.mean() + col.std(ddof=1) * z, np.sort(col)


def _coordinate(coordinate: int, d: int) -> int:
    if not isinstance(coordinate, int | np.integer) or not -d <= coordinate < d:
        raise ValueError(f"coordinate: expected an integer in [0, {d}), got {coordinate!r}")
    return int(coordinate) % d


# --------------------------------------------------------------------------- multivariate


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
    step = max(1, _BLOCK // (d * d))
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
    """
    x = _draws(samples, "samples", 4, "Mardia's tests")
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
    """
    scale = math.sqrt(2.0) * math.exp(special.gammaln((d + 1) / 2) - special.gammaln(d / 2))
    return scale * special.hyp1f1(-0.5, d / 2, -np.asarray(squared_norms, np.float64) / 2)


def _mean_pairwise_distance(y: np.ndarray) -> float:
    """``mean_ij |y_i - y_j|`` over all ordered pairs (diagonal included) of ``y`` ``(n, d)``."""
    n = y.shape[0]
    step = max(1, _BLOCK // n)
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
    """
    x = _draws(samples, "samples", 2, "the energy test")
    n, d = x.shape
    if n < d + 2:
        raise ValueError(f"samples: the energy test needs n >= d + 2 = {d + 2} draws, got {n}")
    _check_count("n_boot", n_boot, 1)
    observed = _energy_normality_statistic(x)
    rng = np.random.default_rng(seed)
    null = np.array(
        [_energy_normality_statistic(rng.standard_normal((n, d))) for _ in range(n_boot)]
    )
    return Outcome(np.asarray(observed), _exceedance_p(np.asarray(observed), null))


# --------------------------------------------------------------------------- two-sample


def ks_two_sample(samples: ArrayLike, reference: ArrayLike) -> Outcome:
    """Two-sample KS test per coordinate (``scipy.stats.ks_2samp``), shape ``(d,)``.

    ``samples`` ``(n, *shape)`` and ``reference`` ``(m, *shape)`` with n, m >= 2.
    """
    x = _draws(samples, "samples", 2, "a two-sample test", allow_constant=True)
    r = _matching_reference(np.shape(samples), reference)
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
    """
    x = _draws(samples, "samples", 2, "a two-sample test", allow_constant=True)
    r = _matching_reference(np.shape(samples), reference)
    _check_count("n_perm", n_perm, 1)
    pooled = np.concatenate([x, r])
    n, big_n = x.shape[0], pooled.shape[0]
    rng = np.random.default_rng(seed)
    labels = np.zeros((big_n, n_perm + 1))
    labels[:n, 0] = 1.0
    for p in range(1, n_perm + 1):
        labels[rng.permutation(big_n)[:n], p] = 1.0
    t = _energy_two_sample_stats(cdist(pooled, pooled), labels)
    return Outcome(np.asarray(t[0]), _exceedance_p(t[:1], t[1:])[0])


# --------------------------------------------------------------------------- kurtosis vs heads


def _mean_excess_kurtosis(x: np.ndarray) -> float:
    return float(np.mean(_g1_g2(x)[1]))


def kurtosis_vs_heads(
    samples_by_heads: Mapping[int, ArrayLike], *, n_boot: int = 200, seed: int = 0
) -> HeadsScaling:
    """Excess kurtosis per number of heads H and its log-log slope (about -1 for a 1/H law).

    Args:
        samples_by_heads: ``{H: samples}``, each ``(n_H, *shape)`` with the same ``shape``,
            n_H >= 4, at least two distinct H >= 1.
        n_boot, seed: bootstrap resamples (rows resampled jointly) for the SEs.

    The kurtosis at each H is G2 averaged over the d coordinates (pass ``samples[:, j]`` for
    one coordinate); its SE is the bootstrap SD (the data are non-Gaussian by design, so the
    exact normal-theory SE would be wrong). The fit is weighted least squares of ``log k`` on
    ``log H`` with weights ``(k / se)^2`` (delta method) and slope SE from the inverse normal
    matrix, i.e. treating the SEs as known; ``reduced_chi2`` (NaN for two H) checks that.
    Every kurtosis must be > 0: otherwise its log is undefined and this raises ValueError
    (dropping such H would bias the slope; use more draws or fewer large H).
    """
    if not isinstance(samples_by_heads, Mapping) or len(samples_by_heads) < 2:
        raise ValueError("samples_by_heads: expected a mapping {heads: samples} with >= 2 entries")
    _check_count("n_boot", n_boot, 2)
    keys = list(samples_by_heads)
    if not all(isinstance(h, int | np.integer) and h >= 1 for h in keys):
        raise ValueError(f"samples_by_heads: expected integer keys H >= 1, got {keys}")
    heads = sorted(keys)
    shapes = {np.shape(v)[1:] for v in samples_by_heads.values()}
    if len(shapes) > 1:
        raise ValueError(f"samples_by_heads: expected one trailing shape, got {sorted(shapes)}")
    kurt, se = np.empty(len(heads)), np.empty(len(heads))
    for i, h in enumerate(heads):
        x = _draws(samples_by_heads[h], f"samples_by_heads[{h}]", 4, "kurtosis")
        kurt[i] = _mean_excess_kurtosis(x)
        se[i] = _bootstrap(x, _mean_excess_kurtosis, n_boot, seed + i).std(ddof=1)
    if np.any(kurt <= 0):
        pairs = zip(heads, kurt, se, strict=True)
        bad = ", ".join(f"H={h}: {k:.3g} ± {s:.2g}" for h, k, s in pairs if k <= 0)
        raise ValueError(
            f"samples_by_heads: excess kurtosis must be > 0 for a log-log fit, got {bad}"
        )
    return _fit_log_log(np.array(heads, dtype=np.float64), kurt, se)


def _fit_log_log(heads: np.ndarray, kurt: np.ndarray, se: np.ndarray) -> HeadsScaling:
    """Weighted least squares of log kurtosis on log heads, each ``(m,)``."""
    design = np.stack([np.ones_like(heads), np.log(heads)], axis=1)
    y, w = np.log(kurt), (kurt / se) ** 2
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    beta = cov @ design.T @ (w * y)
    dof = len(heads) - 2
    chi2 = float(np.sum(w * (y - design @ beta) ** 2))
    return HeadsScaling(
        heads,
        kurt,
        se,
        float(beta[1]),
        math.sqrt(cov[1, 1]),
        float(beta[0]),
        math.sqrt(cov[0, 0]),
        chi2 / dof if dof else math.nan,
    )


def plot_kurtosis_vs_heads(scaling: HeadsScaling, *, ax: Axes | None = None) -> Figure:
    """Log-log plot of excess kurtosis (± SE) against H, the fitted line and a 1/H guide.

    Draws on ``ax`` if given (returns its figure), else on a new figure with one axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    h = scaling.heads
    ax.errorbar(h, scaling.kurtosis, yerr=scaling.kurtosis_se, fmt="o", capsize=3, label="data")
    grid = np.geomspace(h.min(), h.max(), 50)
    fit = np.exp(scaling.intercept) * grid**scaling.slope
    ax.plot(grid, fit, label=f"fit: slope {scaling.slope:.2f} ± {scaling.slope_se:.2f}")
    guide = np.exp(np.mean(np.log(scaling.kurtosis * h))) / grid
    ax.plot(grid, guide, "--", color="gray", label="∝ 1/H")
    ax.set(xscale="log", yscale="log", xlabel="heads H", ylabel="excess kurtosis")
    ax.legend()
    return ax.figure


# --------------------------------------------------------------------------- report


@dataclasses.dataclass(frozen=True)
class ReportRow:
    """One line of a ``GaussianityReport``.

    ``family`` is ``"gaussian"`` (null: the law is Gaussian) or ``"reference"`` (null: same
    law as the reference samples). ``coordinate`` is None for multivariate tests; ``se`` is NaN
    where not applicable; ``p_adjusted`` is Holm-adjusted within the family (or equals
    ``p_value`` when the report uses ``correction="none"``).
    """

    key: str
    label: str
    coordinate: int | None
    value: float
    se: float
    p_value: float
    p_adjusted: float
    family: str

    @property
    def name(self) -> str:
        """``key`` plus ``[coordinate]`` for per-coordinate tests, e.g. ``"shapiro_wilk[2]"``."""
        return self.key if self.coordinate is None else f"{self.key}[{self.coordinate}]"


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianityReport:
    """Result of ``gaussianity_report``: a table of tests that prints readably and plots.

    ``rows`` are the tests in table order; ``notes`` say what was thinned or cannot reject.
    ``samples`` ``(n, d)`` and ``reference`` ``(m, d)`` (or None) are kept for ``plot``.
    """

    rows: tuple[ReportRow, ...]
    alpha: float
    correction: str
    notes: tuple[str, ...]
    samples: np.ndarray = dataclasses.field(repr=False)
    reference: np.ndarray | None = dataclasses.field(repr=False)

    @property
    def p_values(self) -> dict[str, float]:
        """Unadjusted p-values keyed by ``ReportRow.name``."""
        return {row.name: row.p_value for row in self.rows}

    @property
    def rejects_gaussian(self) -> bool:
        """True if any Gaussianity test rejects at ``alpha`` (after the report's correction)."""
        return any(r.p_adjusted <= self.alpha for r in self.rows if r.family == "gaussian")

    @property
    def rejects_reference(self) -> bool | None:
        """True if a two-sample test rejects equality with the reference; None without one."""
        if self.reference is None:
            return None
        return any(r.p_adjusted <= self.alpha for r in self.rows if r.family == "reference")

    def __str__(self) -> str:
        n, d = self.samples.shape
        adj = "Holm-adjusted within each family" if self.correction == "holm" else "unadjusted"
        head = f"{'test':<34}{'coord':>6}{'value':>12}{'SE':>10}{'p':>11}{'p adj':>11}  verdict"
        lines = [
            f"Gaussianity report: n = {n} draws, d = {d} coordinates, alpha = {self.alpha} ({adj})",
            head,
            "-" * len(head),
        ]
        lines += [_format_row(r, self.alpha) for r in self.rows]
        verdict = "REJECTED" if self.rejects_gaussian else "not rejected"
        lines += ["-" * len(head), f"Gaussianity {verdict} at alpha = {self.alpha}"]
        if self.reference is not None:
            same = "REJECTED" if self.rejects_reference else "not rejected"
            lines.append(f"Same law as reference {same} at alpha = {self.alpha}")
        return "\n".join(lines + [f"note: {note}" for note in self.notes])

    def plot(self, coordinate: int = 0, *, bins: int = 50) -> Figure:
        """Histogram of one coordinate with the fitted Gaussian (and reference) and a Q-Q plot.

        Returns a figure with two axes: the density panel (fitted normal density; with a
        reference, its histogram and Gaussian KDE) and the normal Q-Q panel.
        """
        import matplotlib.pyplot as plt

        j = _coordinate(coordinate, self.samples.shape[1])
        col = self.samples[:, j]
        fig, (ax_hist, ax_qq) = plt.subplots(1, 2, figsize=(10, 4))
        ax_hist.hist(col, bins=bins, density=True, alpha=0.5, label="samples")
        grid = np.linspace(col.min(), col.max(), 200)
        if self.reference is not None:
            ref = self.reference[:, j]
            ax_hist.hist(ref, bins=bins, density=True, histtype="step", label="reference")
            grid = np.linspace(min(col.min(), ref.min()), max(col.max(), ref.max()), 200)
            if np.ptp(ref) > 0:
                ax_hist.plot(grid, stats.gaussian_kde(ref)(grid), label="reference KDE")
        pdf = stats.norm.pdf(grid, col.mean(), col.std(ddof=1))
        ax_hist.plot(grid, pdf, "k-", label="fitted normal")
        ax_hist.set(xlabel=f"output, coordinate {j}", ylabel="density")
        ax_hist.legend()
        theory, sample = qq_data(self.samples, j)
        ax_qq.plot(theory, sample, ".", markersize=3)
        ax_qq.axline((theory[0], theory[0]), slope=1.0, color="k", linewidth=1)
        ax_qq.set(xlabel="fitted normal quantiles", ylabel="sample quantiles", title="Q-Q")
        return fig


def _format_row(row: ReportRow, alpha: float) -> str:
    coord = "all" if row.coordinate is None else str(row.coordinate)
    se = "-" if math.isnan(row.se) else f"{row.se:.4g}"
    reject = row.p_adjusted <= alpha
    verdict = ("non-Gaussian" if row.family == "gaussian" else "differs") if reject else "ok"
    return (
        f"{row.label:<34}{coord:>6}{row.value:>12.5g}{se:>10}{row.p_value:>11.3g}"
        f"{row.p_adjusted:>11.3g}  {verdict}"
    )


def _holm(p_values: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control), same shape."""
    m = p_values.size
    order = np.argsort(p_values, kind="stable")
    scaled = np.maximum.accumulate((m - np.arange(m)) * p_values[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(scaled, 1.0)
    return adjusted


_Row = tuple[str, str, int | None, float, float, float]  # key, label, coord, value, se, p


def _per_coordinate(
    key: str, label: str, value: np.ndarray, se: np.ndarray | None, p: np.ndarray
) -> list[_Row]:
    d = np.size(value)
    se = np.broadcast_to(np.nan if se is None else se, (d,))
    rows = zip(np.ravel(value), se, np.ravel(p), strict=True)
    return [(key, label, j, float(v), float(s), float(q)) for j, (v, s, q) in enumerate(rows)]


def _univariate_rows(x: np.ndarray, n_boot: int, seed: int) -> list[_Row]:
    mom, skew_t, kurt_t = skew_kurtosis(x), skewness_test(x), kurtosis_test(x)
    k2, sw, ad = dagostino_pearson(x), shapiro_wilk(x), anderson_darling(x)
    ks = lilliefors(x, n_boot=n_boot, seed=seed)
    return [
        *_per_coordinate(
            "skewness", "skewness G1 (skewtest)", mom.skewness, mom.skewness_se, skew_t.p_value
        ),
        *_per_coordinate(
            "excess_kurtosis",
            "excess kurtosis G2 (kurtosistest)",
            mom.excess_kurtosis,
            mom.excess_kurtosis_se,
            kurt_t.p_value,
        ),
        *_per_coordinate(
            "dagostino_pearson", "D'Agostino-Pearson K2", k2.statistic, None, k2.p_value
        ),
        *_per_coordinate("shapiro_wilk", "Shapiro-Wilk W", sw.statistic, None, sw.p_value),
        *_per_coordinate("anderson_darling", "Anderson-Darling A2", ad.statistic, None, ad.p_value),
        *_per_coordinate("lilliefors", "Lilliefors KS D", ks.statistic, None, ks.p_value),
    ]


def _multivariate_rows(x: np.ndarray, n_boot: int, seed: int) -> list[_Row]:
    mar = mardia(x)
    energy = energy_normality(_thin(x, ENERGY_MAX_DRAWS), n_boot=n_boot, seed=seed)
    return [
        ("mardia_skewness", "Mardia skewness b1", None, mar.skewness, math.nan, mar.skewness_p),
        (
            "mardia_kurtosis",
            "Mardia kurtosis b2",
            None,
            mar.kurtosis,
            mar.kurtosis_se,
            mar.kurtosis_p,
        ),
        (
            "energy_normality",
            "energy vs fitted normal",
            None,
            float(energy.statistic),
            math.nan,
            float(energy.p_value),
        ),
    ]


def _reference_rows(x: np.ndarray, ref: np.ndarray, n_boot: int, seed: int) -> list[_Row]:
    ks = ks_two_sample(x, ref)
    energy = energy_two_sample(
        _thin(x, ENERGY_MAX_DRAWS), _thin(ref, ENERGY_MAX_DRAWS), n_perm=n_boot, seed=seed
    )
    return [
        *_per_coordinate("ks_2samp", "two-sample KS D", ks.statistic, None, ks.p_value),
        (
            "energy_2samp",
            "two-sample energy",
            None,
            float(energy.statistic),
            math.nan,
            float(energy.p_value),
        ),
    ]


def _finish(rows: list[_Row], family: str, correction: str) -> list[ReportRow]:
    p = np.array([r[5] for r in rows])
    adjusted = _holm(p) if correction == "holm" else p
    return [
        ReportRow(k, lab, c, v, s, q, float(a), family)
        for (k, lab, c, v, s, q), a in zip(rows, adjusted, strict=True)
    ]


def gaussianity_report(
    samples: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    alpha: float = 0.01,
    seed: int = 0,
    n_boot: int = 999,
    correction: Literal["holm", "none"] = "holm",
) -> GaussianityReport:
    """Run every Gaussianity diagnostic on ``samples`` ``(n, *shape)`` and tabulate them.

    Per coordinate: G1 (skewtest p), G2 (kurtosistest p), D'Agostino-Pearson, Shapiro-Wilk,
    Anderson-Darling, Lilliefors. If d >= 2 also Mardia's skewness and kurtosis and the energy
    test against the fitted normal. With ``reference`` ``(m, *shape)`` (e.g. draws from the
    exact finite-head law) also per-coordinate two-sample KS and the two-sample energy test;
    these form a separate family (``rejects_reference``), not part of ``rejects_gaussian``.

    Args:
        samples: draws, n >= 20 (``kurtosistest``); for d >= 2 also n >= d + 2.
        reference: optional reference draws, m >= 2.
        alpha: level for the verdicts, in (0, 1).
        seed: seeds the bootstrap/permutation tests (``seed``, ``seed + 1``, ``seed + 2``).
        n_boot: resamples for the Lilliefors, energy and permutation p-values.
        correction: ``"holm"`` adjusts p-values for the number of tests in each family so that
            ``rejects_gaussian`` controls the family-wise error at ``alpha``; ``"none"`` uses
            raw p-values (then "any test rejects" fires far more often than ``alpha``).

    The energy tests thin each sample deterministically to ``ENERGY_MAX_DRAWS`` draws; the
    table's notes say when thinning happened, and when ``n_boot`` is too small for a bootstrap
    p-value to reject on its own after the Holm correction.
    """
    x = _draws(samples, "samples", REPORT_MIN_DRAWS, "gaussianity_report (kurtosistest)")
    if not (isinstance(alpha, numbers.Real) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    if correction not in ("holm", "none"):
        raise ValueError(f"correction: expected 'holm' or 'none', got {correction!r}")
    _check_count("n_boot", n_boot, 1)
    ref = None if reference is None else _matching_reference(np.shape(samples), reference)
    gauss = _univariate_rows(x, n_boot, seed)
    if x.shape[1] >= 2:
        gauss += _multivariate_rows(x, n_boot, seed + 1)
    rows = _finish(gauss, "gaussian", correction)
    if ref is not None:
        rows += _finish(_reference_rows(x, ref, n_boot, seed + 2), "reference", correction)
    notes = _notes(x, ref, n_boot, alpha if correction == "holm" else None, len(gauss))
    return GaussianityReport(tuple(rows), float(alpha), correction, notes, x, ref)


def _notes(
    x: np.ndarray, ref: np.ndarray | None, n_boot: int, holm_alpha: float | None, n_tests: int
) -> tuple[str, ...]:
    notes = []
    if holm_alpha is not None and (n_boot + 1) * holm_alpha < n_tests:
        notes.append(
            f"bootstrap p-values are >= 1/{n_boot + 1}: after Holm over {n_tests} tests they "
            f"reject alone only with n_boot >= {math.ceil(n_tests / holm_alpha - 1e-9) - 1}"
        )
    if x.shape[0] > SHAPIRO_MAX_DRAWS:
        notes.append(f"Shapiro-Wilk used {SHAPIRO_MAX_DRAWS} evenly spaced draws of {x.shape[0]}")
    energy_inputs = ([x] if x.shape[1] >= 2 or ref is not None else []) + (
        [] if ref is None else [ref]
    )
    if any(len(a) > ENERGY_MAX_DRAWS for a in energy_inputs):
        notes.append(f"energy tests used at most {ENERGY_MAX_DRAWS} evenly spaced draws per sample")
    return tuple(notes)
