"""Print infattn's parity errors against the neural-tangents 0.6.5 dump over the whole grid.

Run with the main environment's python::

    python tools/reference/report.py [--ref-dir .cache/reference] [--filter SUBSTR] [--worst 15]

Prints, per kernel (nngp, ntk, cov1), the maximum relative error
``max|ours - ref| / max|ref|`` over the grid, the worst cases, and the failing cases
(error above 1e-6, exceptions, missing references) grouped by architecture.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_all(parity: ModuleType, cases: list[Any], ref_dir: Path) -> dict[str, Any]:
    """Compare every case; returns ``{name: Comparison | str}`` (a string is a failure)."""
    from infattn import stax

    results: dict[str, Any] = {}
    for case in cases:
        try:
            ref = parity.load_reference(case, ref_dir)
            results[case.name] = parity.compare(case, ref, stax)
        except parity.ReferenceError as err:
            results[case.name] = f"reference: {str(err).splitlines()[0]}"
        except Exception as err:  # report, do not stop: the lead wants the whole picture
            results[case.name] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    return results


def architecture(name: str) -> str:
    """``attn_softmax_pe_none__x12_masked`` -> ``attn_softmax_pe_none``."""
    return name.split("__")[0]


def print_report(parity: ModuleType, results: dict[str, Any], worst: int) -> int:
    """Print the summary; returns the number of failing cases."""
    compared = {k: v for k, v in results.items() if not isinstance(v, str)}
    errored = {k: v for k, v in results.items() if isinstance(v, str)}
    print(f"cases: {len(results)} compared: {len(compared)} raised/missing: {len(errored)}")
    for key in parity.KERNELS:
        if compared:
            name, r = max(compared.items(), key=lambda item: item[1].errors[key])
            print(f"  max relative error {key:5s}: {r.errors[key]:.3e}  ({name})")
    ranked = sorted(compared.values(), key=lambda r: r.worst, reverse=True)[:worst]
    print(f"worst {len(ranked)} cases:")
    for r in ranked:
        errs = " ".join(f"{k}={v:.2e}" for k, v in r.errors.items())
        print(f"  {r.name:55s} {errs} {'; '.join(r.notes)}")
    failing = [r.name for r in compared.values() if not r.passed(parity.RTOL)] + list(errored)
    groups: dict[str, list[str]] = collections.defaultdict(list)
    for name in failing:
        groups[architecture(name)].append(name.split("__")[-1])
    print(f"failing (> {parity.RTOL:g} or raised): {len(failing)} cases in {len(groups)} archs")
    for arch, variants in groups.items():
        print(f"  {arch}: {', '.join(variants)}")
    for name, message in errored.items():
        print(f"  ! {name}: {message}")
    return len(failing)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref-dir", type=Path, default=None, help="default $INFATTN_REF_DIR")
    parser.add_argument("--filter", default=None, help="only cases whose name contains this")
    parser.add_argument("--worst", type=int, default=15, help="how many worst cases to list")
    parser.add_argument("--json", type=Path, default=None, help="also save errors as JSON")
    return parser.parse_args(argv)


def save_json(path: Path, results: dict[str, Any]) -> None:
    """Errors per case (or the failure message) as JSON."""
    data = {k: (v if isinstance(v, str) else v.errors) for k, v in results.items()}
    path.write_text(json.dumps(data, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.reference import grid, parity

    parity.enable_x64()
    ref_dir = args.ref_dir or parity.reference_dir()
    start = time.perf_counter()
    results = run_all(parity, grid.select(args.filter), ref_dir)
    n_failing = print_report(parity, results, args.worst)
    print(f"({time.perf_counter() - start:.1f}s, reference {ref_dir})")
    if args.json:
        save_json(args.json, results)
    return 1 if n_failing else 0


if __name__ == "__main__":
    sys.exit(main())
