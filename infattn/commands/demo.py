"""``infattn demo``: an attention network's kernels, analytic and from finite networks."""

from __future__ import annotations

import argparse

import numpy as np

NAME = "demo"
HELP = "print an attention network's analytic NNGP/NTK next to finite networks' Monte Carlo"


def _decay(d):
    return 1.0 / (1.0 + d**2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--draws", type=int, default=128, help="finite networks to average")
    parser.add_argument("--width", type=int, default=256, help="finite key/value width")
    parser.add_argument("--heads", type=int, default=8)


def run(args: argparse.Namespace) -> int:
    import jax

    from infattn import stax
    from infattn.empirical import monte_carlo_kernel_fn

    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Dense(args.width, b_std=0.1),
        stax.GlobalSelfAttention(
            args.width,
            args.width,
            args.width,
            args.heads,
            pos_emb_type="SUM",
            pos_emb_decay_fn=_decay,
        ),
        stax.LayerNorm(),
        stax.GlobalAvgPool(),
        stax.Dense(1),
    )
    x = np.random.default_rng(0).standard_normal((4, 8, 3))
    exact = kernel_fn(x, None, ("nngp", "ntk"))
    mc = monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(0), args.draws, vmap_axes=0)
    est = mc(x, None, ("nngp", "ntk"), return_se=True)
    print(f"Dense -> softmax attention ({args.heads} heads) -> LayerNorm -> pool -> Dense")
    print(f"inputs {x.shape}; finite networks: width {args.width}, {args.draws} draws\n")
    print(f"{'kernel':6} {'pair':6} {'infinite width':>15} {'finite (mean ± SE)':>24}")
    for kind in ("nngp", "ntk"):
        mean, se = np.asarray(est.mean(kind)), np.asarray(est.se(kind))
        ref = np.asarray(getattr(exact, kind))
        for i, j in ((0, 0), (0, 1), (2, 3)):
            pair = f"({i},{j})"
            print(f"{kind:6} {pair:6} {ref[i, j]:15.5f} {mean[i, j]:15.5f} ± {se[i, j]:.5f}")
    return 0
