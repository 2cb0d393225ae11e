"""Excess kurtosis against the number of heads: the ``1/H`` approach to the Gaussian limit."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from infattn.diagnostics.moments import g1_g2
from infattn.diagnostics.samples import as_draws, bootstrap
from infattn.statistics import loglog_fit
from infattn.validation import check_int

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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


def _mean_excess_kurtosis(x: np.ndarray) -> float:
    return float(np.mean(g1_g2(x)[1]))


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
    Estimates at or below zero (large H, where the kurtosis is small and the noise is not)
    have no logarithm: then the same power law is fitted to the kurtosis itself by weighted
    nonlinear least squares, with no point dropped (dropping them would bias the slope).
    An estimate more than 2 SE below zero contradicts a positive power law and raises
    ``ValueError``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> def heads_average(h):  # mean of h Laplace variables: excess kurtosis 3 / h
        ...     return rng.laplace(size=(4000, h)).sum(1) / np.sqrt(2 * h)
        >>> s = kurtosis_vs_heads({h: heads_average(h) for h in (1, 4, 16)}, n_boot=50)
        >>> bool(-1.5 < s.slope < -0.5)
        True
    """
    if not isinstance(samples_by_heads, Mapping) or len(samples_by_heads) < 2:
        raise ValueError("samples_by_heads: expected a mapping {heads: samples} with >= 2 entries")
    check_int(n_boot, "n_boot", 2)
    keys = list(samples_by_heads)
    if not all(isinstance(h, int | np.integer) and h >= 1 for h in keys):
        raise ValueError(f"samples_by_heads: expected integer keys H >= 1, got {keys}")
    heads = sorted(keys)
    shapes = {np.shape(v)[1:] for v in samples_by_heads.values()}
    if len(shapes) > 1:
        raise ValueError(f"samples_by_heads: expected one trailing shape, got {sorted(shapes)}")
    kurt, se = np.empty(len(heads)), np.empty(len(heads))
    for i, h in enumerate(heads):
        x = as_draws(samples_by_heads[h], f"samples_by_heads[{h}]", 4, "kurtosis")
        kurt[i] = _mean_excess_kurtosis(x)
        se[i] = bootstrap(x, _mean_excess_kurtosis, n_boot, seed + i).std(ddof=1)
    significant = kurt + 2 * se <= 0
    if np.any(significant):
        pairs = zip(heads, kurt, se, strict=True)
        bad = ", ".join(f"H={h}: {k:.3g} ± {s:.2g}" for h, k, s in pairs if k + 2 * s <= 0)
        raise ValueError(
            "samples_by_heads: excess kurtosis must be > 0 for a power law in H, got values "
            f"more than 2 SE below zero: {bad}"
        )
    h = np.array(heads, dtype=np.float64)
    slope, intercept, cov, chi2, dof = _power_law(h, kurt, se)
    return HeadsScaling(
        h,
        kurt,
        se,
        slope,
        math.sqrt(cov[1, 1]),
        intercept,
        math.sqrt(cov[0, 0]),
        chi2 / dof if dof else math.nan,
    )


def _power_law(
    heads: np.ndarray, kurt: np.ndarray, se: np.ndarray
) -> tuple[float, float, np.ndarray, float, int]:
    """``(slope, intercept, cov, chi2, dof)`` of ``kurt ~ exp(intercept) * heads^slope``.

    All ``kurt > 0``: weighted least squares of ``log kurt`` on ``log heads``. Otherwise
    (some estimates at or below zero within their noise, whose logs are undefined):
    weighted nonlinear least squares of ``kurt`` itself (Gauss-Newton, weights
    ``1 / se^2``), so that no point is dropped and the slope is not biased upward.
    """
    if np.all(kurt > 0):
        fit = loglog_fit(heads, kurt, se)
        return fit.slope, fit.intercept, fit.cov, fit.chi2, fit.dof
    pos = kurt > 0
    if np.unique(heads[pos]).size >= 2:
        start = loglog_fit(heads[pos], kurt[pos], se[pos])
        beta = np.array([start.intercept, start.slope])
    else:
        beta = np.array([math.log(max(kurt.max(), se.min())), -1.0])

    def residuals(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        model = np.exp(b[0]) * heads ** b[1]
        jac = np.stack([model, model * np.log(heads)], axis=1) / se[:, None]
        return (kurt - model) / se, jac

    r, jac = residuals(beta)
    for _ in range(200):
        step = np.linalg.lstsq(jac, r, rcond=None)[0]
        for _ in range(30):  # halve the step until chi^2 decreases
            r_new, jac_new = residuals(beta + step)
            if r_new @ r_new <= r @ r:
                break
            step = step / 2
        beta, r, jac = beta + step, r_new, jac_new
        if np.max(np.abs(step)) < 1e-12:
            break
    return float(beta[1]), float(beta[0]), np.linalg.inv(jac.T @ jac), float(r @ r), len(heads) - 2


def plot_kurtosis_vs_heads(scaling: HeadsScaling, *, ax: Axes | None = None) -> Figure:
    """Log-log plot of excess kurtosis (± SE) against H, the fitted line and a 1/H guide.

    Draws on ``ax`` if given (returns its figure), else on a new figure with one axes.
    Estimates at or below zero cannot appear on log axes; they are marked at the bottom.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> samples = {h: rng.laplace(size=(2000, h)).sum(1) / np.sqrt(2 * h) for h in (1, 4, 16)}
        >>> fig = plot_kurtosis_vs_heads(kurtosis_vs_heads(samples, n_boot=20))
        >>> fig.axes[0].get_xscale(), fig.axes[0].get_yscale()
        ('log', 'log')
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    h, k, pos = scaling.heads, scaling.kurtosis, scaling.kurtosis > 0
    ax.errorbar(h[pos], k[pos], yerr=scaling.kurtosis_se[pos], fmt="o", capsize=3, label="data")
    grid = np.geomspace(h.min(), h.max(), 50)
    fit = np.exp(scaling.intercept) * grid**scaling.slope
    ax.plot(grid, fit, label=f"fit: slope {scaling.slope:.2f} ± {scaling.slope_se:.2f}")
    if (~pos).any():
        ax.plot(h[~pos], np.full((~pos).sum(), fit.min() / 10), "v", label="estimate <= 0")
    level = np.mean(np.log(k[pos] * h[pos])) if pos.any() else scaling.intercept
    guide = np.exp(level) / grid
    ax.plot(grid, guide, "--", color="gray", label="∝ 1/H")
    ax.set(xscale="log", yscale="log", xlabel="heads H", ylabel="excess kurtosis")
    ax.legend()
    return ax.figure
