"""Speed and agreement of infattn's ``monte_carlo_kernel_fn`` against neural-tangents 0.6.5.

Run with the main environment's python; NT runs in a subprocess of the reference env
(this same file, ``--nt-worker``), so both time the same model on the same inputs in
the same run::

    python benchmarks/mc_speed.py [--n 8] [--length 16] [--channels 16] [--draws 64]
                                  [--repeats 2] [--configs default,vmap0,fastest,jacobian]
                                  [--json PATH]

Model: the brief's benchmark transformer (``benchmarks/models.py``, width 256, 2 blocks,
4 heads, SUM positional embedding with decay ``1/(1+d^2)``), ``x2=None``,
``get=('nngp', 'ntk')``, float32. Configurations (``--configs``):

* ``default``: both libraries' defaults (NT: ``vmap_axes=None``, ``implementation=1``;
  infattn: ``implementation=0``, i.e. parameter taps, see ``infattn.stax.taps``);
* ``vmap0``: NT with ``vmap_axes=0`` (per-example Jacobians, NT's default
  ``implementation=1``, i.e. contracted Jacobians) against infattn's defaults: issue
  12's target (>= 5x; "now about 4x" when it was filed matched this configuration,
  6.89 / 1.64 s, and not ``fastest``, 2.1x);
* ``fastest``: NT's fastest settings (``vmap_axes=0``, i.e. per-example Jacobians,
  valid for every stax model here, and ``implementation=3``, structured derivatives)
  against infattn's defaults;
* ``jacobian``: the same algorithm in both, per-example Jacobians contracted over
  parameters (``vmap_axes=0``, ``implementation=1``).

For each it reports the first call (compile + run) and the median of ``--repeats``
further calls, and the ratio NT / infattn of the steady-state times; also the median
CPU seconds of those calls (the process's, all threads) and their ratio, which a
shared machine disturbs less, and the 1-minute load average after each library. Agreement: NT's
per-draw kernels are recovered from its own generator (``n_samples=range(1, draws+1)``)
to give NT's mean and standard errors; with infattn's (``return_se=True``) every entry
gets ``z = (mean_infattn - mean_NT) / sqrt(se_infattn^2 + se_NT^2)`` (the draws differ,
so the means agree only within their errors). Prints ``max |z|`` and the fraction of
``|z| > 2`` (about 5% expected) per kernel.

Module-level imports are the standard library and numpy only (the file also runs in
the reference env).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from models import benchmark_model  # noqa: E402

GET = ("nngp", "ntk")
CONFIGS = {
    "default": {"infattn": {}, "nt": {"vmap_axes": None, "implementation": 1}},
    "vmap0": {"infattn": {}, "nt": {"vmap_axes": 0}},
    "fastest": {"infattn": {}, "nt": {"vmap_axes": 0, "implementation": 3}},
    "jacobian": {
        "infattn": {"vmap_axes": 0, "implementation": 1},
        "nt": {"vmap_axes": 0, "implementation": 1},
    },
}


def make_inputs(n: int, length: int, channels: int, seed: int = 0) -> np.ndarray:
    """Deterministic float32 inputs ``(n, length, channels)``."""
    return np.random.RandomState(seed).standard_normal((n, length, channels)).astype(np.float32)


def reference_python() -> Path:
    """``$INFATTN_REF_ENV/bin/python`` (default ``<repo>/.cache/ntref``)."""
    env = os.environ.get("INFATTN_REF_ENV", str(REPO / ".cache" / "ntref"))
    return Path(env) / "bin" / "python"


def _timed(call: Any, repeats: int) -> tuple[dict[str, Any], Any]:
    """Wall seconds of the first call and the median of ``repeats`` more, and the median
    CPU seconds of this process (all threads) over those: on a shared machine the CPU
    time depends less on the other processes than the wall time."""
    start = time.perf_counter()
    out = call()
    first = time.perf_counter() - start
    runs, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = call()
        runs.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    timing = {"first_s": first, "steady_s": statistics.median(runs), "runs_s": runs}
    return dict(timing, steady_cpu_s=statistics.median(cpu), load=os.getloadavg()), out


# ------------------------------------------------------------------ neural-tangents worker


def nt_worker(args: argparse.Namespace) -> None:
    """Runs in the reference env: times NT, or (``--agreement``) dumps its mean and SEs."""
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import jax
    import neural_tangents as nt
    from neural_tangents import stax

    init_fn, apply_fn, _ = benchmark_model(stax)
    x = jax.numpy.asarray(make_inputs(args.n, args.length, args.channels))
    key = jax.random.PRNGKey(args.seed)
    result: dict[str, Any] = {
        "versions": {"neural_tangents": nt.__version__, "jax": jax.__version__},
        "timings": {},
    }
    if not args.agreement:
        for name in args.configs.split(","):
            cfg = CONFIGS[name]["nt"]
            fn = nt.monte_carlo_kernel_fn(init_fn, apply_fn, key, args.draws, **cfg)

            def call(fn: Any = fn) -> Any:
                out = fn(x, None, GET)
                jax.block_until_ready(out)
                return out

            result["timings"][name], _ = _timed(call, args.repeats)
        print(json.dumps(result))
        return
    # per-draw kernels from NT's own running means: X_n = n m_n - (n - 1) m_{n-1}
    cfg = CONFIGS[args.configs.split(",")[0]]["nt"]
    gen = nt.monte_carlo_kernel_fn(init_fn, apply_fn, key, range(1, args.draws + 1), **cfg)
    prev = {g: 0.0 for g in GET}
    draws: dict[str, list] = {g: [] for g in GET}
    for n, k in enumerate(gen(x, None, GET), start=1):
        for g in GET:
            m = np.asarray(getattr(k, g), np.float64)
            draws[g].append(n * m - (n - 1) * prev[g])
            prev[g] = m
    arrays = {}
    for g in GET:
        d = np.stack(draws[g])
        arrays[g] = d.mean(0)
        arrays[g + "_se"] = d.std(0, ddof=1) / np.sqrt(len(d))
    np.savez(args.out, **arrays)
    print(json.dumps(result))


def run_nt(
    args: argparse.Namespace, configs: str, agreement: bool = False
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One reference-env subprocess: timings of ``configs``, or the agreement arrays."""
    python = reference_python()
    if not python.exists():
        raise FileNotFoundError(
            f"{python} not found: run `bash tools/reference/setup_env.sh` or set INFATTN_REF_ENV"
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "nt.npz"
        cmd = [
            str(python),
            str(Path(__file__).resolve()),
            "--nt-worker",
            "--out",
            str(out),
            "--configs",
            configs,
        ]
        for k in ("n", "length", "channels", "draws", "repeats", "seed"):
            cmd += [f"--{k}", str(getattr(args, k))]
        if agreement:
            cmd.append("--agreement")
        proc = subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=args.timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(f"NT worker failed:\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        arrays = {}
        if agreement:
            with np.load(out) as data:
                arrays = {k: data[k] for k in data.files}
    return result, arrays


# ------------------------------------------------------------------ infattn


def time_infattn(
    args: argparse.Namespace, name: str, keep: dict[str, np.ndarray] | None = None
) -> dict[str, Any]:
    """Times infattn in this process; stores means and SEs into ``keep``."""
    import jax

    from infattn import stax
    from infattn.empirical import monte_carlo_kernel_fn

    init_fn, apply_fn, _ = benchmark_model(stax)
    x = jax.numpy.asarray(make_inputs(args.n, args.length, args.channels))
    key = jax.random.PRNGKey(args.seed)
    cfg = CONFIGS[name]["infattn"]
    fn = monte_carlo_kernel_fn(
        init_fn, apply_fn, key, args.draws, **cfg, chunk_size=args.chunk_size
    )

    def call() -> Any:
        est = fn(x, None, GET, return_se=True)
        jax.block_until_ready((est.nngp, est.ntk))
        return est

    timing, est = _timed(call, args.repeats)
    if keep is not None:
        for g in GET:
            keep[g] = np.asarray(est.mean(g), np.float64)
            keep[g + "_se"] = np.asarray(est.se(g), np.float64)
    return {
        **timing,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
    }


def agreement(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per kernel: ``max |z|``, fraction ``|z| > 2``, and the mean relative SE."""
    out = {}
    for g in GET:
        se = np.sqrt(ours[g + "_se"] ** 2 + ref[g + "_se"] ** 2)
        z = (ours[g] - ref[g]) / np.where(se > 0, se, np.inf)
        out[g] = {
            "max_abs_z": float(np.abs(z).max()),
            "frac_abs_z_gt_2": float(np.mean(np.abs(z) > 2)),
            "rel_se": float(np.mean(ours[g + "_se"]) / np.mean(np.abs(ours[g]))),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--length", type=int, default=16)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--draws", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--configs", default="default,vmap0,fastest,jacobian")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--nt-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--agreement", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.nt_worker:
        nt_worker(args)
        return

    # NT then infattn for each configuration, back to back, so that both see the same
    # load on a shared machine; then NT's per-draw kernels for the agreement check.
    nt_t: dict[str, Any] = {}
    ours_t: dict[str, Any] = {}
    ours_arrays: dict[str, np.ndarray] = {}
    names = args.configs.split(",")
    for i, name in enumerate(names):
        nt_res, _ = run_nt(args, name)
        nt_t[name] = nt_res["timings"][name]
        ours_t[name] = time_infattn(args, name, ours_arrays if i == 0 else None)
    _, nt_arrays = run_nt(args, names[0], agreement=True)
    print(
        f"monte_carlo_kernel_fn, benchmark transformer, N={args.n} L={args.length} "
        f"C={args.channels}, {args.draws} draws, get=('nngp','ntk'), x2=None, "
        f"NT {nt_res['versions']['neural_tangents']} (jax {nt_res['versions']['jax']}) vs "
        f"infattn (jax {ours_t[names[0]]['jax']}, {ours_t[names[0]]['backend']})"
    )
    print(
        f"{'config':<10}{'NT first':>10}{'NT steady':>11}{'ours first':>12}"
        f"{'ours steady':>13}{'NT/ours':>9}{'NT cpu':>9}{'ours cpu':>10}{'NT/ours':>9}"
        f"  load (NT, ours)"
    )
    for name in names:
        a, b = nt_t[name], ours_t[name]
        print(
            f"{name:<10}{a['first_s']:>10.2f}{a['steady_s']:>11.2f}{b['first_s']:>12.2f}"
            f"{b['steady_s']:>13.2f}{a['steady_s'] / b['steady_s']:>8.1f}x"
            f"{a['steady_cpu_s']:>9.2f}{b['steady_cpu_s']:>10.2f}"
            f"{a['steady_cpu_s'] / b['steady_cpu_s']:>8.1f}x"
            f"  {a['load'][0]:.1f}, {b['load'][0]:.1f}"
        )
    agree = agreement(ours_arrays, nt_arrays)
    for g, a in agree.items():
        print(
            f"agreement {g} ({names[0]}): max|z| = {a['max_abs_z']:.2f}, |z|>2 in "
            f"{100 * a['frac_abs_z_gt_2']:.1f}% of entries (mean rel. SE {a['rel_se']:.3f})"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps({"nt": nt_t, "infattn": ours_t, "agreement": agree}, indent=2)
        )


if __name__ == "__main__":
    main()
