"""Speed of infattn's kernel_fn against neural-tangents 0.6.5 on the benchmark transformer.

Run with the main environment's python (NT is timed in a subprocess of the reference env)::

    python benchmarks/kernel_speed.py [--sizes 32x32x16,128x64x16] [--repeats 5] [--json PATH]

For each size ``NxLxC`` both libraries' ``jax.jit(kernel_fn, static_argnames='get')`` are
called with ``x2=None, get=('nngp', 'ntk')`` in float32: the first call (compile + run,
median of ``--first-repeats`` from cleared caches) and the median of ``--repeats``
further calls. Prints both, the ratios infattn/NT, the maximum relative difference of
the two outputs as a sanity check, the GFLOP/s of the attention contractions
(:func:`attention_flops`) at each time, this CPU's measured float32 matmul peak and the
load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from _timing import GET, make_inputs, run_reference, time_kernel_fn  # noqa: E402
from models import N_BLOCKS, benchmark_model  # noqa: E402

DEFAULT_SIZES = "32x32x16,128x64x16"


def reference_python() -> Path:
    """``$INFATTN_REF_ENV/bin/python`` (default ``<repo>/.cache/ntref``)."""
    env = os.environ.get("INFATTN_REF_ENV", str(REPO / ".cache" / "ntref"))
    return Path(env) / "bin" / "python"


def parse_size(text: str) -> tuple[int, int, int]:
    """``"128x64x16"`` -> ``(128, 64, 16)``."""
    n, length, channels = (int(v) for v in text.lower().split("x"))
    return n, length, channels


def attention_flops(n: int, length: int, n_blocks: int = N_BLOCKS) -> float:
    """Flops of the attention layers' contractions ``G_i M_ij G_j^T`` of one kernel_fn call.

    Per layer and kernel (nngp, ntk): ``N^2`` pairs of two ``L x L`` matrix products, as a
    library computing every pair does (infattn's tiling computes about half of them).
    """
    return n_blocks * 2 * n * n * 2 * (2 * length**3)


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """This CPU's float32 matmul rate in GFLOP/s: best of ``repeats`` ``size^3`` products."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((size, size), jnp.float32)
    f = jax.jit(lambda m: m @ m)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def time_infattn(size: tuple[int, int, int], repeats: int, first_repeats: int) -> dict[str, Any]:
    """Time infattn in this process."""
    import jax

    from infattn import stax

    _, _, kernel_fn = benchmark_model(stax)
    return time_kernel_fn(jax, kernel_fn, make_inputs(*size), repeats, first_repeats)


def time_nt(
    size: tuple[int, int, int], repeats: int, first_repeats: int, timeout: float
) -> dict[str, Any]:
    """Time NT in a reference-environment subprocess; its outputs come back via a file."""
    python = reference_python()
    if not python.exists():
        raise FileNotFoundError(
            f"{python} not found: run `bash tools/reference/setup_env.sh` or set INFATTN_REF_ENV"
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "nt.npz"
        n, length, channels = size
        cmd = [str(python), str(HERE / "_nt_timing.py"), "--n", str(n), "--length", str(length)]
        cmd += ["--channels", str(channels), "--repeats", str(repeats), "--out", str(out)]
        cmd += ["--first-repeats", str(first_repeats)]
        return run_reference(cmd, out, timeout)


def max_rel_diff(ours: np.ndarray, ref: np.ndarray) -> float:
    """``max|ours - ref| / max|ref|``."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        return float("inf")
    return float(np.max(np.abs(ours - ref)) / max(float(np.max(np.abs(ref))), 1e-30))


def summarize(size: tuple[int, int, int], ours: dict[str, Any], nt: dict[str, Any] | None) -> dict:
    """One row of results (no arrays)."""
    flops = attention_flops(size[0], size[1])
    row: dict[str, Any] = {
        "size": "x".join(map(str, size)),
        "attention_flops": flops,
        "infattn": {k: v for k, v in ours.items() if k != "outputs"},
        "gflops_steady": {"infattn": flops / ours["steady_s"] / 1e9},
    }
    if nt is not None:
        row["nt"] = {k: v for k, v in nt.items() if k != "outputs"}
        row["ratio_first"] = ours["first_s"] / nt["first_s"]
        row["ratio_steady"] = ours["steady_s"] / nt["steady_s"]
        row["gflops_steady"]["nt"] = flops / nt["steady_s"] / 1e9
        row["max_rel_diff"] = {
            key: max_rel_diff(ours["outputs"][key], nt["outputs"][key]) for key in GET
        }
    return row


def _cell(value: float | None, fmt: str, width: int) -> str:
    return f"{'-':>{width}s}" if value is None else f"{value:{width}{fmt}}"


def print_table(rows: list[dict[str, Any]], context: dict[str, Any]) -> None:
    """Timings in seconds, ratios infattn/NT (< 1: infattn faster) and attention GFLOP/s."""
    print(
        f"{'N x L x C':12s} {'ours 1st':>8s} {'NT 1st':>8s} {'ratio':>6s}   {'ours med':>8s} "
        f"{'NT med':>8s} {'ratio':>6s}   {'GFLOP/s ours/NT':>15s}   {'rel diff nngp/ntk':>17s}"
    )
    for row in rows:
        ours, nt, rate = row["infattn"], row.get("nt") or {}, row["gflops_steady"]
        diff = row.get("max_rel_diff")
        print(
            f"{row['size']:12s} {ours['first_s']:8.3f} {_cell(nt.get('first_s'), '.3f', 8)} "
            f"{_cell(row.get('ratio_first'), '.2f', 6)}   {ours['steady_s']:8.4f} "
            f"{_cell(nt.get('steady_s'), '.4f', 8)} {_cell(row.get('ratio_steady'), '.2f', 6)}"
            f"   {rate['infattn']:7.1f}/{_cell(rate.get('nt'), '.1f', 7)}   "
            + ("-" if diff is None else f"{diff['nngp']:8.1e}/{diff['ntk']:8.1e}")
        )
    if rows:
        nt_backend = (rows[0].get("nt") or {}).get("backend", "-")
        print(
            f"backend: infattn {rows[0]['infattn']['backend']}, NT {nt_backend}; float32; "
            f"GFLOP/s of the attention contractions (attention_flops) at the median time; "
            f"matmul peak {context['matmul_peak_gflops']:.0f} GFLOP/s (float32 2048^3); "
            f"load average {context['load_before']:.2f} before, {context['load_after']:.2f} after"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma list of NxLxC")
    parser.add_argument("--repeats", type=int, default=5, help="steady-state runs (median)")
    parser.add_argument(
        "--first-repeats", type=int, default=3, help="first calls from cleared caches (median)"
    )
    parser.add_argument("--json", type=Path, default=None, help="save the results here")
    parser.add_argument("--skip-nt", action="store_true", help="time infattn only")
    parser.add_argument("--nt-timeout", type=float, default=1800.0, help="seconds per NT run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    context: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    context["matmul_peak_gflops"] = matmul_peak()
    rows = []
    for text in args.sizes.split(","):
        size = parse_size(text)
        ours = time_infattn(size, args.repeats, args.first_repeats)
        nt = None
        if not args.skip_nt:
            nt = time_nt(size, args.repeats, args.first_repeats, args.nt_timeout)
        rows.append(summarize(size, ours, nt))
    context["load_after"] = os.getloadavg()[0]
    print_table(rows, context)
    if args.json:
        args.json.write_text(json.dumps({"context": context, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
