"""Servers and a browser for the real-browser tests of the explorer.

JupyterLab and Voila run the repository's notebooks (copied to a temporary folder so
autosave leaves the repository alone) with ``INFATTN_FAST=1`` and the repository on
``PYTHONPATH``, bound to 127.0.0.1 on a free port with a token. Debian's Chromium at
``/usr/bin/chromium`` is driven by Playwright (browsers cannot be downloaded here;
``.ci/run`` installs the ``chromium`` package). Screenshots go to
``.cache/test-artifacts/``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from infattn.commands import lab

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / ".cache" / "test-artifacts"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def _server(cmd: list[str], port: int, folder: Path, log: Path, timeout: float = 120.0):
    env = {
        **os.environ,
        "INFATTN_FAST": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "JUPYTER_RUNTIME_DIR": str(folder / ".runtime"),
        "JUPYTER_CONFIG_DIR": str(folder / ".config"),
    }
    out = log.open("w")
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}); see {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"server did not answer within {timeout} s; see {log}")


@pytest.fixture()
def notebooks(tmp_path: Path) -> Path:
    folder = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", folder)
    return folder


def _serve(app: bool, folder: Path, artifacts: Path):
    port = lab.free_port(0)
    token = secrets.token_hex(8)
    cmd, url = lab.server_command(app, folder, port, token)
    if not app:  # root in CI; a fresh workspace; no news pop-up
        cmd += [
            "--allow-root",
            f"--LabApp.workspaces_dir={folder / '.workspaces'}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
    else:
        cmd += ["--VoilaExecutor.timeout=600"]
    proc = _server(cmd, port, folder, artifacts / ("voila.log" if app else "jupyterlab.log"))
    return proc, url


@pytest.fixture()
def jupyterlab(notebooks: Path, artifacts: Path):
    proc, url = _serve(False, notebooks, artifacts)
    yield url
    proc.terminate()
    proc.wait(30)


@pytest.fixture()
def voila(notebooks: Path, artifacts: Path):
    proc, url = _serve(True, notebooks, artifacts)
    yield url
    proc.terminate()
    proc.wait(30)
