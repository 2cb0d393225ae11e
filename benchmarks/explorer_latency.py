"""Explorer latency: from a control change to the analytic panel redrawn, and to the first
empirical (Monte Carlo) update, for every control of the Kernel panel at default settings.

Runs the real panel headless (ipywidgets without a browser): each control is moved
once from its default to a value not seen before (a new model structure or input
shape, so compilation is included), then back. Two modes, one per process:

* ``--mode cold``: background warm-up off (``INFATTN_WARMUP=0``): every first
  compilation is on the clock;
* ``--mode warm``: before each move the benchmark waits until the background
  warm-up (:mod:`infattn.explore.warmup`) has computed the default's neighbours, as
  when a user looks at a panel for a while before the next click.

Compiled programs over half a second also persist on disk (``~/.cache/infattn/jax``):
for first-session figures point ``XDG_CACHE_HOME`` at an empty folder (the header
says whether the cache was empty). Printed per control:

* ``analytic``: seconds until the analytic view is drawn (artists updated) and
  rasterised (the image the browser shows). The benchmark stands in for the browser
  (:class:`Browser`): it answers the canvas's draw requests as the frontend does, and
  the panel waits for that rasterisation before its Monte Carlo work starts;
* ``first MC``: seconds until the first Monte Carlo chunk is drawn;
* ``cpu``: CPU seconds this process spent until then (all its threads): on a
  machine other jobs also load, wall time exceeds it; on an idle one wall time is
  about this or less (compilation is single-threaded);
* ``again``: the analytic latency when the control returns to its default (cached).

Usage: ``python benchmarks/explorer_latency.py --mode cold|warm [--controls heads,width]``.
Targets (issue 10): analytic <= 1 s, first empirical update <= 2 s on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

CHANGES = {
    "heads": 8,
    "width": 128,
    "depth": 2,
    "scaling": "1/d untied",
    "mechanism": "RELU",
    "layernorm": False,
    "residual": False,
    "nonlinearity": "gelu",
    "pos_emb": "CONCAT",
    "decay": "exponential",
    "decay_length": 4.0,
    "pos_std": 0.75,
    "val_pos_emb": True,
    "inputs": "digits rows",
    "seq_len": 9,
    "n_inputs": 5,
    "draws": 128,
    "dtype": "float64",
}
"""Control -> a value the panel has not computed before, one step from the default
(a neighbour the warm-up computes; the scaling 1/sqrt(d) is measured separately as
``scaling=1/sqrt(d)``)."""


class Browser:
    """Stands in for the browser's view of the panel's ipympl canvas: it announces itself
    (``initialized``) and answers each draw request with a rasterisation on this
    thread, through the canvas's message handler, as the frontend's request is
    answered on the kernel's main thread."""

    def __init__(self, canvas) -> None:
        self.canvas = canvas
        self.requested = threading.Event()
        send = canvas.send_event

        def send_event(event_type, **kwargs):
            if event_type == "draw":
                self.requested.set()
            send(event_type, **kwargs)

        canvas.send_event = send_event
        canvas._handle_message(canvas, {"type": "initialized"}, [])

    def pump(self) -> None:
        """Rasterise if a draw was requested since the last call."""
        if self.requested.is_set():
            self.requested.clear()
            self.canvas._handle_message(self.canvas, {"type": "draw"}, [])


def _wait(job, count: int, timeout: float, browser: Browser) -> float | None:
    """Seconds from submission until ``job`` had drawn ``count`` views (``None``: not);
    the first view counts once the browser has rasterised it."""
    deadline = time.perf_counter() + timeout
    while len(job.view_times) < count:
        browser.pump()
        if time.perf_counter() > deadline or job.finished.is_set():
            return job.view_times[count - 1] if len(job.view_times) >= count else None
        time.sleep(0.002)
    return job.view_times[count - 1]


def _finish(job, timeout: float, browser: Browser) -> None:
    """Wait until ``job`` has ended, answering draw requests meanwhile."""
    deadline = time.perf_counter() + timeout
    while not job.wait(0.01) and time.perf_counter() < deadline:
        browser.pump()


def _settle(panel, timeout: float, browser: Browser) -> None:
    """Stop the running job and wait until it has ended."""
    panel.runner.stop()
    _finish(panel.runner.current, timeout, browser)


def measure(panel, name: str, value, timeout: float, warm, browser: Browser) -> dict:
    """Move ``name`` to ``value`` and back; latencies in seconds (``None``: timed out).

    ``warm``: the :class:`~infattn.explore.warmup.WarmUp` to wait for first, or ``None``.
    """
    if warm is not None:
        warm.wait_idle(timeout * 10)
    widget = panel.controls.widgets[name]
    default = widget.value
    cpu0 = time.process_time()
    widget.value = value
    job = panel.runner.current
    analytic = _wait(job, 1, timeout, browser)
    cpu_analytic = time.process_time() - cpu0
    first_mc = _wait(job, 2, timeout, browser)
    cpu = time.process_time() - cpu0
    error = panel.error.value[:120] if job.status == "failed" else ""
    _settle(panel, timeout, browser)
    widget.value = default
    back = panel.runner.current
    again = _wait(back, 1, timeout, browser)
    _wait(back, 2, timeout, browser)
    _settle(panel, timeout, browser)
    return {
        "analytic": analytic,
        "cpu_analytic": cpu_analytic,
        "first_mc": first_mc,
        "cpu": cpu,
        "again": again,
        "error": error,
    }


def _fmt(x) -> str:
    return "  timeout" if x is None else f"{x:9.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--controls", default=",".join([*CHANGES, "scaling=1/sqrt(d)"]))
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--mode", choices=("cold", "warm"), default="cold")
    args = parser.parse_args()
    os.environ["INFATTN_WARMUP"] = "1" if args.mode == "warm" else "0"

    import jax

    from infattn.explore import KernelPanel, warmup

    cache = jax.config.jax_compilation_cache_dir
    empty = not (cache and os.path.isdir(cache) and os.listdir(cache))
    print(
        f"device: {jax.devices()[0]}; load average {os.getloadavg()[0]:.1f}; cores {os.cpu_count()}"
        f"\nmode {args.mode}: background warm-up {'on' if warmup.enabled() else 'off'}; "
        f"disk cache {cache} {'empty' if empty else 'NOT empty'} at start"
    )
    t0, cpu0 = time.perf_counter(), time.process_time()
    panel = KernelPanel()
    browser = Browser(panel.canvas)
    first = _wait(panel.runner.current, 1, args.timeout, browser)
    print(f"panel built, first analytic view: {first:.2f} s (process start, includes JAX warm-up)")
    _finish(panel.runner.current, args.timeout, browser)
    print(
        f"default fully computed: {time.perf_counter() - t0:.1f} s wall, "
        f"{time.process_time() - cpu0:.1f} s cpu\n"
    )
    warm = warmup.warmer() if warmup.enabled() else None
    if warm is not None:
        t0, cpu0 = time.perf_counter(), time.process_time()
        warm.wait_idle(args.timeout * 10)
        print(
            f"warm-up of the default's {len(warm.warmed)} neighbours "
            f"({len(warm.failed)} failed): {time.perf_counter() - t0:.1f} s wall, "
            f"{time.process_time() - cpu0:.1f} s cpu; load average {os.getloadavg()[0]:.1f}"
        )
    print(f"{'':<24}{'--- analytic ---':>18}{'--- first MC ---':>18}")
    print(f"{'control':<24}{'wall':>9}{'cpu':>9}{'wall':>9}{'cpu':>9}{'again':>9}{'load':>6}")
    for item in args.controls.split(","):
        name, _, raw = item.partition("=")
        value = raw or CHANGES[name]
        r = measure(panel, name, value, args.timeout, warm, browser)
        label = f"{name}={value}"
        print(
            f"{label:<24}{_fmt(r['analytic'])}{_fmt(r['cpu_analytic'])}"
            f"{_fmt(r['first_mc'])}{_fmt(r['cpu'])}"
            f"{_fmt(r['again'])}{os.getloadavg()[0]:6.1f}  {r['error']}",
            flush=True,
        )
    panel.runner.stop()


if __name__ == "__main__":
    main()
