"""A small attention model and inputs for the scale tests, and a command running them.

``python -m tests.scale.runner STORE [--slow SECONDS] [--tile T] [--dask ADDRESS]``
computes the model's kernels into ``STORE`` with :func:`infattn.scale.compute_kernels`
and exits with 130 on Ctrl-C. ``--slow`` makes every tile sleep (inside the compiled
kernel, through a host callback) so that a test can interrupt it mid-tile.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import numpy as np

from infattn import stax

N_TRAIN, N_TEST, LENGTH, CHANNELS = 11, 5, 4, 3


def decay(d):
    return 1.0 / (1.0 + d**2)


def model():
    """``kernel_fn`` of Dense -> softmax attention -> LayerNorm -> pool -> Dense."""
    return stax.serial(
        stax.Dense(16, b_std=0.1),
        stax.GlobalSelfAttention(16, 16, 16, 2, pos_emb_type="SUM", pos_emb_decay_fn=decay),
        stax.LayerNorm(),
        stax.GlobalAvgPool(),
        stax.Dense(1),
    )[2]


def inputs():
    """``x_train (11, 4, 3)``, ``x_test (5, 4, 3)`` in float64."""
    rng = np.random.default_rng(0)
    return (
        rng.standard_normal((N_TRAIN, LENGTH, CHANNELS)),
        rng.standard_normal((N_TEST, LENGTH, CHANNELS)),
    )


def slow(kernel_fn, seconds: float):
    """``kernel_fn`` whose every compiled call also sleeps ``seconds`` on the host."""

    def pause(x):
        time.sleep(seconds)
        return x

    def slow_kernel_fn(x1, x2=None, get=None, *, mask_constant=None):
        out = kernel_fn(x1, x2, get, mask_constant=mask_constant)
        first = getattr(out, out._fields[0])
        spec = jax.ShapeDtypeStruct(first.shape, first.dtype)
        delayed = jax.pure_callback(pause, spec, first, vmap_method="broadcast_all")
        return out._replace(**{out._fields[0]: delayed})

    return slow_kernel_fn


def main(argv: list[str] | None = None) -> int:
    from infattn.scale import compute_kernels

    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("--slow", type=float, default=0.0)
    parser.add_argument("--tile", type=int, default=3)
    parser.add_argument("--dask", default=None)
    args = parser.parse_args(argv)
    kernel_fn = slow(model(), args.slow) if args.slow else model()
    x_train, x_test = inputs()
    try:
        compute_kernels(kernel_fn, x_train, x_test, args.store, tile_size=args.tile, dask=args.dask)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
