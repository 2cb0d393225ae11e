"""Standard-scaling (1/sqrt(d)) attention in the infinite-head limit: speed, accuracy, memory.

Benchmarks :func:`infattn.logits.standard_attention_mc` on the typical inputs of the
project brief: ``N x L x C`` standard-normal inputs (default 16 x 16 x 16), input
covariance ``x x^T / C`` for both the queries/keys (``S``) and the values (``V``),
``qk_std = 1``, ``x2 = None`` (joint sampling), float32, ``DEFAULT_MC_SAMPLES`` draws::

    python benchmarks/standard_attention.py                 # everything (memory probes: minutes)
    python benchmarks/standard_attention.py --skip-memory   # timings, SEs, variance reduction
    python benchmarks/standard_attention.py --json out.json

Prints

1. timings: first call (compile + run) and the best of ``--repeats`` further calls, wall
   and process CPU seconds, for the nngp alone and for nngp + NTK (NTK input ``T = S``);
2. relative standard errors of the nngp, ``se / sqrt(nngp_aa(x,x) nngp_bb(x',x'))``
   (max and median over all entries) and, for reference, the share of entries whose
   literal ``se / |nngp|`` is <= 1e-2 (cross-example entries near 0 cannot meet that);
3. variance reduction: per-entry ``var(plain MC) / var(scheme)`` at equal numbers of draws
   (mean, median, min, and the ratio for the worst entry), with the time ratio, so that
   ``variance ratio / time ratio`` is the gain per unit of work;
4. memory for ``N=128, L=64`` (``--memory-samples`` draws, SOFTMAX, nngp), each in a fresh
   subprocess: peak resident memory (``ru_maxrss``) and the time, for the joint scheme
   (``x2 = None``) and the pairwise scheme (``x2`` given, 128 x 128 pairs).

With ``--layer`` it instead times the layer as a user meets it: ``kernel_fn`` of
``stax.GlobalSelfAttention(C, C, C, 1, linear_scaling=False)`` (SOFTMAX) on random
``N x L x C`` inputs, ``get=("nngp", "ntk")`` (``--skip-ntk``: the nngp alone),
once with ``--samples`` fixed draws (default ``DEFAULT_MC_SAMPLES``) and once with
``mc_samples="auto"`` at ``--target`` (default 1%), printing the wall time, the draws
taken (the nngp's, and in brackets the NTK's: an automatic run stops drawing the NTK
once it meets the target) and the relative standard error reached: the driver's
criterion, and the worst and median entries of the Kernel's ``nngp_se``/``ntk_se`` over
each entry's natural scale ``sqrt(K_aa(x, x) K_bb(x', x'))`` (the criterion is that
same maximum, so after an automatic stop both are at most the target)::

    python benchmarks/standard_attention.py --layer --n 2 --length 512 --channels 8

It also prints the load average, the GFLOP/s of a float32 ``2048 x 2048`` matrix product
timed in the same run (this CPU's practical peak at that load), the estimator's path
(``factored`` with the ranks, ``O(L^3)``, or ``V factor`` for the nngp alone) with its
flop estimate per draw, and each run's GFLOP/s (estimate times draws over wall time,
setup included; nngp-only draws counted at ``4 L^2 r_V`` per pair and evaluation).

Timings on the shared 2-core CPU are noisy: compare numbers from the same run only.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import subprocess
import sys
import time
import warnings

import numpy as np


def make_kernel(n: int, length: int, channels: int, seed: int = 0):
    import jax.numpy as jnp

    x = np.random.RandomState(seed).standard_normal((n, length, channels)).astype(np.float32)
    flat = x.reshape(n * length, channels)
    k = (flat @ flat.T / channels).reshape(n, length, n, length).transpose(0, 2, 1, 3)
    return jnp.asarray(k)


def bdiag(k):
    import jax.numpy as jnp

    return jnp.diagonal(k, axis1=0, axis2=1).transpose(2, 0, 1)


def estimate(k, mechanism, n_samples, ntk=False, vr="auto", cross=False, seed=0):
    import jax

    from infattn import logits

    trip = (k, bdiag(k), bdiag(k) if cross else None)
    out = logits.standard_attention_mc(
        trip,
        trip,
        k if ntk else None,
        k if ntk else None,
        None,
        None,
        mechanism,
        1.0,
        n_samples=n_samples,
        seed=seed,
        variance_reduction=vr,
    )
    jax.block_until_ready(out)
    return out


def timed(fn, repeats):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    first = time.perf_counter() - start
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        best_wall = min(best_wall, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return out, {"first_s": first, "wall_s": best_wall, "cpu_s": best_cpu}


def relative_se(est):
    d = np.einsum("iiaa->ia", np.asarray(est.nngp))
    scale = np.sqrt(np.abs(d[:, None, :, None] * d[None, :, None, :]))
    rel = np.asarray(est.nngp_se) / scale
    literal = np.asarray(est.nngp_se) / np.maximum(np.abs(np.asarray(est.nngp)), 1e-30)
    return {
        "max": float(rel.max()),
        "median": float(np.median(rel)),
        "share_literal_le_1e-2": float(np.mean(literal <= 1e-2)),
    }


def variance_ratio(plain, best):
    out = {}
    for field in ("nngp", "ntk"):
        a = getattr(plain, field + "_se")
        if a is None:
            continue
        a, b = np.asarray(a), np.asarray(getattr(best, field + "_se"))
        keep = a > 1e-9 * a.max()
        r = a[keep] ** 2 / np.maximum(b[keep], 1e-300) ** 2
        out[field] = {
            "mean": float(r.mean()),
            "median": float(np.median(r)),
            "min": float(r.min()),
            "worst_entry": float((a.max() / b.max()) ** 2),
        }
    return out


def probe(mode: str, n: int, length: int, channels: int, draws: int) -> None:
    """Run in a fresh process: time and peak RSS of one N x L estimate."""
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    k = make_kernel(n, length, channels)
    start = time.perf_counter()
    estimate(k, "SOFTMAX", draws, cross=(mode == "pairwise"))
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    output_gb = n * n * length * length * 4 / 1e9
    print(
        json.dumps(
            {
                "mode": mode,
                "seconds": elapsed,
                "peak_rss_gb": peak / 1e6,
                "rss_before_gb": base / 1e6,
                "output_gb": output_gb,
            }
        )
    )


def natural_se(k, field: str) -> dict:
    """Max and median of ``k.<field>_se`` over ``sqrt(K_aa(x, x) K_bb(x', x'))``."""
    d = np.einsum("iiaa->ia", np.asarray(getattr(k, field)))
    scale = np.sqrt(np.abs(d[:, None, :, None] * d[None, :, None, :]))
    rel = np.asarray(getattr(k, field + "_se")) / scale
    return {"max": float(rel.max()), "median": float(np.median(rel))}


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the best of ``repeats`` float32 ``n x n`` matrix products (this CPU's
    practical peak at the current load)."""
    import jax
    import jax.numpy as jnp

    a = jnp.asarray(np.random.RandomState(0).standard_normal((n, n)), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(a))
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def layer_flops_per_draw(x, ntk: bool) -> tuple[float, str]:
    """Flop estimate of one draw (both antithetic twins) of the layer's joint
    estimator on ``x`` (``S = V = x x^T / C``, ``T = T_v = 0``) and the path taken:
    ``'factored'`` (``4 L^2 r`` per pair and evaluation), ``'O(L^3)'`` (24 products
    of ``L x L`` per pair) or, for the nngp alone, ``'V factor'`` (``2 (N L)^2 r_V``)."""
    import jax.numpy as jnp

    from infattn.logits import factored
    from infattn.logits.inputs import attention_inputs
    from infattn.logits.sampling import sym_factor

    n, l, _ = x.shape
    k = _kernel_of(x)
    trip = (k, bdiag(k), None)
    if not ntk:
        r_v = int(jnp.sum(sym_factor(k.transpose(0, 2, 1, 3).reshape(n * l, n * l))[1] > 0))
        if r_v <= 2 * l:
            return 2 * 2 * (n * l) ** 2 * r_v, "V factor"
        return 2 * n * n * 4 * l**3, "O(L^3)"
    f = factored.joint_factors(attention_inputs(trip, trip, 0 * k, 0 * k, None, None), "SOFTMAX")
    if f is None:
        return 2 * n * n * factored.full_pair_flops(l, "SOFTMAX"), "O(L^3)"
    return 2 * n * n * factored.pair_flops(f), f"factored, ranks {factored.ranks(f)}"


def nngp_only_flops(x) -> float:
    """Flops of one draw (both twins) of the factored path once the NTK has met its
    target and the nngp goes on alone: ``4 L^2 r_V`` per pair and evaluation."""
    from infattn.logits import factored
    from infattn.logits.inputs import attention_inputs

    n, l, _ = x.shape
    k = _kernel_of(x)
    trip = (k, bdiag(k), None)
    f = factored.joint_factors(attention_inputs(trip, trip, 0 * k, 0 * k, None, None), "SOFTMAX")
    r_v = 0 if f is None else factored.ranks(f)[0]
    return 2 * n * n * 4 * l * l * r_v


def _kernel_of(x):
    import jax.numpy as jnp

    n, l, c = x.shape
    flat = x.reshape(n * l, c)
    return jnp.asarray((flat @ flat.T / c).reshape(n, l, n, l).transpose(0, 2, 1, 3))


def layer_run(x, mc_samples, target: float, ntk: bool) -> dict:
    """Wall time, draws and relative SEs of one ``kernel_fn`` call of the layer."""
    import jax

    from infattn import stax

    c = x.shape[-1]
    kernel_fn = stax.GlobalSelfAttention(
        c, c, c, 1, linear_scaling=False, mc_samples=mc_samples, mc_target_rse=target
    )[2]
    records = _Records()
    logger = logging.getLogger("infattn.logits.driver")
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    start = time.perf_counter()
    try:
        get = ("nngp", "ntk", "nngp_se", "ntk_se") if ntk else ("nngp", "nngp_se")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            k = jax.block_until_ready(kernel_fn(x, get=get))
    finally:
        logger.removeHandler(records)
    records.messages += [str(w.message) for w in caught]
    wall = time.perf_counter() - start
    draws = mc_samples
    for message in records.messages:
        for marker in ("after ", "cap of "):
            if marker in message:
                draws = int(message.split(marker)[1].split()[0])
    ntk_draws = draws
    for message in records.messages:
        if "for the NTK)" in message:
            ntk_draws = int(message.split("(")[-1].split()[0])
    return {
        "mc_samples": mc_samples,
        "draws": draws,
        "ntk_draws": ntk_draws if ntk else 0,
        "wall_s": wall,
        "driver": records.messages,
        "nngp_rel_se": natural_se(k, "nngp"),
        "ntk_rel_se": natural_se(k, "ntk") if ntk else None,
    }


def layer_benchmark(args) -> dict:
    """Fixed draws (before) against ``mc_samples="auto"`` (after), one process."""
    from infattn import logits

    x = np.random.RandomState(0).standard_normal((args.n, args.length, args.channels))
    x = x.astype(np.float32)
    fixed = args.samples or logits.DEFAULT_MC_SAMPLES
    print(
        f"kernel_fn of GlobalSelfAttention(SOFTMAX, linear_scaling=False), N={args.n} "
        f"L={args.length} C={args.channels}, {'nngp' if args.skip_ntk else 'nngp+ntk'}, float32"
    )
    peak = matmul_peak()
    flops, path = layer_flops_per_draw(x, not args.skip_ntk)
    print(
        f"  load average {os.getloadavg()[0]:.1f}; float32 2048^2 matmul {peak:.0f} GFLOP/s; "
        f"path {path}: {flops / 1e9:.3g} GFLOP per draw (estimate)",
        flush=True,
    )
    nngp_flops = nngp_only_flops(x) if "factored" in path else flops
    out = {"matmul_gflops": peak, "path": path, "gflop_per_draw": flops / 1e9}
    for label, samples in (("auto", "auto"), ("fixed", fixed)):
        if label in args.layer_skip:
            continue
        r = layer_run(x, samples, args.target, not args.skip_ntk)
        ntk = r["ntk_rel_se"] or {"max": math.nan, "median": math.nan}
        work = flops * r["ntk_draws"] + nngp_flops * (r["draws"] - r["ntk_draws"])
        r["gflops"] = work / r["wall_s"] / 1e9
        out[label] = r
        print(
            f"  {label:5s} mc_samples={samples!s:6s} {r['draws']:6d} draws "
            f"({r['ntk_draws']} for the NTK) {r['wall_s']:8.1f} s "
            f"({r['gflops']:.1f} GFLOP/s, {r['gflops'] / peak:.0%} of the matmul) rel SE nngp max "
            f"{r['nngp_rel_se']['max']:.4f} median {r['nngp_rel_se']['median']:.4f}, ntk max "
            f"{ntk['max']:.4f} median {ntk['median']:.4f}",
            flush=True,
        )
        for message in r["driver"]:
            print(f"        {message}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--length", type=int, default=16)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--samples", type=int, default=None, help="default: DEFAULT_MC_SAMPLES")
    ap.add_argument("--vr-samples", type=int, default=2048, help="draws for the variance ratios")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-ntk", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-samples", type=int, default=16)
    ap.add_argument("--json", default=None)
    ap.add_argument("--layer", action="store_true", help="time the layer, fixed vs auto")
    ap.add_argument("--target", type=float, default=0.01, help="--layer: auto's target")
    ap.add_argument("--layer-skip", default="", help="--layer: 'fixed' or 'auto' to skip")
    ap.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        probe(args.probe, 128, 64, args.channels, args.memory_samples)
        return

    if args.layer:
        report = layer_benchmark(args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=2)
        return

    import jax

    from infattn import logits

    n_samples = args.samples or logits.DEFAULT_MC_SAMPLES
    k = make_kernel(args.n, args.length, args.channels)
    report = {"config": vars(args) | {"samples": n_samples, "backend": jax.default_backend()}}
    print(
        f"N={args.n} L={args.length} C={args.channels}, {n_samples} draws, "
        f"backend {jax.default_backend()}, float32, x2=None\n"
    )

    print("1. time (s): first call | best wall | best CPU   and   2. relative SE of the nngp")
    report["timing"], report["relative_se"] = {}, {}
    for mech in ("SOFTMAX", "ABS", "RELU"):
        est, t = timed(lambda m=mech: estimate(k, m, n_samples), args.repeats)
        rel = relative_se(est)
        report["timing"][mech] = {"nngp": t}
        report["relative_se"][mech] = rel
        line = (
            f"  {mech:8s} nngp     {t['first_s']:6.2f} | {t['wall_s']:6.2f} | {t['cpu_s']:6.2f}"
            f"   rel SE max {rel['max']:.4f} median {rel['median']:.5f}"
            f" (literal se/|v| <= 1e-2: {100 * rel['share_literal_le_1e-2']:.0f}% of entries)"
        )
        print(line, flush=True)
        if not args.skip_ntk:
            _, t = timed(lambda m=mech: estimate(k, m, n_samples, ntk=True), 1)
            report["timing"][mech]["nngp+ntk"] = t
            print(
                f"  {mech:8s} nngp+ntk {t['first_s']:6.2f} | {t['wall_s']:6.2f} | "
                f"{t['cpu_s']:6.2f}",
                flush=True,
            )

    print(
        f"\n3. variance reduction vs plain MC ({args.vr_samples} draws each, per-entry "
        "var ratio: mean / median / min / worst entry; time ratio)"
    )
    report["variance_reduction"] = {}
    cases = [
        ("SOFTMAX", "antithetic"),
        ("ABS", "hermite"),
        ("ABS", "hermite2"),
        ("RELU", "hermite"),
        ("RELU", "hermite2"),
    ]
    ntk = not args.skip_ntk
    for mech, vr in cases:
        plain, tp = timed(lambda m=mech: estimate(k, m, args.vr_samples, ntk=ntk, vr="none"), 1)
        best, tb = timed(lambda m=mech, v=vr: estimate(k, m, args.vr_samples, ntk=ntk, vr=v), 1)
        ratio = variance_ratio(plain, best)
        ratio["time_ratio"] = tb["wall_s"] / tp["wall_s"]
        report["variance_reduction"][f"{mech}/{vr}"] = ratio
        for field in ("nngp", "ntk"):
            if field in ratio:
                r = ratio[field]
                print(
                    f"  {mech:8s} {vr:10s} {field:4s} {r['mean']:9.1f} / {r['median']:8.1f} / "
                    f"{r['min']:7.2f} / {r['worst_entry']:7.2f}   time x{ratio['time_ratio']:.2f}",
                    flush=True,
                )

    if not args.skip_memory:
        print(
            f"\n4. N=128, L=64, C={args.channels}, SOFTMAX nngp, {args.memory_samples} draws "
            "(fresh process each)"
        )
        report["memory"] = {}
        for mode in ("joint", "pairwise"):
            res = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--probe",
                    mode,
                    "--channels",
                    str(args.channels),
                    "--memory-samples",
                    str(args.memory_samples),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            info = json.loads(res.stdout.strip().splitlines()[-1])
            report["memory"][mode] = info
            print(
                f"  {mode:8s} {info['seconds']:7.1f} s   peak RSS {info['peak_rss_gb']:.2f} GB "
                f"(the float32 nngp itself: {info['output_gb']:.2f} GB)",
                flush=True,
            )

    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
