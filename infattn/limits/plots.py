"""Plots of convergence sweeps and of the untied ``1/d`` collapse (matplotlib, imported here)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from infattn.plots import size_ticks

if TYPE_CHECKING:
    from infattn.limits.collapse import CollapseResult
    from infattn.limits.sweep import ConvergenceSweep


def plot_sweep(sweep: ConvergenceSweep, kind: str | None = None, axes: Any = None) -> Any:
    """Log-log plots of ``rel_bias`` (with CIs), the noise level and the fits.

    One row of two panels (against width, against heads) per kernel kind
    (``kind=None``: all). Returns the matplotlib figure.

    Example:
        >>> import jax
        >>> from infattn import stax
        >>> from infattn.limits import convergence_sweep
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (2, 3))
        >>> sweep = convergence_sweep(lambda h, w: stax.Dense(8, W_std=(1 + 1 / w) ** 0.5), x,
        ...                           heads=[1], widths=[1, 4], n_samples=16, get="nngp",
        ...                           key=jax.random.PRNGKey(1), analytic={"nngp": x @ x.T / 3},
        ...                           check_heads=False)
        >>> fig = plot_sweep(sweep)
        >>> [ax.get_xlabel() for ax in fig.axes]
        ['width', 'heads']
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> sweep_panel(ax, sweep, "nngp", "width")
        >>> ax.get_ylabel(), ax.get_yscale()
        ('nngp: relative bias', 'log')
    """
    import matplotlib.pyplot as plt

    kinds = sweep.kinds if kind is None else (kind,)
    if axes is None:
        fig, axes = plt.subplots(len(kinds), 2, figsize=(10, 3.6 * len(kinds)), squeeze=False)
    else:
        axes = np.asarray(axes).reshape(len(kinds), 2)
        fig = axes[0, 0].figure
    for row, k in zip(axes, kinds, strict=True):
        sweep_panel(row[0], sweep, k, "width")
        sweep_panel(row[1], sweep, k, "heads")
    fig.tight_layout()
    return fig


def sweep_panel(ax: Any, sweep: ConvergenceSweep, k: str, against: str) -> None:
    """One panel of :func:`plot_sweep`: ``rel_bias`` of kernel ``k`` against ``'width'``
    or ``'heads'`` (one series per value of the other), with CIs, noise level and fits.

    Example: :func:`plot_sweep`'s, which ends by drawing one panel with this function.
    """
    series, xs = (sweep.heads, sweep.widths) if against == "width" else (sweep.widths, sweep.heads)
    for fixed in series:
        pts = [sweep.row(k, fixed, v) if against == "width" else sweep.row(k, v, fixed) for v in xs]
        y = np.array([p.rel_bias for p in pts])
        lo = np.array([p.rel_bias_ci[0] for p in pts])
        hi = np.array([p.rel_bias_ci[1] for p in pts])
        res = np.array([p.resolved for p in pts])
        label = f"{'heads' if against == 'width' else 'width'}={fixed}"
        yerr = [(y - lo)[res], (hi - y)[res]]
        line = ax.errorbar(np.array(xs)[res], y[res], yerr=yerr, fmt="o", capsize=3, label=label)
        color = line[0].get_color()
        if (~res).any():
            ax.plot(np.array(xs)[~res], hi[~res], "v", color=color, alpha=0.6)
        ax.plot(xs, [p.rel_noise for p in pts], ":", color=color, alpha=0.6)
        fits = [f for f in sweep.fits if (f.kind, f.against, f.fixed) == (k, against, fixed)]
        if fits and fits[0].resolved:
            fit = fits[0]
            grid = np.geomspace(min(xs), max(xs), 50)
            slope = f"slope {fit.slope:+.2f} ± {fit.slope_se:.2f}"
            ax.plot(grid, fit.predict(grid), "-", color=color, alpha=0.8, label=slope)
    ax.set_yscale("log")
    size_ticks(ax, xs)
    ax.set_xlabel(against)
    ax.set_ylabel(f"{k}: relative bias")
    ax.set_title(f"{k} vs {against} (dotted: noise level; ▼: upper CI)")
    ax.legend(fontsize=8)


def plot_collapse(result: CollapseResult, ax: Any = None) -> Any:
    """Log-log plot of the attention-matrix distance and its fit; returns the figure.

    Example:
        >>> import jax
        >>> from infattn.limits import uniform_collapse
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (1, 3, 4))
        >>> result = uniform_collapse(x, [4, 64], key=jax.random.PRNGKey(1), n_samples=8)
        >>> fig = plot_collapse(result)
        >>> fig.axes[0].get_xscale(), fig.axes[0].get_yscale()
        ('log', 'log')
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.6))
    else:
        fig = ax.figure
    ax.errorbar(
        result.widths,
        result.attention_distance,
        yerr=result.attention_distance_se,
        fmt="o",
        capsize=3,
        label="finite untied 1/d attention",
    )
    f = result.attention_fit
    if np.isfinite(f.slope):
        grid = np.geomspace(min(result.widths), max(result.widths), 50)
        ax.plot(grid, f.predict(grid), "-", label=f"slope {f.slope:+.2f} ± {f.slope_se:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("key width d")
    ax.set_ylabel("||zeta(G) - uniform||_F / ||uniform||_F")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
