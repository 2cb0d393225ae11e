"""The explorer's panel machinery: header, controls, one ipympl figure, progress, errors.

:class:`Panel` runs its subclass's generator of views (:mod:`infattn.explore.compute`)
on a worker thread (:mod:`infattn.explore.jobs`) and draws every view as it arrives,
under a lock shared with the canvas's rasterisation. Changing a control cancels the
running job and starts a new one; Stop ends it. A failing computation shows a
one-line message (details expandable) and leaves the controls working.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Hashable
from typing import Any, ClassVar

import ipywidgets as w
from ipympl.backend_nbagg import Canvas, FigureManager
from matplotlib.figure import Figure

from infattn.explore import code, model, warmup
from infattn.explore.controls import Controls, device_name
from infattn.explore.jobs import Job, Runner
from infattn.explore.model import Config

__all__ = ["Panel"]


class _LockedCanvas(Canvas):
    """An ipympl canvas that rasterises under the panel's lock and counts its draws.

    The browser asks for a new image (handled on the kernel's main thread) while
    the worker thread may be updating artists; the lock keeps a figure from being
    drawn half-updated. :meth:`wait_drawn` lets the worker wait for the browser's
    rasterisation of a view instead of competing with it for the interpreter.
    """

    def __init__(self, figure: Figure, lock: threading.RLock) -> None:
        super().__init__(figure)
        self._infattn_lock = lock
        self._drawn = threading.Condition()
        self.draws = 0
        """Rasterisations finished so far."""
        self.attached = False

    def draw(self) -> None:
        with self._infattn_lock:
            super().draw()
        with self._drawn:
            self.draws += 1
            self._drawn.notify_all()

    def _handle_message(self, obj: Any, content: dict, buffers: list) -> None:
        if content.get("type") in ("initialized", "closing"):
            self.attached = content["type"] == "initialized"
        super()._handle_message(obj, content, buffers)

    def frontend_attached(self) -> bool:
        """Whether a browser view of the canvas is open (it answers every draw request
        with a rasterisation): its last word was ``initialized``, not ``closing``."""
        return self.attached

    def wait_drawn(self, after: int, timeout: float) -> bool:
        """Wait until more than ``after`` draws have finished (at most ``timeout`` s)."""
        with self._drawn:
            return self._drawn.wait_for(lambda: self.draws > after, timeout)


class Panel(w.VBox):
    """Header with the device, controls, one ipympl figure, progress, errors, "Show code".

    Subclasses set ``title``, ``code_panel``, ``figsize``, build their axes in
    ``make_axes`` and draw a view in ``draw``; ``views(config)`` is the generator.
    ``rendered`` counts the views drawn; each job's ``view_times`` say when.
    """

    title: ClassVar[str] = ""
    code_panel: ClassVar[str] = ""
    figsize: ClassVar[tuple[float, float]] = (9.0, 4.0)
    RASTER_WAIT: ClassVar[float] = 0.5
    """Seconds a job waits, after its first view, for the browser to rasterise it."""

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
        self._layout_key: object = None
        self._engine = self.figure.get_layout_engine()
        if self.layout_key() is not None:  # laid out on demand (_layout), not at every draw
            self.figure.set_layout_engine("none")
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

    def layout_key(self) -> Hashable | None:
        """What the figure's layout depends on (``None``: lay out at every draw).

        Panels whose layout changes only with this key are laid out when it
        changes: constrained layout costs about 0.17 of a redraw's 0.4 CPU s.
        """
        return None

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
        warm = warmup.warmer() if warmup.enabled() else None
        if warm is not None:  # no warm-up step starts until this job ends
            warm.begin()
        job = self.runner.submit(
            lambda: self.views(cfg),
            lambda view, job: self._on_view(view, job, cfg, started),
            lambda e, details, job: self._on_error(e, details, job),
            lambda job: self._on_end(job, warm),
            wait_after=1,  # the analytic view does not wait for the cancelled job
        )
        if warm is not None:  # the likely next configurations, once the job has ended
            warm.schedule(cfg)
        return job

    def _on_view(self, view: Any, job: Job, cfg: Config, started: float) -> None:
        """Draw ``view``; after a job's first view, wait until the browser has
        rasterised it (at most ``RASTER_WAIT`` s): the next step (tracing the Monte
        Carlo program) would otherwise hold the interpreter half the time and double
        the rasterisation's 0.1-0.15 s (measured: 0.37-0.47 s)."""
        with self._draw_lock:
            if job is not self.runner.current:
                return
            self.draw(view, cfg)
            self._layout()
            draws = self.canvas.draws
            self.canvas.draw_idle()
            frac, text = self.fraction(view)
            self.progress.value = frac
            self.status.value = f"{text} · {time.perf_counter() - started:.1f} s"
            self.error.value = ""
            self.rendered += 1
        if job.views == 1 and self.canvas.frontend_attached():
            self.canvas.wait_drawn(draws, self.RASTER_WAIT)

    def _layout(self) -> None:
        key = self.layout_key()
        if key is not None and key != self._layout_key:
            self._engine.execute(self.figure)
            self._layout_key = key

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

    def _on_end(self, job: Job, warm: warmup.WarmUp | None) -> None:
        if warm is not None:
            warm.end()
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
