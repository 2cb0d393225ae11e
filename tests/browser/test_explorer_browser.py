"""The explorer in a real browser: JupyterLab (notebook 01) and the Voila app.

Each test runs the page, moves the first heads slider one step with the keyboard,
and asserts that the first figure changed and that no error output, panel error or
"Error displaying widget" appeared. Screenshots: ``.cache/test-artifacts/``.
"""

from __future__ import annotations

import time

import pytest

from infattn.commands import lab
from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.slow

FIGURE = ".infattn-panel .jupyter-matplotlib-canvas-div canvas"
BAD_TEXT = ("Error displaying widget", "Traceback (most recent call last)")


def _figure_data(page) -> str:
    """Pixels of the first panel's figure (as a data URL)."""
    return page.locator(FIGURE).first.evaluate("c => c.toDataURL()")


def _wait_for(predicate, timeout: float, what: str, page, artifacts, name: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts / f"{name}-timeout.png"), full_page=True)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def _assert_clean(page) -> None:
    body = page.inner_text("body")
    for text in BAD_TEXT:
        if text in body:
            page.screenshot(path=str(ARTIFACTS / "error.png"), full_page=True)
            i = body.index(text)
            raise AssertionError(f"{text!r} on the page:\n{body[max(0, i - 500) : i + 3000]}")
    assert page.locator(".infattn-error").count() == 0, page.locator(
        ".infattn-error"
    ).first.inner_text()
    assert page.locator('[data-mime-type="application/vnd.jupyter.error"]').count() == 0


def _all_draws(status: str) -> bool:
    """Whether a Kernel panel's status reads ``n/n draws``."""
    done, _, rest = status.partition("/")
    return "draws" in rest and done.strip() == rest.split()[0]


def _panel_shots(page, artifacts, name: str) -> None:
    for i, panel in enumerate(page.locator(".infattn-panel").all()):
        panel.scroll_into_view_if_needed()
        page.wait_for_timeout(1500)  # the figure's image arrives once it is in view
        panel.screenshot(path=str(artifacts / f"{name}-panel-{i}.png"))


def _move_heads_and_check(page, artifacts, name: str) -> None:
    rendered = _figure_data(page)
    handle = page.locator(".widget-slider .noUi-handle").first  # the first control: heads
    handle.focus()
    page.keyboard.press("ArrowRight")
    _wait_for(lambda: _figure_data(page) != rendered, 300, "figure update", page, artifacts, name)
    status = page.locator(".infattn-panel").first.locator(".infattn-status")
    _wait_for(lambda: _all_draws(status.inner_text()), 300, "Monte Carlo", page, artifacts, name)
    page.wait_for_timeout(1000)
    page.locator(".infattn-panel").first.screenshot(path=str(artifacts / f"{name}-after-heads.png"))
    _assert_clean(page)


def test_notebook_01_in_jupyterlab(browser, jupyterlab, artifacts):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(jupyterlab)
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    try:  # "Select Kernel" dialog, when JupyterLab asks
        accept.wait_for(timeout=5000)
        accept.click()
    except Exception:
        pass
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    news = page.get_by_role("button", name="No", exact=True)
    if news.count():  # "get notified about Jupyter news?"
        news.first.click()
    page.locator(".jp-Notebook").first.click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    n_code = page.locator(".jp-CodeCell").count()
    done = page.locator(".jp-CodeCell .jp-InputPrompt", has_text="[")

    def all_ran() -> bool:
        _assert_clean(page)  # fail at the first error instead of waiting
        prompts = done.all_inner_texts()
        return len(prompts) == n_code and all("*" not in p and p.strip() != "[ ]:" for p in prompts)

    _wait_for(all_ran, 900, "running all cells", page, artifacts, "jupyterlab")
    page.wait_for_selector(FIGURE, timeout=60_000)
    page.locator(FIGURE).first.scroll_into_view_if_needed()
    page.wait_for_timeout(2000)
    page.screenshot(path=str(artifacts / "jupyterlab-notebook-01.png"))
    _panel_shots(page, artifacts, "jupyterlab")
    _assert_clean(page)
    _move_heads_and_check(page, artifacts, "jupyterlab")


def test_voila_app(browser, voila, artifacts):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(voila, timeout=900_000)
    page.wait_for_selector(FIGURE, timeout=900_000)
    n_panels = 5
    _wait_for(
        lambda: page.locator(FIGURE).count() >= n_panels,
        900,
        "all panels",
        page,
        artifacts,
        "voila",
    )
    page.wait_for_timeout(2000)
    page.screenshot(path=str(artifacts / "voila-app.png"), full_page=True)
    _panel_shots(page, artifacts, "voila")
    assert lab.APP_NOTEBOOK == "app.ipynb"
    _assert_clean(page)
    _move_heads_and_check(page, artifacts, "voila")
