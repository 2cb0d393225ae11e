"""Time neural-tangents 0.6.5 on the benchmark model; run with the reference env's python.

    $INFATTN_REF_ENV/bin/python benchmarks/_nt_timing.py --n 32 --length 32 --channels 16 \
        --repeats 5 --out /tmp/nt.npz

Prints one JSON line (timings, versions) on stdout and saves the outputs to ``--out``.
Launched by ``kernel_speed.py``; float32 (jax's default dtype).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import make_inputs, time_kernel_fn
from models import benchmark_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--length", type=int, required=True)
    parser.add_argument("--channels", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--first-repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import jax
    import neural_tangents
    import numpy as np
    from neural_tangents import stax

    _, _, kernel_fn = benchmark_model(stax)
    x = make_inputs(args.n, args.length, args.channels)
    result = time_kernel_fn(jax, kernel_fn, x, args.repeats, args.first_repeats)
    np.savez(args.out, **result.pop("outputs"))
    result["versions"] = {"neural_tangents": neural_tangents.__version__, "jax": jax.__version__}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
