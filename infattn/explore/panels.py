"""The explorer's widgets: controls and five panels (ipywidgets 8 + ipympl).

Each panel is an ``ipywidgets.VBox`` a notebook displays in one line
(``KernelPanel()``). Its figure is created once (an ipympl canvas) and redrawn in
place; its computation (:mod:`infattn.explore.compute`) runs on a worker thread
(:mod:`infattn.explore.jobs`) and every view it yields is drawn as it arrives.
Changing a control cancels the running job and starts a new one; Stop ends it.
A failing computation shows a one-line message (details expandable) and leaves
the controls working. Panels given the same :class:`Controls` follow each other.
"""

from __future__ import annotations

import html
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import ipywidgets as w
import jax
import numpy as np
from ipympl.backend_nbagg import Canvas, FigureManager
from matplotlib.figure import Figure

from infattn import plots
from infattn.explore import code, compute, model
from infattn.explore.jobs import Job, Runner
from infattn.explore.model import Config

__all__ = [
    "AttentionPanel",
    "Controls",
    "ConvergencePanel",
    "GaussianityPanel",
    "KernelPanel",
    "ThreeLimitsPanel",
    "device_name",
]

WIDTHS = (8, 16, 32, 64, 128, 256, 512)
DRAWS = (8, 16, 32, 64, 128, 256, 512)
DECAY_LENGTHS = (0.5, 1.0, 2.0, 4.0, 8.0)
_SLIDER = {"continuous_update": False, "style": {"description_width": "90px"}}
_CHOICE = {"style": {"description_width": "90px"}}
_MONO = "font-size: 11px; font-family: monospace; line-height: 1.25"
_LABELS = {
    "heads": "heads",
    "width": "width",
    "draws": "draws",
    "depth": "blocks",
    "scaling": "scaling",
    "mechanism": "mechanism",
    "layernorm": "LayerNorm",
    "residual": "residual",
    "nonlinearity": "MLP",
    "pos_emb": "positions",
    "decay": "decay",
    "decay_length": "decay length",
    "pos_std": "position std",
    "val_pos_emb": "values see positions",
    "inputs": "inputs",
    "seq_len": "length",
    "n_inputs": "inputs N",
    "dtype": "dtype",
}
_CHOICES = {
    "scaling": model.SCALINGS,
    "mechanism": model.MECHANISMS,
    "nonlinearity": model.NONLINEARITIES,
    "pos_emb": model.POS_EMB_TYPES,
    "decay": model.DECAY_FAMILIES,
    "inputs": model.INPUT_KINDS,
    "dtype": model.DTYPES,
}
_TOGGLES = ("scaling", "pos_emb", "dtype")
_STEPS = {"heads": model.HEADS, "width": WIDTHS, "draws": DRAWS, "decay_length": DECAY_LENGTHS}
_RANGES = {"depth": (1, 4), "seq_len": (2, 32), "n_inputs": (2, 16)}


def _control(name: str, label: str, cfg: Config) -> w.ValueWidget:
    """The widget of one :class:`Config` field, at ``cfg``'s value."""
    value = getattr(cfg, name)
    if name in _STEPS:  # log-spaced values
        options = tuple(sorted({*_STEPS[name], value}))
        return w.SelectionSlider(options=options, value=value, description=label, **_SLIDER)
    if name in _RANGES:
        lo, hi = _RANGES[name]
        return w.IntSlider(value=value, min=lo, max=hi, description=label, **_SLIDER)
    if name in _CHOICES:
        kind = w.ToggleButtons if name in _TOGGLES else w.Dropdown
        options = model.input_kinds() if name == "inputs" else _CHOICES[name]
        return kind(options=options, value=value, description=label, **_CHOICE)
    if name == "pos_std":
        return w.FloatSlider(value=value, min=0.0, max=2.0, step=0.25, description=label, **_SLIDER)
    return w.Checkbox(value=value, description=label, indent=False)


def use_compilation_cache() -> None:
    """Keep compiled JAX programs on disk (``$XDG_CACHE_HOME/infattn/jax``) unless set already.

    The panels compile a program per model structure (seconds on a loaded CPU); with
    the cache a structure seen in an earlier session, or by the notebooks' CI run,
    loads instead. Set ``jax_compilation_cache_dir`` yourself to choose another place.
    """
    if jax.config.jax_compilation_cache_dir:
        return
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    jax.config.update("jax_compilation_cache_dir", str(base / "infattn" / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


use_compilation_cache()


def device_name() -> str:
    """The device JAX computes on: ``jax.devices()[0]`` as ``platform: kind``."""
    d = jax.devices()[0]
    return f"{d.platform}: {d.device_kind}" if d.device_kind != d.platform else d.platform


# ------------------------------------------------------------------ controls


class Controls(w.VBox):
    """Every control of :class:`~infattn.explore.model.Config` as a widget.

    ``config`` is the current :class:`Config`; ``observe_config(fn)`` calls
    ``fn(config)`` after any control changes. ``widgets[name]`` is the widget of
    one field (e.g. ``controls.widgets["heads"].value = 16``).
    """

    def __init__(self, config: Config | None = None) -> None:
        cfg = Config.default() if config is None else config
        self.widgets: dict[str, w.ValueWidget] = {
            name: _control(name, label, cfg) for name, label in _LABELS.items()
        }
        self._seed = cfg.seed
        self._callbacks: list = []
        for widget in self.widgets.values():
            widget.observe(self._changed, names="value")
        g = self.widgets

        def rows(*names: tuple[str, ...]) -> w.VBox:
            return w.VBox([w.HBox([g[n] for n in row]) for row in names])

        tabs = w.Tab(
            children=[
                rows(
                    ("scaling",), ("depth", "mechanism"), ("nonlinearity", "layernorm", "residual")
                ),
                rows(("pos_emb",), ("decay", "decay_length"), ("pos_std", "val_pos_emb")),
                rows(("inputs", "dtype"), ("seq_len", "n_inputs")),
            ]
        )
        for i, title in enumerate(("model", "positions", "inputs")):
            tabs.set_title(i, title)
        tabs.selected_index = 0
        super().__init__([w.HBox([g["heads"], g["width"], g["draws"]]), tabs])

    @property
    def config(self) -> Config:
        """The :class:`Config` of the current control values."""
        values = {name: widget.value for name, widget in self.widgets.items()}
        return Config(seed=self._seed, **values)

    def observe_config(self, fn: Any) -> None:
        """Call ``fn(config)`` after every control change."""
        self._callbacks.append(fn)

    def _changed(self, change: dict) -> None:
        cfg = self.config
        for fn in self._callbacks:
            fn(cfg)


# ------------------------------------------------------------------ panel base


class _LockedCanvas(Canvas):
    """An ipympl canvas that rasterises under the panel's lock.

    The browser asks for a new image (handled on the kernel's main thread) while
    the worker thread may be updating artists; the lock keeps a figure from being
    drawn half-updated.
    """

    def __init__(self, figure: Figure, lock: threading.RLock) -> None:
        super().__init__(figure)
        self._infattn_lock = lock

    def draw(self) -> None:
        with self._infattn_lock:
            super().draw()


class Panel(w.VBox):
    """Header with the device, controls, one ipympl figure, progress, errors, "Show code".

    Subclasses set ``title``, ``code_panel``, ``figsize``, build their axes in
    ``make_axes`` and draw a view in ``draw``; ``views(config)`` is the generator.
    ``rendered`` counts the views drawn; each job's ``view_times`` say when.
    """

    title: ClassVar[str] = ""
    code_panel: ClassVar[str] = ""
    figsize: ClassVar[tuple[float, float]] = (9.0, 4.0)

    def __init__(self, controls: Controls | None = None, **config: Any) -> None:
        self.controls = (
            Controls(Config.default().replace(**config)) if controls is None else controls
        )
        self.runner = Runner()
        self.rendered = 0
        self._draw_lock = threading.RLock()
        self.figure = Figure(figsize=self.figsize, layout="constrained")
        self.canvas = _LockedCanvas(self.figure, self._draw_lock)
        FigureManager(self.canvas, 0)
        self.canvas.header_visible = False
        self.canvas.footer_visible = False
        self.canvas.toolbar_visible = "fade-in-fade-out"
        self.make_axes()
        self.header = w.HTML(
            f"<b>{html.escape(self.title)}</b> &nbsp;·&nbsp; computing on "
            f"<code>{html.escape(device_name())}</code>"
        )
        self.progress = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout={"width": "220px"})
        self.status = w.Label("")
        self.status.add_class("infattn-status")
        self.stop_button = w.Button(description="Stop", icon="stop", layout={"width": "90px"})
        self.stop_button.on_click(lambda _: self.runner.stop())
        self.code_button = w.ToggleButton(description="Show code", icon="code", value=False)
        self.code_button.observe(lambda _: self._show_code(), names="value")
        self.error = w.HTML("")
        self.code = w.HTML("")
        self.extra = w.HTML("")
        row = w.HBox([self.progress, self.stop_button, self.code_button, self.status])
        children = [self.header, self.controls, *self.extra_controls(), self.canvas, row]
        super().__init__([*children, self.error, self.extra, self.code])
        self.add_class("infattn-panel")
        self.controls.observe_config(lambda _: self.refresh())
        job = self.refresh()
        if model.fast_mode():  # notebooks in CI: fail the cell if the computation fails
            job.wait(600)
            if job.error is not None:
                raise RuntimeError(f"{self.title}: {job.error}") from job.error

    # subclass hooks
    def extra_controls(self) -> list:
        return []

    def make_axes(self) -> None:
        raise NotImplementedError

    def views(self, cfg: Config) -> Any:
        raise NotImplementedError

    def draw(self, view: Any, cfg: Config) -> None:
        raise NotImplementedError

    @staticmethod
    def fraction(view: Any) -> tuple[float, str]:
        done, total = getattr(view, "done", 1), max(getattr(view, "total", 1), 1)
        return done / total, f"{done}/{total}"

    # machinery
    def refresh(self) -> Job:
        """Start computing the current configuration (cancelling the running job)."""
        try:
            cfg = self.controls.config
        except ValueError as e:
            self._fail(e, str(e))
            return self.runner.current
        started = time.perf_counter()
        self.status.value = "computing…"
        self._show_code()
        return self.runner.submit(
            lambda: self.views(cfg),
            lambda view, job: self._on_view(view, job, cfg, started),
            lambda e, details, job: self._on_error(e, details, job),
            self._on_end,
            wait_after=1,  # the analytic view does not wait for the cancelled job
        )

    def _on_view(self, view: Any, job: Job, cfg: Config, started: float) -> None:
        with self._draw_lock:
            if job is not self.runner.current:
                return
            self.draw(view, cfg)
            self.canvas.draw_idle()
            frac, text = self.fraction(view)
            self.progress.value = frac
            self.status.value = f"{text} · {time.perf_counter() - started:.1f} s"
            self.error.value = ""
            self.rendered += 1

    def _on_error(self, e: BaseException, details: str, job: Job) -> None:
        if job is self.runner.current:
            self._fail(e, details)

    def _fail(self, e: BaseException, details: str) -> None:
        line = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        self.error.value = (
            '<details class="infattn-error"><summary style="color:#b00020">⚠ '
            f"{html.escape(line[:300])}</summary><pre>{html.escape(details)}</pre></details>"
        )
        self.status.value = "failed"

    def _on_end(self, job: Job) -> None:
        if job is self.runner.current and job.status == "stopped":
            self.status.value = f"stopped · {self.status.value}"

    def _show_code(self) -> None:
        if not self.code_button.value:
            self.code.value = ""
            return
        try:
            text = code.panel_code(self.controls.config, self.code_panel)
        except ValueError as e:
            text = f"# {e}"
        self.code.value = f"<pre class='infattn-code'>{html.escape(text)}</pre>"


# ------------------------------------------------------------------ panels


class KernelPanel(Panel):
    """Analytic vs finite-network NNGP and NTK, their difference and the relative error."""

    title = "Kernel: infinite width vs finite networks"
    code_panel = "kernel"
    figsize = (9.5, 5.6)

    def make_axes(self) -> None:
        self.axes = self.figure.subplots(2, 3)

    def views(self, cfg: Config) -> Any:
        return compute.kernel_views(cfg)

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
            else f"<pre style='{_MONO}'>{html.escape(str(view.report))}</pre>"
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
        self.index = w.IntSlider(value=0, min=0, max=n - 1, description="input", **_SLIDER)
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
