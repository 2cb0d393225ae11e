"""``infattn figures --out DIR``: the paper's figures as PNG and PDF, with JSON sidecars.

Each figure of :data:`infattn.figures.FIGURES` is drawn by its library function
with its full (default) or ``--quick`` settings and the given ``--seed``, and
written as ``NAME.png``, ``NAME.pdf`` and ``NAME.json`` (settings, seed, software
versions, device, time, the numbers plotted). ``index.md`` lists every figure in
the folder with its caption; it is rewritten after each figure, so Ctrl-C keeps
every finished figure and its entry.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

NAME = "figures"
HELP = "the paper's figures (PNG, PDF, JSON sidecars, index.md); --quick for a small run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--quick", action="store_true", help="small settings: minutes on a laptop CPU"
    )
    parser.add_argument(
        "--only", action="append", default=None, metavar="NAME", help="only this figure (repeat)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="PATH",
        help="folder with cifar-10-python.tar.gz / aclImdb_v1.tar.gz (or one archive) "
        "for the accuracy figure",
    )
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed of every figure")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def versions() -> dict[str, str]:
    """Versions of Python and the packages the figures depend on."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for package in ("infattn", "jax", "jaxlib", "numpy", "scipy", "matplotlib"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def settings_for(spec: Any, args: argparse.Namespace) -> Any:
    """The settings of one figure for the command line's preset, seed and data."""
    cls = spec.settings()
    settings = cls.quick() if args.quick else cls.full()
    changes: dict[str, Any] = {"seed": args.seed}
    if args.data is not None and "data" in {f.name for f in dataclasses.fields(cls)}:
        changes["data"] = str(args.data)
    return dataclasses.replace(settings, **changes)


def write_figure(
    spec: Any, settings: Any, out: Path, *, preset: str, progress: bool
) -> dict[str, Any]:
    """Draw one figure and write its PNG, PDF and JSON sidecar; returns the sidecar."""
    from infattn.experiments import device_name
    from infattn.figures.common import jsonable

    start = time.perf_counter()
    fig, numbers = spec.function()(settings, progress=progress)
    seconds = time.perf_counter() - start
    for suffix in ("png", "pdf"):
        fig.savefig(out / f"{spec.name}.{suffix}", dpi=150, bbox_inches="tight")
    sidecar = {
        "figure": spec.name,
        "caption": spec.caption,
        "preset": preset,
        "settings": settings.to_dict(),
        "seed": settings.seed,
        "versions": versions(),
        "device": device_name(),
        "seconds": round(seconds, 2),
        "numbers": jsonable(numbers),
    }
    (out / f"{spec.name}.json").write_text(json.dumps(sidecar, indent=1, allow_nan=False) + "\n")
    return sidecar


def write_index(out: Path) -> None:
    """``index.md``: one section per figure whose sidecar is in ``out``, with its caption."""
    from infattn.figures import FIGURES

    lines = ["# infattn figures", ""]
    for name in FIGURES:
        path = out / f"{name}.json"
        if not path.is_file():
            continue
        s = json.loads(path.read_text())
        lines += [
            f"## {name}",
            "",
            f"![{name}]({name}.png)",
            "",
            s["caption"],
            "",
            f"[PDF]({name}.pdf) · [numbers and settings]({name}.json) · {s['preset']} settings, "
            f"seed {s['seed']} · {s['seconds']} s on {s['device']}",
            "",
        ]
    (out / "index.md").write_text("\n".join(lines))


def run(args: argparse.Namespace) -> int:
    from infattn.figures import FIGURES

    names = args.only or list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        print(
            f"infattn figures: unknown figure {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(FIGURES)}",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    preset = "quick" if args.quick else "full"
    for i, name in enumerate(names):
        spec = FIGURES[name]
        try:
            sidecar = write_figure(
                spec, settings_for(spec, args), args.out, preset=preset, progress=not args.quiet
            )
        except KeyboardInterrupt:
            print(
                f"interrupted during {name}: {i} finished figure(s) kept in {args.out}",
                file=sys.stderr,
                flush=True,
            )
            return 130
        except (FileNotFoundError, ImportError) as err:
            print(f"infattn figures: {name}: {err}", file=sys.stderr)
            return 1
        write_index(args.out)
        print(f"{name}: {sidecar['seconds']} s -> {args.out / name}.png", flush=True)
    return 0
