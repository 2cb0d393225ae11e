"""Compute neural-tangents 0.6.5 reference kernels for the parity grid and save them.

Run with the reference environment's python (see ``setup_env.sh``)::

    $INFATTN_REF_ENV/bin/python tools/reference/dump.py .cache/reference [--filter SUBSTR]

For every case of ``tests/reference/grid.py`` it writes ``OUTDIR/<case>.npz`` holding
``nngp``, ``ntk``, ``cov1`` (and ``cov2`` when ``x2`` is given), the inputs ``x1``
(``x2``), the ``mask_constant`` (NaN for none), the case ``spec`` and ``nt_is_reversed``,
plus ``OUTDIR/manifest.json`` (case names, versions, timings) and ``OUTDIR/names.json``
(neural-tangents' public names, ``tools/reference/names.py``). Everything is float64.

neural-tangents can return a kernel whose spatial axes are stored in reverse order
(``Kernel.is_reversed``, e.g. after an odd number of 2-D convolutions); such kernels
are reversed back so that the saved layout is always ``(N1, N2, H, H, W, W)``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

REPO = Path(__file__).resolve().parents[2]
GRID_PATH = REPO / "tests" / "reference" / "grid.py"


def import_reference() -> tuple[ModuleType, ModuleType, ModuleType]:
    """``jax`` (with x64 enabled), ``neural_tangents`` and ``neural_tangents.stax``."""
    warnings.filterwarnings("ignore")
    import jax

    jax.config.update("jax_enable_x64", True)
    import neural_tangents
    from neural_tangents import stax

    return jax, neural_tangents, stax


def reference_kernels(case: Any, stax: ModuleType) -> dict[str, Any]:
    """NT's kernels for one case, in canonical (non-reversed) spatial order, as numpy."""
    import numpy as np

    x1, x2 = case.inputs()
    _, _, kernel_fn = case.build(stax)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kernel = kernel_fn(x1, x2, None, mask_constant=case.mask_constant, **case.kernel_kwargs())
    reversed_ = bool(kernel.is_reversed)
    if reversed_:
        kernel = kernel.reverse()
    out: dict[str, Any] = {
        "nngp": np.asarray(kernel.nngp),
        "ntk": np.asarray(kernel.ntk),
        "cov1": np.asarray(kernel.cov1),
        "x1": x1,
        "mask_constant": np.nan if case.mask_constant is None else case.mask_constant,
        "spec": np.asarray(case.spec),
        "nt_is_reversed": np.asarray(reversed_),
    }
    if x2 is not None:
        out["x2"] = x2
        out["cov2"] = np.asarray(kernel.cov2)
    return out


def dump_case(case: Any, stax: ModuleType, outdir: Path) -> float:
    """Compute and save one case; returns the seconds it took."""
    import numpy as np

    start = time.perf_counter()
    arrays = reference_kernels(case, stax)
    for key in ("nngp", "ntk", "cov1"):
        if not np.all(np.isfinite(arrays[key])):
            raise FloatingPointError(f"{case.name}: NT returned non-finite {key}")
    np.savez(outdir / f"{case.name}.npz", **arrays)
    return time.perf_counter() - start


def write_manifest(outdir: Path, timings: dict[str, float], versions: dict[str, str]) -> None:
    """Merge this run's cases into ``manifest.json`` (a filtered run keeps the others)."""
    path = outdir / "manifest.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    merged = {**old.get("timings_s", {}), **{k: round(v, 4) for k, v in timings.items()}}
    manifest = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": versions,
        "grid": str(GRID_PATH.relative_to(REPO)),
        "cases": sorted(merged),
        "timings_s": merged,
    }
    path.write_text(json.dumps(manifest, indent=1) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, help="directory for <case>.npz and manifest.json")
    parser.add_argument("--filter", default=None, help="only cases whose name contains this")
    parser.add_argument("--quiet", action="store_true", help="no per-case lines")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.reference import grid  # importable in both environments
    from tools.reference.names import write_names

    jax, nt, stax = import_reference()
    cases = grid.select(args.filter)
    if not cases:
        print(f"no case matches {args.filter!r}", file=sys.stderr)
        return 2
    args.outdir.mkdir(parents=True, exist_ok=True)
    versions = {"neural_tangents": nt.__version__, "jax": jax.__version__}
    timings: dict[str, float] = {}
    failures: dict[str, str] = {}
    start = time.perf_counter()
    for i, case in enumerate(cases, 1):
        try:
            timings[case.name] = dump_case(case, stax, args.outdir)
        except Exception as err:  # report every failing case, then exit non-zero
            failures[case.name] = f"{type(err).__name__}: {err}"
            print(f"[{i}/{len(cases)}] FAILED {case.name}: {failures[case.name]}", flush=True)
            continue
        if not args.quiet:
            print(f"[{i}/{len(cases)}] {case.name} {timings[case.name]:.2f}s", flush=True)
    write_manifest(args.outdir, timings, versions)
    write_names(args.outdir, nt)
    total = time.perf_counter() - start
    print(f"dumped {len(timings)}/{len(cases)} cases to {args.outdir} in {total:.1f}s ({versions})")
    if failures:
        print(f"{len(failures)} cases failed in neural-tangents:", file=sys.stderr)
        for name, message in failures.items():
            print(f"  {name}: {message[:300]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
