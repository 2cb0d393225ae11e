"""Compute neural-tangents 0.6.5 predictions for the predict parity grid and save them.

Run with the reference environment's python (see ``setup_env.sh``)::

    $INFATTN_REF_ENV/bin/python tools/reference/dump_predict.py .cache/reference [--filter S]

For every case of ``tests/reference/predict_grid.py`` it writes
``OUTDIR/predict__<case>.npz`` holding NT's kernels (``kernel:dd_nngp``, ...), every
output of :func:`predict_grid.evaluate` (``out:<path>``), the inputs and the case
``spec``. Everything is float64.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dump import REPO, import_reference  # same directory: x64, quiet TensorFlow


def dump_case(case, stax, predict, outdir: Path) -> float:
    """Compute and save one case; returns the seconds it took."""
    import numpy as np

    from tests.reference import predict_grid

    start = time.perf_counter()
    kernels = predict_grid.reference_kernels(case, stax)
    outputs = predict_grid.evaluate(case, stax, predict, kernels)
    bad = [path for path, value in outputs.items() if not np.all(np.isfinite(value))]
    if bad:
        raise FloatingPointError(f"{case.name}: NT returned non-finite {bad[:5]}")
    arrays = {f"kernel:{k}": v for k, v in kernels.items()}
    arrays |= {f"out:{k}": v for k, v in outputs.items()}
    arrays["spec"] = np.asarray(case.spec)
    arrays["x_train"] = case.data()["x_train"]
    np.savez(outdir / f"predict__{case.name}.npz", **arrays)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, help="directory for predict__<case>.npz")
    parser.add_argument("--filter", default=None, help="only cases whose name contains this")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.reference import predict_grid

    _, _, stax = import_reference()
    from neural_tangents import predict

    cases = [c for c in predict_grid.cases() if args.filter is None or args.filter in c.name]
    args.outdir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for case in cases:
        try:
            seconds = dump_case(case, stax, predict, args.outdir)
        except Exception as err:  # report every failing case, then exit non-zero
            failures += 1
            print(f"FAILED predict case {case.name}: {type(err).__name__}: {err}", flush=True)
            continue
        print(f"predict case {case.name} {seconds:.2f}s", flush=True)
    print(f"dumped {len(cases) - failures}/{len(cases)} predict cases to {args.outdir}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
