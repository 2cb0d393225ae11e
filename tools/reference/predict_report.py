"""Print ``infattn.predict``'s worst errors against the neural-tangents 0.6.5 predict dump.

Run with the main environment's python, after ``dump_predict.py``::

    python tools/reference/predict_report.py [--ref-dir .cache/reference] [--filter SUBSTR]

For every case of ``tests/reference/predict_grid.py`` it evaluates the same calls as
``tests/reference/test_predict_parity.py`` (float64) and prints the case's worst
relative error ``max|ours - ref| / max|ref|`` and worst absolute error
``max|ours - ref|`` over its outputs and kernels, then the worst of each over the grid.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def case_errors(case, ref: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """``{output or kernel: (relative, absolute)}`` of infattn against the stored reference."""
    from infattn import predict, stax
    from tests.reference import predict_grid

    kernels = {k.removeprefix("kernel:"): v for k, v in ref.items() if k.startswith("kernel:")}
    ours = predict_grid.evaluate(case, stax, predict, kernels)
    ours |= {f"kernel:{k}": v for k, v in predict_grid.reference_kernels(case, stax).items()}
    errors = {}
    for path, value in ours.items():
        expected = ref[path if path.startswith("kernel:") else f"out:{path}"]
        diff = np.abs(np.asarray(value) - expected) if value.shape == expected.shape else np.inf
        errors[path] = (predict_grid.relative_error(value, expected), float(np.max(diff)))
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref-dir", type=Path, default=None, help="default $INFATTN_REF_DIR")
    parser.add_argument("--filter", default=None, help="only cases whose name contains this")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.reference import parity, predict_grid

    parity.enable_x64()
    ref_dir = args.ref_dir or parity.reference_dir()
    start, worst_rel, worst_abs = time.perf_counter(), (0.0, ""), (0.0, "")
    for case in predict_grid.cases():
        if args.filter is not None and args.filter not in case.name:
            continue
        with np.load(ref_dir / f"predict__{case.name}.npz") as data:
            ref = {key: data[key] for key in data.files}
        if str(ref["spec"]) != case.spec:
            raise SystemExit(f"{ref_dir}: predict__{case.name}.npz is stale; re-run dump_predict")
        errors = case_errors(case, ref)
        rel = max(errors.items(), key=lambda item: item[1][0])
        ab = max(errors.items(), key=lambda item: item[1][1])
        print(f"{case.name:40s} rel {rel[1][0]:.2e} ({rel[0]})  abs {ab[1][1]:.2e} ({ab[0]})")
        worst_rel = max(worst_rel, (rel[1][0], f"{case.name}: {rel[0]}"))
        worst_abs = max(worst_abs, (ab[1][1], f"{case.name}: {ab[0]}"))
    print(f"worst relative error {worst_rel[0]:.3e}  ({worst_rel[1]})")
    print(f"worst absolute error {worst_abs[0]:.3e}  ({worst_abs[1]})")
    print(f"({time.perf_counter() - start:.1f}s, reference {ref_dir})")
    return 1 if worst_rel[0] > parity.RTOL else 0


if __name__ == "__main__":
    sys.exit(main())
