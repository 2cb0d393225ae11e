"""The explorer's five panels (ipywidgets 8 + ipympl): what each one draws.

Each panel is an ``ipywidgets.VBox`` a notebook displays in one line
(``KernelPanel()``). Its figure is created once (an ipympl canvas) and redrawn in
place from the views of :mod:`infattn.explore.compute`; the machinery (worker
thread, progress, Stop, errors, "Show code") is :class:`~infattn.explore.panel.Panel`,
the controls :class:`~infattn.explore.controls.Controls`. Panels given the same
:class:`Controls` follow each other.
"""

from __future__ import annotations

import html
import math
from typing import Any

import ipywidgets as w
import numpy as np

from infattn import plots
from infattn.explore import compute
from infattn.explore.controls import MONO, SLIDER, Controls, device_name
from infattn.explore.model import Config
from infattn.explore.panel import Panel

__all__ = [
    "AttentionPanel",
    "Controls",
    "ConvergencePanel",
    "GaussianityPanel",
    "KernelPanel",
    "ThreeLimitsPanel",
    "device_name",
]


class KernelPanel(Panel):
    """Analytic vs finite-network NNGP and NTK, their difference and the relative error."""

    title = "Kernel: infinite width vs finite networks"
    code_panel = "kernel"
    figsize = (9.5, 5.6)

    def make_axes(self) -> None:
        self.axes = self.figure.subplots(2, 3)

    def views(self, cfg: Config) -> Any:
        return compute.kernel_views(cfg)

    def layout_key(self) -> tuple:
        """Per axes: title lines, image shape (its ticks)."""
        return tuple(
            (
                len(ax.get_title().splitlines()),
                tuple(im.get_array().shape for im in ax.get_images()),
            )
            for ax in self.figure.axes
        )

    @staticmethod
    def fraction(view: compute.KernelView) -> tuple[float, str]:
        return view.n_draws / max(view.total, 1), f"{view.n_draws}/{view.total} draws"

    def draw(self, view: compute.KernelView, cfg: Config) -> None:
        for row, kind in zip(self.axes, compute.KINDS, strict=True):
            ref, ref_se = view.analytic[kind]
            top = float(np.abs(ref).max())
            plots.kernel_heatmap(row[0], ref, ref_se, title=f"{kind.upper()} analytic", vmax=top)
            if view.mean is None:
                _blank(row[1], "finite networks: computing…")
                _blank(row[2], "")
                continue
            mean, se = view.mean[kind], view.se[kind]
            for ax in row[1:]:
                for t in list(ax.texts):
                    t.remove()
            plots.kernel_heatmap(
                row[1], mean, se, title=f"finite mean ({view.n_draws} draws)", vmax=top
            )
            diff_se = se if ref_se is None else np.sqrt(se**2 + ref_se**2)
            d = view.distance[kind] if view.distance else None
            title = "finite − analytic"
            if d is not None:
                title += f"\nrel. error {d.rel_fro:.3f} (noise alone {d.rel_noise:.3f})"
            plots.kernel_heatmap(row[2], mean - ref, diff_se, title=title, symmetric=True)
        self.extra.value = _distance_table(view)


class ConvergencePanel(Panel):
    """Relative kernel bias against width and heads (log-log, CIs, fits, theory)."""

    title = "Convergence: finite networks -> the limit"
    code_panel = "convergence"
    figsize = (10.0, 3.8)

    def make_axes(self) -> None:
        self.axes = self.figure.subplots(1, 3)

    def views(self, cfg: Config) -> Any:
        return compute.convergence_views(cfg)

    def draw(self, view: compute.ConvergenceView, cfg: Config) -> None:
        for ax, against, rows in (
            (self.axes[0], "width", view.width_rows),
            (self.axes[1], "heads", view.heads_rows),
        ):
            ax.cla()
            for kind in compute.KINDS:
                pts = [r for r in rows if r.kind == kind]
                if not pts:
                    continue
                x = [r.width if against == "width" else r.n_heads for r in pts]
                plots.loglog_with_bands(
                    ax,
                    x,
                    [r.rel_bias for r in pts],
                    [r.rel_bias_ci[0] for r in pts],
                    [r.rel_bias_ci[1] for r in pts],
                    label=kind.upper(),
                    fit=view.fits.get((kind, against)),
                    theory_slope=compute.THEORY_SLOPES[against] if kind == "nngp" else None,
                    noise=[r.rel_noise for r in pts],
                )
            fixed = f"heads={cfg.heads}" if against == "width" else f"width={cfg.width}"
            ax.set(xlabel=against, ylabel="relative bias", title=f"against {against} ({fixed})")
            if rows:
                ax.legend(fontsize=7)
            else:
                _blank(ax, "computing…")
        ax = self.axes[2]
        ax.cla()
        if view.collapse is None:
            _blank(ax, "collapse to uniform averaging:\nchoose scaling '1/d untied'")
            return
        ws, mean, se, fit = view.collapse
        lo = np.asarray(mean) - 2 * np.asarray(se)
        hi = np.asarray(mean) + 2 * np.asarray(se)
        plots.loglog_with_bands(
            ax,
            ws,
            mean,
            lo,
            hi,
            label="‖ζ(G) − U‖/‖U‖",
            fit=fit,
            theory_slope=compute.THEORY_SLOPES["collapse"],
        )
        ax.set(xlabel="key width d", title="untied 1/d: attention -> uniform")
        ax.legend(fontsize=7)


class GaussianityPanel(Panel):
    """Outputs of finite networks: histogram with laws, Q-Q, kurtosis against heads, report."""

    title = "Gaussianity of the outputs"
    code_panel = "gaussianity"
    figsize = (10.0, 3.8)
    kurtosis = True

    def make_axes(self) -> None:
        self.axes = self.figure.subplots(1, 3 if self.kurtosis else 1, squeeze=False)[0]

    def views(self, cfg: Config) -> Any:
        return compute.law_views(cfg, kurtosis=self.kurtosis)

    def draw(self, view: compute.LawsView, cfg: Config) -> None:
        ax = self.axes[0]
        ax.cla()
        others = {} if view.law is None else {f"infinite width, {cfg.heads} heads": view.law}
        plots.histogram_with_laws(
            ax,
            view.finite,
            label=f"finite: width {cfg.width}, {cfg.heads} heads",
            gaussian_var=view.gp_var,
            others=others,
        )
        ax.set(xlabel="output f(x₀)", title=f"one output, {len(view.finite)} networks")
        ax.legend(fontsize=7)
        if not self.kurtosis:
            return
        from infattn import diagnostics

        ax = self.axes[1]
        ax.cla()
        plots.qq_plot(ax, *diagnostics.qq_data(view.finite[:, None]), label="finite")
        ax.set_title("normal Q-Q", fontsize=9)
        ax = self.axes[2]
        ax.cla()
        self._draw_kurtosis(ax, view)
        report = (
            ""
            if view.report is None
            else f"<pre style='{MONO}'>{html.escape(str(view.report))}</pre>"
        )
        self.extra.value = report

    @staticmethod
    def _draw_kurtosis(ax: Any, view: compute.LawsView) -> None:
        if not view.kurtosis:
            _blank(ax, "excess kurtosis vs heads:\ncomputing…")
            return
        hs = sorted(view.kurtosis)
        k = np.array([float(view.kurtosis[h].excess_kurtosis[0]) for h in hs])
        se = np.array([float(view.kurtosis[h].excess_kurtosis_se[0]) for h in hs])
        ax.errorbar(hs, k, yerr=2 * se, fmt="o", capsize=3, label="excess kurtosis ± 2 SE")
        ax.axhline(0.0, color="k", lw=0.8)
        if k[0] > 0:
            grid = np.geomspace(min(hs), max(hs), 32)
            ax.plot(grid, k[0] * hs[0] / grid, "--", color="gray", label="∝ 1/H")
        plots.size_ticks(ax, hs)
        scaling = view.scaling
        title = "excess kurtosis vs heads"
        if isinstance(scaling, str):
            title += f"\n({scaling[:60]})"
        elif scaling is not None and math.isfinite(scaling.slope):
            title += f"\nslope {scaling.slope:+.2f} ± {scaling.slope_se:.2f} (theory −1)"
        ax.set(xlabel="heads H", title=title)
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)

    def fraction(self, view: compute.LawsView) -> tuple[float, str]:
        return view.done / max(view.total, 1), f"{view.done}/{view.total} steps"


class ThreeLimitsPanel(GaussianityPanel):
    """One output's law: finite network, infinite width with H heads, and the GP, on one axis."""

    title = "Three limits of one output"
    code_panel = "three limits"
    figsize = (6.5, 3.8)
    kurtosis = False


class AttentionPanel(Panel):
    """Attention weights of a chosen input at the first attention layer, and ``R``."""

    title = "Attention weights and positional covariance"
    code_panel = "attention"
    figsize = (8.0, 3.6)

    def extra_controls(self) -> list:
        n = self.controls.config.n_inputs
        self.index = w.IntSlider(value=0, min=0, max=n - 1, description="input", **SLIDER)
        self.index.observe(lambda _: self.refresh(), names="value")
        self.controls.widgets["n_inputs"].observe(self._clamp, names="value")
        return [self.index]

    def _clamp(self, change: dict) -> None:
        self.index.max = change["new"] - 1

    def make_axes(self) -> None:
        self.axes = self.figure.subplots(1, 2)

    def views(self, cfg: Config) -> Any:
        yield compute.attention_view(cfg, min(self.index.value, cfg.n_inputs - 1))

    def draw(self, view: compute.AttentionView, cfg: Config) -> None:
        plots.kernel_heatmap(self.axes[0], view.weights, title=view.what)
        self.axes[0].set(xlabel="key position", ylabel="query position")
        if view.R is None:
            self.axes[1].cla()
            _blank(self.axes[1], "no positional embedding (R = I)")
        else:
            plots.kernel_heatmap(self.axes[1], view.R, title="positional covariance R")


# ------------------------------------------------------------------ helpers


def _blank(ax: Any, text: str) -> None:
    for im in ax.get_images():
        im.remove()
    for patch in list(ax.patches):
        patch.remove()
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("")
    for t in list(ax.texts):
        t.remove()
    ax.text(
        0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="gray"
    )


def _distance_table(view: compute.KernelView) -> str:
    if not view.distance:
        return ""
    rows = []
    for kind, d in view.distance.items():
        lo, hi = d.rel_bias_ci
        bias = (
            f"{d.rel_bias:.3g} [{lo:.3g}, {hi:.3g}]"
            if d.resolved
            else f"&lt; {hi:.3g} (unresolved)"
        )
        rows.append(
            f"<tr><td>{kind.upper()}</td><td>{d.rel_fro:.4f} ± {d.rel_noise:.4f}</td>"
            f"<td>{bias}</td><td>{d.max_z:.1f}</td></tr>"
        )
    style = (
        "<style>.infattn-table td, .infattn-table th {padding: 2px 14px; text-align: left}</style>"
    )
    return (
        f"{style}<table class='infattn-table' style='font-size:12px'><tr><th>kernel</th>"
        "<th>relative error ± noise alone</th><th>relative bias (95% CI)</th>"
        "<th>max |z|</th></tr>" + "".join(rows) + "</table>"
    )
