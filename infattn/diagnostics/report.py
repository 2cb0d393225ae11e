"""The Gaussianity report: every test in one table, with multiplicity correction."""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from infattn.diagnostics.moments import (
    REPORT_MIN_DRAWS,
    dagostino_pearson,
    kurtosis_test,
    skew_kurtosis,
    skewness_test,
)
from infattn.diagnostics.multivariate import energy_normality, mardia
from infattn.diagnostics.samples import (
    as_draws,
    coordinate_index,
    matching_reference,
    thin,
)
from infattn.diagnostics.two_sample import energy_two_sample, ks_two_sample
from infattn.diagnostics.univariate import (
    SHAPIRO_MAX_DRAWS,
    anderson_darling,
    lilliefors,
    qq_data,
    shapiro_wilk,
)
from infattn.validation import check_int

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ENERGY_MAX_DRAWS = 500
"""The report thins each sample to this many draws for the O(n^2) energy tests."""


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

        j = coordinate_index(coordinate, self.samples.shape[1])
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


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control), same shape.

    Example:
        >>> holm(np.array([0.01, 0.04, 0.03, 0.5])).tolist()
        [0.04, 0.09, 0.09, 0.5]
    """
    m = p_values.size
    order = np.argsort(p_values, kind="stable")
    scaled = np.maximum.accumulate((m - np.arange(m)) * p_values[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(scaled, 1.0)
    return adjusted


def _row(key: str, label: str, coordinate: int | None, value, se, p) -> ReportRow:
    """A row before the multiplicity correction (``p_adjusted``, ``family`` set by ``_finish``)."""
    return ReportRow(key, label, coordinate, float(value), float(se), float(p), math.nan, "")


def _per_coordinate(
    key: str, label: str, value: np.ndarray, se: np.ndarray | None, p: np.ndarray
) -> list[ReportRow]:
    d = np.size(value)
    se = np.broadcast_to(np.nan if se is None else se, (d,))
    rows = zip(np.ravel(value), se, np.ravel(p), strict=True)
    return [_row(key, label, j, v, s, q) for j, (v, s, q) in enumerate(rows)]


def _univariate_rows(x: np.ndarray, n_boot: int, seed: int) -> list[ReportRow]:
    mom, skew_t, kurt_t = skew_kurtosis(x), skewness_test(x), kurtosis_test(x)
    k2, sw, ad = dagostino_pearson(x), shapiro_wilk(x), anderson_darling(x)
    ks = lilliefors(x, n_boot=n_boot, seed=seed)
    g1, g2 = "skewness G1 (skewtest)", "excess kurtosis G2 (kurtosistest)"
    return [
        *_per_coordinate("skewness", g1, mom.skewness, mom.skewness_se, skew_t.p_value),
        *_per_coordinate(
            "excess_kurtosis", g2, mom.excess_kurtosis, mom.excess_kurtosis_se, kurt_t.p_value
        ),
        *_per_coordinate(
            "dagostino_pearson", "D'Agostino-Pearson K2", k2.statistic, None, k2.p_value
        ),
        *_per_coordinate("shapiro_wilk", "Shapiro-Wilk W", sw.statistic, None, sw.p_value),
        *_per_coordinate("anderson_darling", "Anderson-Darling A2", ad.statistic, None, ad.p_value),
        *_per_coordinate("lilliefors", "Lilliefors KS D", ks.statistic, None, ks.p_value),
    ]


def _multivariate_rows(x: np.ndarray, n_boot: int, seed: int) -> list[ReportRow]:
    mar = mardia(x)
    energy = energy_normality(thin(x, ENERGY_MAX_DRAWS), n_boot=n_boot, seed=seed)
    return [
        _row("mardia_skewness", "Mardia skewness b1", None, mar.skewness, math.nan, mar.skewness_p),
        _row(
            "mardia_kurtosis",
            "Mardia kurtosis b2",
            None,
            mar.kurtosis,
            mar.kurtosis_se,
            mar.kurtosis_p,
        ),
        _row(
            "energy_normality",
            "energy vs fitted normal",
            None,
            energy.statistic,
            math.nan,
            energy.p_value,
        ),
    ]


def _reference_rows(x: np.ndarray, ref: np.ndarray, n_boot: int, seed: int) -> list[ReportRow]:
    ks = ks_two_sample(x, ref)
    energy = energy_two_sample(
        thin(x, ENERGY_MAX_DRAWS), thin(ref, ENERGY_MAX_DRAWS), n_perm=n_boot, seed=seed
    )
    return [
        *_per_coordinate("ks_2samp", "two-sample KS D", ks.statistic, None, ks.p_value),
        _row("energy_2samp", "two-sample energy", None, energy.statistic, math.nan, energy.p_value),
    ]


def _finish(rows: list[ReportRow], family: str, correction: str) -> list[ReportRow]:
    """The rows of one family with their (Holm-)adjusted p-values."""
    p = np.array([r.p_value for r in rows])
    adjusted = holm(p) if correction == "holm" else p
    return [
        dataclasses.replace(r, p_adjusted=float(a), family=family)
        for r, a in zip(rows, adjusted, strict=True)
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

    Example:
        >>> rng = np.random.default_rng(0)
        >>> report = gaussianity_report(rng.laplace(size=(400, 1)), n_boot=99)
        >>> report.rejects_gaussian
        True
    """
    x = as_draws(samples, "samples", REPORT_MIN_DRAWS, "gaussianity_report (kurtosistest)")
    if not (isinstance(alpha, numbers.Real) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    if correction not in ("holm", "none"):
        raise ValueError(f"correction: expected 'holm' or 'none', got {correction!r}")
    check_int(n_boot, "n_boot", 1)
    ref = None if reference is None else matching_reference(np.shape(samples), reference)
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
