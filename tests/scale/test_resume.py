"""Interrupted runs (Ctrl-C, then kill -9) resume to the arrays of an uninterrupted run.

The runs are subprocesses of ``tests.scale.runner`` on two (forced) CPU devices, with
every tile slowed down by a host callback so that signals arrive mid-run; the
uninterrupted run is computed here, on one device.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from infattn.scale import KernelStore, compute_kernels
from tests.scale.runner import inputs, model, slow

ROOT = pathlib.Path(__file__).resolve().parents[2]
SLOW = 0.4  # seconds each tile sleeps (tiles themselves now take milliseconds)
TOTAL = 20  # tiles of the runner's store (11 train, 5 test, tiles of 3)


def _done(path: pathlib.Path) -> int:
    try:
        return len(KernelStore.open(path).done())
    except FileNotFoundError:
        return 0


def _start(path: pathlib.Path) -> subprocess.Popen:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "tests.scale.runner", str(path), "--slow", str(SLOW)]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=_as_foreground
    )


def _as_foreground() -> None:
    """The runner starts with Ctrl-C's default action, as from a terminal: a shell without
    job control starts background commands with SIGINT ignored, and Python then never
    raises ``KeyboardInterrupt`` (this test failed when CI was launched with ``&``)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(process: subprocess.Popen, path: pathlib.Path, tiles: int) -> int:
    deadline = time.monotonic() + 120
    while (done := _done(path)) < tiles:
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "the runner made no progress"
        time.sleep(0.02)
    return done


@pytest.mark.slow
def test_ctrl_c_then_kill_9_then_resume_gives_the_uninterrupted_arrays(tmp_path):
    path = tmp_path / "kernels"

    run = _start(path)
    before = _wait_for(run, path, 2)
    sent = time.monotonic()
    run.send_signal(signal.SIGINT)
    status = run.wait(timeout=60)
    stopped_after = time.monotonic() - sent
    assert status == 130, run.stderr.read()
    assert stopped_after < 2.0, f"Ctrl-C took {stopped_after:.2f} s to stop the run"
    interrupted = _done(path)
    assert before <= interrupted < TOTAL  # finished tiles kept, the run did stop

    run = _start(path)
    _wait_for(run, path, interrupted + 2)
    run.send_signal(signal.SIGKILL)
    assert run.wait(timeout=60) == -signal.SIGKILL
    assert _done(path) < TOTAL

    run = _start(path)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    per_device = re.findall(r"cpu:0=(\d+) cpu:1=(\d+)", err)[-1]
    assert all(int(n) > 0 for n in per_device), err[-500:]  # both devices took tiles

    x_train, x_test = inputs()
    reference = compute_kernels(
        slow(model(), SLOW), x_train, x_test, tmp_path / "reference", tile_size=3, progress=False
    )
    resumed = KernelStore.open(path)
    assert not resumed.pending()
    for kind in ("nngp", "ntk"):
        for part in ("train_train", "test_train", "test_diag"):
            np.testing.assert_array_equal(resumed.load(kind, part), reference.load(kind, part))
