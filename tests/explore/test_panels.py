"""The panels headless (ipywidgets without a browser): draw, errors, Stop, Show code."""

import threading
import time

import numpy as np

from infattn.explore import panels

TINY = {"width": 8, "draws": 8, "n_inputs": 2, "seq_len": 3}


def _wait(panel, timeout=300):
    assert panel.runner.current.wait(timeout)
    return panel.runner.current


def test_kernel_panel_draws_analytic_then_monte_carlo():
    p = panels.KernelPanel(**TINY)
    job = _wait(p)
    assert job.status == "done" and p.rendered == 2
    assert panels.device_name() in p.header.value
    assert p.progress.value == 1.0 and p.status.value.startswith("8/8 draws")
    assert "relative error" in p.extra.value and p.error.value == ""
    img = p.axes[0, 1].get_images()[0].get_array()
    assert img.shape == (2, 2) and np.all(np.isfinite(img))


def test_a_failing_computation_shows_one_line_and_controls_keep_working(monkeypatch):
    p = panels.KernelPanel(**TINY)
    _wait(p)
    monkeypatch.setattr(
        "infattn.explore.compute.analytic_kernels",
        lambda cfg, x: (_ for _ in ()).throw(FloatingPointError("kernel blew up\nline 2")),
    )
    p.controls.widgets["heads"].value = 8
    assert _wait(p).status == "failed"
    assert "FloatingPointError: kernel blew up" in p.error.value and "<details" in p.error.value
    assert p.status.value == "failed"
    monkeypatch.undo()
    p.controls.widgets["heads"].value = 2
    assert _wait(p).status == "done" and p.error.value == ""


def test_stop_ends_the_monte_carlo_and_show_code_prints_the_calls():
    p = panels.KernelPanel(**{**TINY, "draws": 512})
    p.stop_button.click()
    job = _wait(p)
    assert job.status in ("stopped", "done") and job.views < 65
    p.code_button.value = True
    assert "monte_carlo_kernel_fn" in p.code.value and "n_samples=512" in p.code.value
    p.code_button.value = False
    assert p.code.value == ""


def test_attention_panel_input_index_follows_the_number_of_inputs():
    p = panels.AttentionPanel(**TINY)
    _wait(p)
    assert p.index.max == 1
    p.controls.widgets["n_inputs"].value = 5
    assert p.index.max == 4
    p.index.value = 4
    assert _wait(p).status == "done"
    assert "input 4" in p.axes[0].get_title()


def test_panels_share_controls():
    controls = panels.Controls(panels.Config(**TINY))
    a = panels.AttentionPanel(controls)
    b = panels.AttentionPanel(controls)
    controls.widgets["scaling"].value = "1/d untied"
    for p in (a, b):
        _wait(p)
        assert "untied" in p.axes[0].get_title()


def _browser_message(canvas, kind):
    canvas._handle_message(canvas, {"type": kind}, [])


def test_with_a_browser_attached_the_first_view_waits_for_its_rasterisation():
    p = panels.KernelPanel(**TINY)
    _wait(p)
    canvas = p.canvas
    assert not canvas.frontend_attached()
    _browser_message(canvas, "initialized")
    assert canvas.frontend_attached()
    drawn_at = []
    send = canvas.send_event

    def answer(event_type, **kwargs):  # the browser's answer to a draw request
        send(event_type, **kwargs)
        if event_type == "draw" and not drawn_at:
            threading.Thread(
                target=lambda: (canvas.draw(), drawn_at.append(time.perf_counter()))
            ).start()

    canvas.send_event = answer
    p.controls.widgets["heads"].value = 8
    job = _wait(p)
    assert job.status == "done" and drawn_at
    assert job.started + job.view_times[0] >= drawn_at[0]  # the next step came after the draw

    canvas.send_event = send  # a browser that does not answer: the job waits RASTER_WAIT
    p.RASTER_WAIT = 0.3
    p.controls.widgets["heads"].value = 2
    job = _wait(p)
    assert job.status == "done" and job.view_times[0] >= 0.3

    _browser_message(canvas, "closing")  # no browser: no waiting at all
    p.RASTER_WAIT = 60.0
    p.controls.widgets["heads"].value = 8
    job = _wait(p)
    assert not canvas.frontend_attached() and job.status == "done" and job.view_times[0] < 30
