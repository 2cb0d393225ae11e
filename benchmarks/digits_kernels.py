"""The digits CNN-GAP kernels in float64: infattn against neural-tangents 0.6.5.

Run with the main environment's python (NT is timed in a subprocess of the reference env)::

    python benchmarks/digits_kernels.py [--n-train 1000 --n-test 797] [--block 25]

Architecture ``cnn-gap`` of ``infattn/architectures.py`` (mirrored for both libraries by
``models.cnn_gap`` and checked against it here) on the scikit-learn digits as 8x8 images,
``get=('nngp', 'ntk')``, float64. Both libraries compute the train-train and test-train
kernels the same way: ``jax.jit(kernel_fn)`` on row blocks of ``--block`` examples
(the last one zero-padded) against the whole training set, one library after the other.
Prints each library's seconds (the first block includes compilation) and CPU seconds
(all threads; less sensitive to other jobs on a shared machine), the ratio
infattn/NT, the maximum relative difference of the outputs and the GFLOP/s of each
(flops from XLA's cost analysis of infattn's compiled block, times the blocks).

``--library nt --data FILE --out FILE`` is the subprocess mode (reference env).
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
sys.path.insert(0, str(HERE))

from _timing import run_reference  # noqa: E402
from models import cnn_gap  # noqa: E402

GET = ("nngp", "ntk")


def blocks(x: np.ndarray, size: int) -> list[np.ndarray]:
    """Row blocks of ``size`` examples, the last one zero-padded to ``size``."""
    padded = np.concatenate([x, np.zeros((-len(x) % size, *x.shape[1:]), x.dtype)])
    return [padded[i : i + size] for i in range(0, len(padded), size)]


def kernels(jax: Any, kernel_fn: Any, x_train: np.ndarray, x_test: np.ndarray, size: int) -> dict:
    """Train-train and test-train nngp/ntk by row blocks; seconds of the whole and first block."""
    f = jax.jit(kernel_fn, static_argnames="get")
    x2 = jax.numpy.asarray(x_train)
    out: dict[str, Any] = {}
    start, cpu = time.perf_counter(), time.process_time()
    first = None
    for name, x1 in (("train_train", x_train), ("test_train", x_test)):
        parts = []
        for b in blocks(x1, size):
            parts.append([np.asarray(a) for a in f(jax.numpy.asarray(b), x2, get=GET)])
            first = time.perf_counter() - start if first is None else first
        for i, key in enumerate(GET):
            out[f"{name}_{key}"] = np.concatenate([p[i] for p in parts])[: len(x1)]
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "first_block_s": first, "outputs": out}


def run_nt(data: Path, out: Path, size: int) -> None:
    """Subprocess mode: NT in the reference env; timings as JSON on stdout."""
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import jax

    jax.config.update("jax_enable_x64", True)
    import neural_tangents
    from neural_tangents import stax

    with np.load(data) as d:
        x_train, x_test = d["x_train"], d["x_test"]
    result = kernels(jax, cnn_gap(stax)[2], x_train, x_test, size)
    np.savez(out, **result.pop("outputs"))
    result["versions"] = {"neural_tangents": neural_tangents.__version__, "jax": jax.__version__}
    print(json.dumps(result))


def time_nt(x_train: np.ndarray, x_test: np.ndarray, size: int, timeout: float) -> dict:
    """NT in a reference-environment subprocess; its outputs come back via a file."""
    from kernel_speed import reference_python

    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data.npz", Path(tmp) / "nt.npz"
        np.savez(data, x_train=x_train, x_test=x_test)
        cmd = [str(reference_python()), __file__, "--library", "nt", "--data", str(data)]
        cmd += ["--out", str(out), "--block", str(size)]
        return run_reference(cmd, out, timeout)


def block_flops(jax: Any, kernel_fn: Any, x_train: np.ndarray, size: int) -> float:
    """XLA's flop count of one compiled block ``kernel_fn(block, x_train)``, untiled
    (XLA counts a loop's body once, so the tiled program's count would be one tile's).

    A fresh wrapper is traced: ``jax.jit`` caches traces by function, not by
    ``tiling.TILE_ENTRIES``, so tracing ``kernel_fn`` itself here would make the timed
    loop run the untiled program."""
    from infattn.stax import tiling

    def untiled(x1: Any, x2: Any, get: tuple) -> Any:
        return kernel_fn(x1, x2, get=get)

    f = jax.jit(untiled, static_argnames="get")
    budget, tiling.TILE_ENTRIES = tiling.TILE_ENTRIES, 2**62
    try:
        compiled = f.lower(jax.numpy.asarray(x_train[:size]), x_train, get=GET).compile()
    finally:
        tiling.TILE_ENTRIES = budget
    cost = compiled.cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost)["flops"])


def check_mirror(jax: Any, x: np.ndarray) -> float:
    """Max |difference| of ``models.cnn_gap`` and ``architectures.get('cnn-gap')`` kernels."""
    from infattn import architectures, stax

    ours = cnn_gap(stax)[2](x, None, "ntk")
    ref = architectures.get("cnn-gap").build(2, 10)[2](x, None, "ntk")
    return float(jax.numpy.max(jax.numpy.abs(ours - ref)))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=1000, help="training images (<= 1000)")
    parser.add_argument("--n-test", type=int, default=797, help="test images (<= 797)")
    parser.add_argument("--block", type=int, default=25, help="rows per kernel_fn call")
    parser.add_argument("--skip-nt", action="store_true", help="time infattn only")
    parser.add_argument("--nt-timeout", type=float, default=7200.0, help="seconds for NT")
    parser.add_argument("--json", type=Path, default=None, help="save the results here")
    parser.add_argument("--library", choices=("infattn", "nt"), default="infattn")
    parser.add_argument("--data", type=Path, help="(--library nt) inputs .npz")
    parser.add_argument("--out", type=Path, help="(--library nt) outputs .npz")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.library == "nt":
        run_nt(args.data, args.out, args.block)
        return 0
    import jax

    jax.config.update("jax_enable_x64", True)
    from kernel_speed import matmul_peak, max_rel_diff

    from infattn import data, stax

    digits = data.load_digits("image", args.n_train, args.n_test)
    x_train, x_test = np.asarray(digits.x_train), np.asarray(digits.x_test)
    load = [os.getloadavg()[0]]
    mirror = check_mirror(jax, x_train[:4])
    kernel_fn = cnn_gap(stax)[2]
    n_blocks = len(blocks(x_train, args.block)) + len(blocks(x_test, args.block))
    flops = block_flops(jax, kernel_fn, x_train, args.block) * n_blocks
    ours = kernels(jax, kernel_fn, x_train, x_test, args.block)
    nt = None if args.skip_nt else time_nt(x_train, x_test, args.block, args.nt_timeout)
    load.append(os.getloadavg()[0])
    row: dict[str, Any] = {
        "n_train": len(x_train),
        "n_test": len(x_test),
        "block": args.block,
        "flops": flops,
        "matmul_peak_gflops": matmul_peak(),
        "load_average": load,
        "mirror_max_abs_diff": mirror,
        "infattn": {k: v for k, v in ours.items() if k != "outputs"},
    }
    line = f"infattn {ours['seconds']:8.2f} s ({flops / ours['seconds'] / 1e9:5.1f} GFLOP/s)"
    line += f" [{ours['cpu_seconds']:.1f} CPU s]"
    if nt is not None:
        row["nt"] = {k: v for k, v in nt.items() if k != "outputs"}
        row["ratio"] = ours["seconds"] / nt["seconds"]
        row["max_rel_diff"] = {
            k: max_rel_diff(ours["outputs"][k], nt["outputs"][k]) for k in ours["outputs"]
        }
        line += f"   NT {nt['seconds']:8.2f} s ({flops / nt['seconds'] / 1e9:5.1f} GFLOP/s)"
        row["cpu_ratio"] = ours["cpu_seconds"] / nt["cpu_seconds"]
        line += (
            f"   ratio {row['ratio']:.3f}   max rel diff {max(row['max_rel_diff'].values()):.1e}"
            f"\nCPU seconds (all threads): infattn {ours['cpu_seconds']:.1f}, "
            f"NT {nt['cpu_seconds']:.1f}, ratio {row['cpu_ratio']:.3f}"
        )
    print(f"digits CNN-GAP, {len(x_train)} train + {len(x_test)} test, float64, nngp+ntk")
    print(line)
    print(
        f"flops {flops:.3e} (XLA cost analysis of infattn's block x {n_blocks} blocks); "
        f"matmul peak {row['matmul_peak_gflops']:.0f} GFLOP/s float32; "
        f"load average {load[0]:.2f} before, {load[1]:.2f} after"
    )
    if args.json:
        args.json.write_text(json.dumps(row, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
