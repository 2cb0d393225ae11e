"""Compute neural-tangents 0.6.5 outputs for the top-level API parity grid and save them.

Run with the reference environment's python (see ``setup_env.sh``)::

    $INFATTN_REF_ENV/bin/python tools/reference/dump_empirical.py .cache/reference [--filter S]

For every case of ``tests/reference/empirical_grid.py`` it writes
``OUTDIR/empirical__<case>.npz``: every output of :func:`empirical_grid.evaluate` and
the case ``spec``. Everything is float64.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dump import REPO, import_reference  # same directory: x64, quiet TensorFlow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, help="directory for empirical__<case>.npz")
    parser.add_argument("--filter", default=None, help="only cases whose name contains this")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    import numpy as np

    from tests.reference import empirical_grid

    _, nt, _ = import_reference()
    args.outdir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for case in empirical_grid.cases():
        if args.filter is not None and args.filter not in case.name:
            continue
        try:
            outputs = empirical_grid.evaluate(case, nt)
        except Exception as err:  # report every failing case, then exit non-zero
            failures += 1
            print(f"FAILED {case.name}: {type(err).__name__}: {err}", flush=True)
            continue
        np.savez(args.outdir / f"empirical__{case.name}.npz", spec=np.asarray(case.spec), **outputs)
        print(f"{case.name}: {sorted(outputs)}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
