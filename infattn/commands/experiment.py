"""``infattn experiment DATASET``: NNGP/NTK test scores of architectures on a data set."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

NAME = "experiment"
HELP = "NNGP and NTK test accuracy/MSE of architectures on digits, cifar10, imdb or synthetic"
DATASETS = ("digits", "cifar10", "imdb", "synthetic")
DEFAULT_SIZES = {
    "digits": (1000, 797),
    "cifar10": (1000, 1000),
    "imdb": (300, 300),
    "synthetic": (200, 200),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", nargs="?", choices=DATASETS, help="the data set")
    parser.add_argument("--arch", default="all", help="architecture name, or 'all' (see --list)")
    parser.add_argument("--list", action="store_true", help="list the architectures and exit")
    add_data_arguments(parser)
    parser.add_argument(
        "--diag-reg",
        type=float,
        default=1e-4,
        help="ridge added to the train kernel, relative to its mean diagonal",
    )
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the kernels in resumable zarr stores under DIR (infattn.scale; "
        "needs the scale extra): an interrupted experiment resumes",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write results")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The options choosing a data set's sizes, archive, layout and dtype (shared by commands)."""
    parser.add_argument("--n-train", type=int, default=None, help="training examples")
    parser.add_argument("--n-test", type=int, default=None, help="test examples")
    parser.add_argument("--data", type=Path, default=None, help="archive (cifar10, imdb)")
    parser.add_argument("--download", action="store_true", help="download a missing archive")
    parser.add_argument("--skip-checksum", action="store_true", help="do not check the MD5")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument(
        "--layout",
        choices=("image", "rows"),
        default="image",
        help="digits as 8x8 images or as sequences of 8 rows",
    )
    parser.add_argument("--length", type=int, default=200, help="imdb: tokens per review")


def load(args: argparse.Namespace) -> Any:
    """The data set named on the command line, at the requested sizes."""
    from infattn import data

    n_train, n_test = DEFAULT_SIZES[args.dataset]
    n_train = n_train if args.n_train is None else args.n_train
    n_test = n_test if args.n_test is None else args.n_test
    archive = {"verify": not args.skip_checksum, "download": args.download}
    if args.dataset == "digits":
        return data.load_digits(args.layout, n_train, n_test)
    if args.dataset == "synthetic":
        return data.trend_sequences(n_train, n_test)
    if args.dataset == "cifar10":
        return data.load_cifar10(args.data, n_train, n_test, **archive)
    return data.load_imdb(args.data, n_train, n_test, length=args.length, **archive)


def format_table(results: list) -> str:
    """The results as an aligned text table, one architecture per line."""
    head = (
        "architecture",
        "NNGP acc",
        "NNGP MSE",
        "NTK acc",
        "NTK MSE",
        "kernel s",
        "device",
        "dtype",
    )
    rows = [
        (
            r.architecture,
            f"{r.nngp.test_accuracy:.4f}",
            f"{r.nngp.test_mse:.5f}",
            f"{r.ntk.test_accuracy:.4f}",
            f"{r.ntk.test_mse:.5f}",
            f"{r.kernel_seconds:.1f}",
            r.device,
            r.dtype,
        )
        for r in results
    ]
    widths = [max(len(str(row[i])) for row in (head, *rows)) for i in range(len(head))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (head, *rows)
    )


def write_json(path: Path, args: argparse.Namespace, results: list, complete: bool) -> None:
    payload = {
        "dataset": args.dataset,
        "complete": complete,
        "results": [r.to_dict() for r in results],
    }
    path.write_text(json.dumps(payload, indent=1) + "\n")


def run(args: argparse.Namespace) -> int:
    from infattn import architectures

    if args.list:
        for a in architectures.ARCHITECTURES.values():
            print(f"{a.name:12} {a.description}")
        return 0
    if args.dataset is None:
        print(
            f"infattn experiment: name a data set ({', '.join(DATASETS)}) or pass --list",
            file=sys.stderr,
        )
        return 2
    names = list(architectures.ARCHITECTURES) if args.arch == "all" else [args.arch]
    try:
        for name in names:
            architectures.get(name)
        dataset = load(args)
    except (KeyError, FileNotFoundError, ImportError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) else str(err)
        print(f"infattn experiment: {message}", file=sys.stderr)
        return 2
    return _run_all(args, dataset, names)


def _run_all(args: argparse.Namespace, dataset: Any, names: list[str]) -> int:
    import jax

    from infattn import experiments

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    print(f"{dataset!r}\n{dataset.description}")
    results = []
    try:
        for name in names:
            results.append(
                experiments.run(
                    dataset,
                    name,
                    dtype=args.dtype,
                    diag_reg=args.diag_reg,
                    progress=not args.quiet,
                    store=args.store,
                )
            )
            print(f"done: {name}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: keeping the architectures already finished", file=sys.stderr)
    complete = len(results) == len(names)
    print(format_table(results))
    if args.json is not None:
        write_json(args.json, args, results, complete)
    return 0 if complete else 130
