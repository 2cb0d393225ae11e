"""``infattn kernels DATASET``: a data set's NNGP/NTK kernels into a resumable zarr store.

The data sets and architectures are those of ``infattn experiment``; the kernels
are computed by :func:`infattn.scale.compute_kernels` (tiles sized from a memory
budget, all local devices or Dask workers; see ``docs/scale.md``). Running the same
command again after an interruption finishes the store.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from infattn.commands.experiment import DATASETS, add_data_arguments, load

NAME = "kernels"
HELP = "NNGP/NTK kernels of a data set into a resumable zarr store (tiled, devices, Dask)"

DEFAULT_ARCHITECTURES = {1: "attn-pe", 2: "conv-attn"}
"""The attention architecture of data with 1 (sequences) or 2 (images) spatial axes."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=DATASETS, help="the data set")
    parser.add_argument(
        "--arch",
        default=None,
        help="architecture (see infattn experiment --list); default: the data's attention "
        "architecture, attn-pe for sequences, conv-attn for images",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="STORE", help="the zarr store (a directory)"
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--memory-budget",
        default=None,
        metavar="SIZE",
        help="device memory one tile may use, e.g. 512MiB (default: 75%% of a GPU's free "
        "memory, 1GiB on CPU)",
    )
    parser.add_argument("--tile-size", type=int, default=None, help="examples per tile")
    parser.add_argument(
        "--dask",
        default=None,
        metavar="local|ADDRESS",
        help="run tiles as Dask tasks: 'local' starts a cluster on 127.0.0.1, "
        "or a scheduler address tcp://host:port",
    )
    parser.add_argument(
        "--dask-workers", type=int, default=1, help="worker processes of --dask local"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from infattn import architectures
    from infattn.scale import IncompleteStoreError, StoreMismatchError, compute_kernels, parse_size

    try:
        budget = None if args.memory_budget is None else parse_size(args.memory_budget)
        dataset = load(args)
        name = args.arch or DEFAULT_ARCHITECTURES[dataset.x_train.ndim - 2]
        arch = architectures.get(name)
        _, _, kernel_fn = arch.build(dataset.x_train.ndim - 2, dataset.y_train.shape[-1])
    except (KeyError, FileNotFoundError, ImportError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) else str(err)
        print(f"infattn kernels: {message}", file=sys.stderr)
        return 2
    print(f"{dataset!r}\narchitecture {name}: {arch.description}", flush=True)
    start = time.perf_counter()
    try:
        store = compute_kernels(
            kernel_fn,
            dataset.x_train,
            dataset.x_test,
            args.out,
            dtype=args.dtype,
            mask_constant=dataset.mask_constant,
            memory_budget=budget,
            tile_size=args.tile_size,
            dask=args.dask,
            dask_workers=args.dask_workers,
            progress=not args.quiet,
            description=f"infattn kernels {dataset.name} --arch {name} --dtype {args.dtype}",
        )
    except KeyboardInterrupt:
        print(
            f"interrupted: finished tiles are kept in {args.out}; "
            "run the same command again to resume",
            file=sys.stderr,
            flush=True,
        )
        return 130
    except (StoreMismatchError, IncompleteStoreError, MemoryError, FileExistsError) as err:
        print(f"infattn kernels: {err}", file=sys.stderr)
        return 1
    print(summary(store, time.perf_counter() - start))
    return 0


def summary(store: Any, seconds: float) -> str:
    """What a finished store holds, for the terminal."""
    layout = store.layout
    lines = [
        f"{store.path}: {len(layout.tiles())} tiles of {layout.tile} (test {layout.test_tile}) "
        f"examples, {store.manifest['dtype']}, {seconds:.1f} s",
    ]
    for kind, part, array in store.arrays():
        lines.append(f"  {kind + '/' + part:17} {tuple(array.shape)}")
    return "\n".join(lines)
