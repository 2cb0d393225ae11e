"""Kernel experiments on data: kernels in blocks, NNGP/NTK inference, scores.

:func:`run` takes a :class:`~infattn.data.Dataset` and an architecture name
(:mod:`infattn.architectures`), computes the train-train and test-train NNGP and
NTK in blocks of examples (:func:`kernel_blocks`, with a progress bar), and
scores the NNGP posterior mean and the converged NTK ensemble mean
(:func:`infattn.predict.gp_inference`) on the test set: accuracy of the argmax
and mean squared error against the centred one-hot targets. ``infattn
experiment`` and the notebooks call it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infattn import architectures, predict

BLOCK_ENTRIES = 2**24
"""Target size ``b * b * P * P`` of the largest intermediate kernel of one block."""


def block_size(positions: int, n: int) -> int:
    """Examples per block (a power of two in [8, 1024], at most ``n`` rounded up).

    Example:
      >>> block_size(positions=64, n=1000), block_size(positions=1, n=100)
      (64, 128)
    """
    b = 2 ** int(math.log2(max(1.0, math.sqrt(BLOCK_ENTRIES) / positions)))
    return int(min(max(b, 8), 1024, 2 ** math.ceil(math.log2(max(n, 1)))))


def kernel_blocks(
    kernel_fn: Any,
    x1: np.ndarray,
    x2: np.ndarray | None = None,
    *,
    mask_constant: float | None = None,
    block: int | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """``{"nngp", "ntk"}`` of shape ``(N1, N2)`` computed in blocks of examples.

    ``x2=None`` computes the symmetric ``x1``-``x1`` kernels from the upper
    triangle of blocks. Every block has the same shape (the last ones are padded
    and cropped), so the jitted ``kernel_fn`` compiles once. A Monte Carlo model
    (not :func:`~infattn.scale.job.is_pairwise`) is called un-jitted: its sampler
    then runs chunk by chunk from Python, with its progress bar, and ``Ctrl-C``
    stops it between two chunks instead of after the whole block. The model must pool
    or flatten (kernels without spatial axes); else a ``ValueError``.

    Example:
      >>> from infattn import stax
      >>> _, _, kernel_fn = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1))
      >>> x = np.random.default_rng(0).standard_normal((5, 3))
      >>> k = kernel_blocks(kernel_fn, x, block=2, progress=False)
      >>> bool(np.allclose(k["nngp"], kernel_fn(x, None, "nngp")))
      True
    """
    from tqdm.auto import tqdm

    symmetric = x2 is None
    x2 = x1 if symmetric else x2
    b = block or block_size(math.prod(x1.shape[1:-1]), max(len(x1), len(x2)))
    from infattn.scale.job import is_pairwise

    def f(a: np.ndarray, c: np.ndarray) -> Any:
        return kernel_fn(a, c, ("nngp", "ntk"), mask_constant=mask_constant)

    if is_pairwise(kernel_fn):
        f = jax.jit(f)
    starts1, starts2 = range(0, len(x1), b), range(0, len(x2), b)
    pairs = [(i, j) for i in starts1 for j in starts2 if not symmetric or j >= i]
    out = {g: np.zeros((len(x1), len(x2)), dtype=x1.dtype) for g in ("nngp", "ntk")}
    for i, j in tqdm(pairs, desc="kernel blocks", disable=not progress, leave=False):
        k = f(_padded(x1, i, b), _padded(x2, j, b))
        for g in out:
            value = np.asarray(getattr(k, g))
            if value.ndim != 2:
                raise ValueError(
                    f"kernel_blocks: the model's kernel has shape {value.shape[:2]} + "
                    f"{value.shape[2:]}; pool or flatten to (N1, N2) before the readout"
                )
            n1, n2 = min(b, len(x1) - i), min(b, len(x2) - j)
            out[g][i : i + n1, j : j + n2] = value[:n1, :n2]
            if symmetric and j > i:
                out[g][j : j + n2, i : i + n1] = value[:n1, :n2].T
    return out


def _padded(x: np.ndarray, start: int, b: int) -> np.ndarray:
    """Rows ``start:start + b`` of ``x``, padded by repeating row ``start`` to ``b`` rows."""
    part = x[start : start + b]
    if len(part) == b:
        return part
    return np.concatenate([part, np.repeat(part[:1], b - len(part), axis=0)])


@dataclasses.dataclass(frozen=True)
class Scores:
    """Test-set scores of one kernel's predictions."""

    test_accuracy: float
    test_mse: float


@dataclasses.dataclass(frozen=True)
class Result:
    """One architecture on one data set: NNGP and NTK scores, kernel time, device, dtype."""

    architecture: str
    dataset: str
    n_train: int
    n_test: int
    nngp: Scores
    ntk: Scores
    kernel_seconds: float
    device: str
    dtype: str
    diag_reg: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def scores(prediction: np.ndarray, y_test: np.ndarray, labels_test: np.ndarray) -> Scores:
    """Accuracy of ``argmax(prediction)`` and mean squared error per output entry.

    Example:
      >>> y = np.array([[1.0, 0.0], [0.0, 1.0]])
      >>> scores(np.array([[0.5, 0.0], [1.0, 0.0]]), y, np.array([0, 1]))
      Scores(test_accuracy=0.5, test_mse=0.5625)
    """
    prediction = np.asarray(prediction)
    accuracy = float(np.mean(prediction.argmax(axis=-1) == labels_test))
    return Scores(accuracy, float(np.mean((prediction - y_test) ** 2)))


def evaluate(
    k_dd: dict[str, np.ndarray], k_td: dict[str, np.ndarray], data: Any, diag_reg: float = 1e-4
) -> tuple[Scores, Scores]:
    """NNGP and NTK test scores from train-train ``(n, n)`` and test-train ``(m, n)`` kernels.

    ``k_dd``/``k_td``: ``{"nngp", "ntk"}`` on the first ``n`` training and ``m`` test
    examples of ``data`` (a :class:`~infattn.data.Dataset`), so kernels computed once
    on a large set score every smaller training set by slicing.

    Example:
      >>> from infattn.data import Dataset
      >>> x = np.eye(2, dtype=np.float32)
      >>> d = Dataset.from_labels("toy", ((x, [0, 1]), (x, [0, 1])), ("a", "b"))
      >>> k = {"nngp": x, "ntk": x}
      >>> evaluate(k, k, d)[1].test_accuracy
      1.0
    """
    n, m = len(k_dd["nngp"]), len(k_td["nngp"])
    y_train = jnp.asarray(data.y_train[:n], np.asarray(k_dd["nngp"]).dtype)
    means = predict.gp_inference(predict.KernelPair(**k_dd), y_train, diag_reg)(
        ("nngp", "ntk"), predict.KernelPair(**k_td)
    )
    y_test, labels = data.y_test[:m], data.labels_test[:m]
    return scores(means.nngp, y_test, labels), scores(means.ntk, y_test, labels)


def device_name() -> str:
    """``platform:kind`` of the default device, e.g. ``cpu:cpu`` or ``gpu:NVIDIA H100``."""
    d = jax.devices()[0]
    return f"{d.platform}:{d.device_kind}"


def run(
    data: Any,
    architecture: str,
    *,
    dtype: str = "float32",
    diag_reg: float = 1e-4,
    width: int = architectures.DEFAULT_WIDTH,
    progress: bool = True,
    store: str | os.PathLike | None = None,
) -> Result:
    """Kernels of ``architecture`` on ``data``, NNGP and NTK inference, test scores.

    ``dtype`` ``"float64"`` needs ``jax_enable_x64``. ``diag_reg`` is relative
    to the train kernel's mean diagonal (as in :func:`infattn.predict.gp_inference`).
    ``store``: a directory keeping the kernels in a resumable zarr store per data
    set, architecture, size and dtype (:func:`infattn.scale.compute_kernels`), so an
    interrupted run resumes and a finished one is read back instead of recomputed.
    """
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError("dtype='float64' needs jax.config.update('jax_enable_x64', True)")
    arch = architectures.get(architecture)
    _, _, kernel_fn = arch.build(data.x_train.ndim - 2, data.y_train.shape[-1], width)
    x_train, x_test = (np.asarray(x, dtype=dtype) for x in (data.x_train, data.x_test))
    kw = {"mask_constant": data.mask_constant, "progress": progress}
    start = time.perf_counter()
    if store is None:
        k_dd = kernel_blocks(kernel_fn, x_train, **kw)
        k_td = kernel_blocks(kernel_fn, x_test, x_train, **kw)
    else:
        from infattn.scale import compute_kernels

        name = f"{data.name}-{architecture}-{dtype}-n{len(x_train)}-m{len(x_test)}"
        kernels = compute_kernels(kernel_fn, x_train, x_test, Path(store) / name, **kw)
        k_dd, k_td = kernels.load_part("train_train"), kernels.load_part("test_train")
    seconds = time.perf_counter() - start
    nngp, ntk = evaluate(k_dd, k_td, data, diag_reg)
    return Result(
        architecture=architecture,
        dataset=data.name,
        n_train=len(x_train),
        n_test=len(x_test),
        nngp=nngp,
        ntk=ntk,
        kernel_seconds=round(seconds, 3),
        device=device_name(),
        dtype=dtype,
        diag_reg=diag_reg,
    )
