"""Speed of infattn's kernel_fn against neural-tangents 0.6.5 on the benchmark transformer.

Run with the main environment's python (NT is timed in a subprocess of the reference env)::

    python benchmarks/kernel_speed.py [--sizes 32x32x16,128x64x16] [--repeats 5] [--json PATH]

For each size ``NxLxC`` both libraries' ``jax.jit(kernel_fn, static_argnames='get')`` are
called with ``x2=None, get=('nngp', 'ntk')`` in float32: the first call (compile + run)
and the median of ``--repeats`` further calls. Prints both, the ratios infattn/NT, and
the maximum relative difference of the two outputs as a sanity check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from _timing import GET, make_inputs, time_kernel_fn  # noqa: E402
from models import benchmark_model  # noqa: E402

DEFAULT_SIZES = "32x32x16,128x64x16"


def reference_python() -> Path:
    """``$INFATTN_REF_ENV/bin/python`` (default ``<repo>/.cache/ntref``)."""
    env = os.environ.get("INFATTN_REF_ENV", str(REPO / ".cache" / "ntref"))
    return Path(env) / "bin" / "python"


def parse_size(text: str) -> tuple[int, int, int]:
    """``"128x64x16"`` -> ``(128, 64, 16)``."""
    n, length, channels = (int(v) for v in text.lower().split("x"))
    return n, length, channels


def time_infattn(size: tuple[int, int, int], repeats: int) -> dict[str, Any]:
    """Time infattn in this process."""
    import jax

    from infattn import stax

    _, _, kernel_fn = benchmark_model(stax)
    return time_kernel_fn(jax, kernel_fn, make_inputs(*size), repeats)


def time_nt(size: tuple[int, int, int], repeats: int, timeout: float) -> dict[str, Any]:
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
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"NT timing failed:\n{proc.stderr[-2000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        with np.load(out) as data:
            result["outputs"] = {key: data[key] for key in data.files}
    return result


def max_rel_diff(ours: np.ndarray, ref: np.ndarray) -> float:
    """``max|ours - ref| / max|ref|``."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        return float("inf")
    return float(np.max(np.abs(ours - ref)) / max(float(np.max(np.abs(ref))), 1e-30))


def summarize(size: tuple[int, int, int], ours: dict[str, Any], nt: dict[str, Any] | None) -> dict:
    """One row of results (no arrays)."""
    row: dict[str, Any] = {
        "size": "x".join(map(str, size)),
        "infattn": {k: v for k, v in ours.items() if k != "outputs"},
    }
    if nt is not None:
        row["nt"] = {k: v for k, v in nt.items() if k != "outputs"}
        row["ratio_first"] = ours["first_s"] / nt["first_s"]
        row["ratio_steady"] = ours["steady_s"] / nt["steady_s"]
        row["max_rel_diff"] = {
            key: max_rel_diff(ours["outputs"][key], nt["outputs"][key]) for key in GET
        }
    return row


def print_table(rows: list[dict[str, Any]]) -> None:
    """Timings in seconds and ratios infattn/NT (< 1: infattn faster)."""
    header = (
        f"{'N x L x C':12s} {'infattn 1st':>11s} {'NT 1st':>8s} {'ratio':>6s}   "
        f"{'infattn med':>11s} {'NT med':>8s} {'ratio':>6s}   {'rel diff nngp/ntk':>18s}"
    )
    print(header)
    for row in rows:
        ours, nt = row["infattn"], row.get("nt")
        if nt is None:
            print(
                f"{row['size']:12s} {ours['first_s']:11.3f} {'-':>8s} {'-':>6s}   "
                f"{ours['steady_s']:11.4f} {'-':>8s} {'-':>6s}"
            )
            continue
        diff = row["max_rel_diff"]
        print(
            f"{row['size']:12s} {ours['first_s']:11.3f} {nt['first_s']:8.3f} "
            f"{row['ratio_first']:6.2f}   {ours['steady_s']:11.4f} {nt['steady_s']:8.4f} "
            f"{row['ratio_steady']:6.2f}   {diff['nngp']:8.1e}/{diff['ntk']:8.1e}"
        )
    if rows:
        print(
            f"backend: infattn {rows[0]['infattn']['backend']}, "
            f"NT {rows[0].get('nt', {}).get('backend', '-')}; float32; median of runs"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma list of NxLxC")
    parser.add_argument("--repeats", type=int, default=5, help="steady-state runs (median)")
    parser.add_argument("--json", type=Path, default=None, help="save the results here")
    parser.add_argument("--skip-nt", action="store_true", help="time infattn only")
    parser.add_argument("--nt-timeout", type=float, default=1800.0, help="seconds per NT run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = []
    for text in args.sizes.split(","):
        size = parse_size(text)
        ours = time_infattn(size, args.repeats)
        nt = None if args.skip_nt else time_nt(size, args.repeats, args.nt_timeout)
        rows.append(summarize(size, ours, nt))
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
