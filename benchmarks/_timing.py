"""Timing helpers shared by ``kernel_speed.py`` (main env) and ``_nt_timing.py`` (reference env).

Imports only numpy and the standard library at module level; jax is passed in.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

GET = ("nngp", "ntk")


def make_inputs(n: int, length: int, channels: int, seed: int = 0) -> np.ndarray:
    """Deterministic float32 inputs of shape ``(n, length, channels)``."""
    return np.random.RandomState(seed).standard_normal((n, length, channels)).astype(np.float32)


def _call(jitted: Any, x: Any) -> Any:
    out = jitted(x, None, get=GET)
    for leaf in out:
        leaf.block_until_ready()
    return out


def first_calls(jax: Any, kernel_fn: Any, x: Any, count: int) -> tuple[Any, Any, list[float]]:
    """``count`` first calls (trace + compile + run), each after ``jax.clear_caches()``:
    ``(jitted function, its output, seconds of each)``."""
    firsts = []
    for _ in range(count):
        jax.clear_caches()
        jitted = jax.jit(kernel_fn, static_argnames="get")
        start = time.perf_counter()
        out = _call(jitted, x)
        firsts.append(time.perf_counter() - start)
    return jitted, out, firsts


def time_kernel_fn(
    jax: Any, kernel_fn: Any, x: np.ndarray, repeats: int, first_repeats: int = 1
) -> dict[str, Any]:
    """First call (compile + run; median of ``first_repeats`` from cleared caches) and the
    median of ``repeats`` further calls, in seconds.

    ``kernel_fn`` is wrapped in ``jax.jit(kernel_fn, static_argnames='get')`` and called as
    ``kernel_fn(x, None, get=('nngp', 'ntk'))``; returns the timings and the outputs.
    """
    x = jax.numpy.asarray(x)
    jitted, out, firsts = first_calls(jax, kernel_fn, x, max(1, first_repeats))
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = _call(jitted, x)
        runs.append(time.perf_counter() - start)
    return {
        "first_s": statistics.median(firsts),
        "firsts_s": firsts,
        "steady_s": statistics.median(runs),
        "runs_s": runs,
        "dtype": str(np.asarray(out[0]).dtype),
        "backend": jax.default_backend(),
        "outputs": {key: np.asarray(value) for key, value in zip(GET, out, strict=True)},
    }


def run_reference(cmd: list[str], out: Path, timeout: float) -> dict[str, Any]:
    """Run ``cmd`` (a script in the reference environment) and read back its result.

    The script prints a JSON line last and saves its arrays to ``out`` (``.npz``);
    returns the JSON with the arrays under ``"outputs"``.
    """
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"reference run failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(out) as data:
        result["outputs"] = {key: data[key] for key in data.files}
    return result
