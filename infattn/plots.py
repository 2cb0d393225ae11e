"""Plotting primitives shared by the explorer and the figures: each draws on a given axes.

* :func:`kernel_heatmap`: a kernel matrix, optionally with its standard errors as
  a hatched overlay where ``|value| < 2 SE`` (entries not resolved from zero);
* :func:`loglog_with_bands`: a quantity against a size, log-log, with confidence
  bands, a fitted power law and a theory slope;
* :func:`histogram_with_laws`: samples with a Gaussian density and other laws'
  samples overlaid;
* :func:`qq_plot`: normal Q-Q points with the identity line.

Matplotlib is imported only by the callers' figures: these functions receive axes.
An image drawn by :func:`kernel_heatmap` is updated in place when the same axes
are drawn on again with data of the same shape (``set_data``), so interactive
figures are created once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["histogram_with_laws", "kernel_heatmap", "loglog_with_bands", "qq_plot"]


def kernel_heatmap(
    ax: Any,
    values: Any,
    se: Any = None,
    *,
    title: str = "",
    symmetric: bool = False,
    vmax: float | None = None,
) -> Any:
    """Draw (or redraw in place) a ``(N1, N2)`` kernel matrix on ``ax``; returns the image.

    Args:
      values: ``(N1, N2)`` matrix.
      se: ``(N1, N2)`` standard errors or ``None``; entries with ``|values| < 2 se``
        are hatched (not resolved from zero), and the title gains the largest SE.
      symmetric: colour scale centred on 0 (``'RdBu_r'``), for differences.
      vmax: the colour scale's upper end (default: ``max |values|``).

    Example:
      >>> from matplotlib.figure import Figure
      >>> ax = Figure().add_subplot()
      >>> im = kernel_heatmap(ax, np.eye(3), title="K")
      >>> kernel_heatmap(ax, 2 * np.eye(3)) is im, float(im.get_array().max())
      (True, 2.0)
    """
    v = np.asarray(values, np.float64)
    if v.ndim != 2:
        raise ValueError(f"values: expected a (N1, N2) matrix, got shape {v.shape}")
    top = float(np.max(np.abs(v))) if vmax is None else float(vmax)
    top = top if top > 0 else 1.0
    lo, cmap = (-top, "RdBu_r") if symmetric else (min(0.0, float(v.min())), "viridis")
    images = ax.get_images()
    if images and images[0].get_array().shape == v.shape:
        im = images[0]
        im.set_data(v)
        im.set_cmap(cmap)
        im.set_clim(lo, top)
    else:
        for old in images:
            old.remove()
        im = ax.imshow(v, cmap=cmap, vmin=lo, vmax=top, interpolation="nearest")
        ax.set_xticks(range(v.shape[1]))
        ax.set_yticks(range(v.shape[0]))
        ax.tick_params(labelsize=7)
    for patch in list(ax.patches):
        patch.remove()
    if se is not None:
        s = np.asarray(se, np.float64)
        if s.shape != v.shape:
            raise ValueError(f"se: expected shape {v.shape}, got {s.shape}")
        _hatch_unresolved(ax, np.abs(v) < 2 * s)
        title = f"{title}\n(max SE {float(s.max()):.2g}; hatched: |value| < 2 SE)"
    ax.set_title(title, fontsize=9)
    return im


def _hatch_unresolved(ax: Any, where: np.ndarray) -> None:
    from matplotlib.patches import Rectangle

    for i, j in zip(*np.nonzero(where), strict=True):
        ax.add_patch(
            Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", linewidth=0, alpha=0.5)
        )


def loglog_with_bands(
    ax: Any,
    x: Sequence[float],
    y: Sequence[float],
    lo: Sequence[float] | None = None,
    hi: Sequence[float] | None = None,
    *,
    label: str = "",
    fit: Any = None,
    theory_slope: float | None = None,
    noise: Sequence[float] | None = None,
    color: str | None = None,
) -> None:
    """Points ``y(x)`` on log-log axes with a confidence band, a fit and a theory line.

    Args:
      x, y: sizes and values ``(m,)``; non-positive ``y`` are left out of the log plot.
      lo, hi: the confidence interval ``(m,)``, or ``None``: shaded where ``lo > 0``;
        where ``lo <= 0`` the value is not resolved from zero and only ``hi`` is drawn
        (a downward triangle).
      fit: an :class:`infattn.limits.SlopeFit` (drawn as a solid line with its slope
        in the legend) or ``None``.
      theory_slope: a dashed line of this slope through the geometric centre of the
        points, or ``None``.
      noise: the level noise alone would give ``(m,)`` (dotted), or ``None``.

    Example:
      >>> from matplotlib.figure import Figure
      >>> ax = Figure().add_subplot()
      >>> loglog_with_bands(ax, [1, 2, 4], [1, 0.5, 0.25], theory_slope=-1)
      >>> ax.get_xscale(), len(ax.lines)
      ('log', 2)
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    ok = y > 0
    resolved = ok if lo is None else ok & (np.asarray(lo, np.float64) > 0)
    (line,) = ax.plot(x[resolved], y[resolved], "o", color=color, label=label or None)
    color = line.get_color()
    if lo is not None and hi is not None:
        lo_a, hi_a = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        if resolved.any():
            ax.fill_between(
                x[resolved], lo_a[resolved], hi_a[resolved], color=color, alpha=0.2, lw=0
            )
        up = ~resolved & (hi_a > 0)
        if up.any():  # not resolved from zero: the upper end of the interval
            ax.plot(x[up], hi_a[up], "v", color=color, alpha=0.6, label="upper CI (unresolved)")
    if noise is not None:
        ax.plot(x, noise, ":", color=color, alpha=0.7, label="noise level")
    if fit is not None and np.isfinite(fit.slope):
        grid = np.geomspace(min(fit.x), max(fit.x), 32)
        ax.plot(
            grid,
            fit.predict(grid),
            "-",
            color=color,
            label=f"fit: {fit.slope:+.2f} ± {fit.slope_se:.2f}",
        )
    if theory_slope is not None and ok.any():
        cx = float(np.exp(np.mean(np.log(x[ok]))))
        cy = float(np.exp(np.mean(np.log(y[ok]))))
        grid = np.geomspace(x.min(), x.max(), 32)
        ax.plot(
            grid,
            cy * (grid / cx) ** theory_slope,
            "--",
            color="gray",
            label=f"theory: slope {theory_slope:g}",
        )
    ax.set_yscale("log")
    size_ticks(ax, x)


def size_ticks(ax: Any, sizes: Any) -> None:
    """A log x axis labelled at the swept ``sizes`` only (no crowded minor labels).

    Example:
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> size_ticks(ax, [8, 32, 128])
        >>> [t.get_text() for t in ax.get_xticklabels()]
        ['8', '32', '128']
    """
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{v:g}" for v in sizes], minor=False)
    ax.minorticks_off()


def histogram_with_laws(
    ax: Any,
    samples: Any,
    *,
    label: str = "samples",
    gaussian_var: float | None = None,
    others: Mapping[str, Any] | None = None,
    bins: int = 40,
) -> None:
    """A density histogram of ``samples`` with a centred Gaussian and other laws overlaid.

    Args:
      samples: ``(n,)`` draws (filled histogram).
      gaussian_var: variance of the ``N(0, gaussian_var)`` density drawn as a black
        curve (the GP), or ``None``.
      others: ``{label: (m,) draws}`` drawn as step histograms on the same bins.

    Example:
      >>> from matplotlib.figure import Figure
      >>> ax = Figure().add_subplot()
      >>> histogram_with_laws(ax, np.random.default_rng(0).normal(size=200), gaussian_var=1.0)
      >>> len(ax.lines)
      1
    """
    s = np.asarray(samples, np.float64).reshape(-1)
    arrays = [s] + [np.asarray(v, np.float64).reshape(-1) for v in (others or {}).values()]
    lo = min(float(a.min()) for a in arrays)
    hi = max(float(a.max()) for a in arrays)
    if gaussian_var is not None and gaussian_var > 0:
        sd = float(np.sqrt(gaussian_var))
        lo, hi = min(lo, -4 * sd), max(hi, 4 * sd)
    edges = np.linspace(lo, hi, bins + 1)
    ax.hist(s, bins=edges, density=True, alpha=0.45, label=label)
    for name, draws in (others or {}).items():
        ax.hist(
            np.asarray(draws).reshape(-1),
            bins=edges,
            density=True,
            histtype="step",
            lw=1.5,
            label=name,
        )
    if gaussian_var is not None and gaussian_var > 0:
        grid = np.linspace(lo, hi, 200)
        ax.plot(
            grid,
            stats.norm.pdf(grid, 0.0, np.sqrt(gaussian_var)),
            "k-",
            lw=1.2,
            label="GP (infinite width and heads)",
        )
    ax.set_ylabel("density")


def qq_plot(ax: Any, theoretical: Any, sample: Any, *, label: str = "") -> None:
    """Normal Q-Q points (e.g. from :func:`infattn.diagnostics.qq_data`) and the line y = x.

    Example:
      >>> from matplotlib.figure import Figure
      >>> ax = Figure().add_subplot()
      >>> qq_plot(ax, [-1.0, 0.0, 1.0], [-1.1, 0.0, 1.2])
      >>> len(ax.lines)
      2
    """
    t = np.asarray(theoretical, np.float64)
    ax.plot(t, np.asarray(sample, np.float64), ".", ms=3, label=label or None)
    ax.axline((float(t[0]), float(t[0])), slope=1.0, color="k", lw=1)
    ax.set_xlabel("fitted normal quantiles")
    ax.set_ylabel("sample quantiles")
