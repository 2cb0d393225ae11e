"""Kernels of large datasets, tile by tile, into a resumable on-disk store.

:func:`compute_kernels` is the entry point: it sizes tiles from a memory budget,
creates the store (or reopens it, refusing one written with other settings) and
computes the tiles not written yet, on this process's devices or on Dask workers.
Calling it again with the same arguments after any interruption finishes the store,
and the arrays are bit for bit those of an uninterrupted run: every tile is computed
by the same compiled function on the same padded inputs, whatever ran before it.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from infattn.scale import memory
from infattn.scale.job import TileJob, array_fingerprint, is_pairwise
from infattn.scale.store import FORMAT, KINDS, KernelStore, Layout

MAX_TILE = 4096
"""Largest tile size chosen from a budget: keeps chunks <= 128 MiB and progress granular."""


def compute_kernels(
    kernel_fn: Callable[..., Any],
    x_train: Any,
    x_test: Any,
    path: str | os.PathLike,
    *,
    get: str | Sequence[str] = ("nngp", "ntk"),
    dtype: Any = None,
    mask_constant: float | None = None,
    memory_budget: int | str | None = None,
    tile_size: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    dask: Any = None,
    dask_workers: int = 1,
    progress: bool = True,
    description: str | None = None,
) -> KernelStore:
    """Write ``kernel_fn``'s train-train, test-train and test-diagonal kernels to ``path``.

    ``x_train``: ``(N, *spatial, C)``; ``x_test``: ``(M, *spatial, C)`` or ``None``.
    The store (zarr, see :mod:`infattn.scale.store`) holds for each kind in ``get``
    ``train_train (N, N)``, ``test_train (M, N)`` and ``test_diag (M,)``. The model
    must output one number per pair of inputs (pool or flatten spatial axes). A
    model that samples a batch jointly (standard-scaling Monte Carlo attention) gets
    its train kernel from one ``kernel_fn(x_train, None)`` call (a single tile, so
    positive semi-definite as that call is) and its test rows in tiles.

    ``dtype``: compute and storage dtype (default: ``x_train``'s, float32 for
    integers); float64 turns on ``jax_enable_x64`` for the computation only.
    ``memory_budget``: bytes (or ``"512MiB"``) one tile may use on one device
    (default: 75% of the free memory JAX reports, 1 GiB on CPU); ``tile_size``:
    examples per tile (test rows per tile for joint models), overriding the budget's
    choice; resuming keeps the store's. ``devices``: where tiles run
    (default ``jax.local_devices()``). ``dask``: ``None`` (this process),
    ``"local"`` (a ``LocalCluster`` of ``dask_workers`` processes on 127.0.0.1), a
    scheduler address or a ``distributed.Client``. ``description``: free text kept
    in the manifest. Returns the complete store; ``KeyboardInterrupt`` leaves it
    resumable.

    Example:
      >>> import tempfile
      >>> from infattn import stax
      >>> _, _, kernel_fn = stax.serial(stax.Dense(8), stax.Relu(), stax.Flatten(), stax.Dense(1))
      >>> x = np.random.default_rng(0).standard_normal((5, 3))
      >>> store = compute_kernels(
      ...     kernel_fn, x, x[:2], tempfile.mkdtemp() + "/k", tile_size=2, progress=False
      ... )
      >>> store.load("ntk", "train_train").shape, store.load("nngp", "test_diag").shape
      ((5, 5), (2,))
    """
    kinds = _kinds(get)
    x_train, x_test = _inputs(x_train, x_test, dtype)
    devices = list(devices or jax.local_devices())
    path = os.fspath(path)
    layout = Layout(len(x_train), len(x_test), 1)
    joint = not is_pairwise(kernel_fn)
    job = TileJob(kernel_fn, x_train, x_test, layout, kinds, mask_constant, path, joint)
    job.check_model()
    manifest = _manifest(job, description)
    sizes = _given_sizes(job, tile_size)
    existing = _existing(path)
    if existing is not None:  # refuse a foreign store before any costly sizing
        sizes = sizes or (existing.layout.tile, existing.layout.test_tile)
        existing.require({**manifest, "tile_size": sizes[0], "test_tile_size": sizes[1]})
    budget = None if memory_budget is None else memory.parse_size(memory_budget)
    if sizes is None:
        sizes = _choose_sizes(job, budget or memory.default_budget(devices))
    elif budget is not None:
        _require_fit(job, sizes, budget)
    manifest.update(tile_size=sizes[0], test_tile_size=sizes[1])
    store = KernelStore.create_or_open(path, manifest)
    job = dataclasses.replace(job, layout=store.layout)
    tiles = store.pending()
    total = len(store.layout.tiles())
    with tqdm(
        total=total,
        initial=total - len(tiles),
        unit="tile",
        desc=f"kernels -> {os.path.basename(path)}",
        disable=not progress,
    ) as bar:
        if dask is None:
            from infattn.scale.local import run_local

            run_local(job, tiles, devices, bar)
        else:
            from infattn.scale.cluster import run_dask

            run_dask(job, tiles, dask, bar, local_workers=dask_workers)
    return store


def _manifest(job: TileJob, description: str | None) -> dict[str, Any]:
    """What the store records about a run (all but the tile sizes)."""
    name = getattr(job.kernel_fn, "__name__", type(job.kernel_fn).__name__)
    return {
        "format": FORMAT,
        "kinds": list(job.kinds),
        "dtype": job.x_train.dtype.name,
        "mask_constant": None if job.mask_constant is None else repr(float(job.mask_constant)),
        "x_train_shape": list(job.x_train.shape),
        "x_test_shape": list(job.x_test.shape),
        "x_train_sha256": array_fingerprint(job.x_train),
        "x_test_sha256": array_fingerprint(job.x_test),
        "model_sha256": job.model_fingerprint(),
        "description": description or name,
        "jax_version": jax.__version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _kinds(get: str | Sequence[str]) -> tuple[str, ...]:
    kinds = (get,) if isinstance(get, str) else tuple(get)
    if not kinds or any(k not in KINDS for k in kinds) or len(set(kinds)) != len(kinds):
        raise ValueError(f"get: expected a non-empty selection of {KINDS}, got {get!r}")
    return tuple(k for k in KINDS if k in kinds)


def _inputs(x_train: Any, x_test: Any, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    x_train = np.asarray(x_train)
    if x_train.ndim < 2 or len(x_train) == 0:
        raise ValueError(f"x_train: expected shape (N, ..., C) with N >= 1, got {x_train.shape}")
    if dtype is None:
        dtype = x_train.dtype if np.issubdtype(x_train.dtype, np.floating) else np.float32
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"dtype: expected a floating dtype, got {dtype}")
    x_test = np.zeros((0, *x_train.shape[1:])) if x_test is None else np.asarray(x_test)
    if x_test.shape[1:] != x_train.shape[1:]:
        raise ValueError(
            f"x_test: non-batch shape {x_test.shape[1:]} differs from x_train's {x_train.shape[1:]}"
        )
    return x_train.astype(dtype, copy=False), x_test.astype(dtype, copy=False)


def _given_sizes(job: TileJob, tile_size: Any) -> tuple[int, int] | None:
    """``(t, tm)`` from an explicit ``tile_size`` (the test rows' size for joint models)."""
    if tile_size is None:
        return None
    bad = isinstance(tile_size, bool) or not isinstance(tile_size, int | np.integer)
    if bad or tile_size < 1:
        raise ValueError(f"tile_size: expected a positive integer, got {tile_size!r}")
    n, m = len(job.x_train), len(job.x_test)
    if job.joint:
        return n, int(tile_size)
    return int(tile_size), _test_tile(int(tile_size), m)


def _choose_sizes(job: TileJob, budget: int) -> tuple[int, int]:
    """The largest ``(t, tm)`` whose tiles fit ``budget``, evened out over the examples."""
    n, m = len(job.x_train), len(job.x_test)
    if not job.joint:
        t = _even(n, memory.largest_fitting(job.tile_bytes, budget, min(n, MAX_TILE)))
        return t, _test_tile(t, m)
    _require_fit(job, (n, 1), budget)
    if m == 0:
        return n, 1
    rows = memory.largest_fitting(lambda r: job.tile_bytes(r, n), budget, min(m, MAX_TILE))
    return n, _even(m, rows)


def _require_fit(job: TileJob, sizes: tuple[int, int], budget: int) -> None:
    """Raise ``MemoryError`` unless the tiles of ``sizes`` fit ``budget``."""
    t, tm = sizes
    n, m = len(job.x_train), len(job.x_test)
    tiles = [(t, None)] + ([(tm, n)] if job.joint and m else [])
    for rows, cols in tiles:
        if (need := job.tile_bytes(rows, cols)) > budget:
            why = (
                " (this model samples a batch jointly, Monte Carlo attention, so its train "
                "kernel is a single N x N tile)"
                if job.joint and cols is None
                else ""
            )
            raise MemoryError(
                f"memory_budget {memory.format_size(budget)} cannot hold one tile of {rows} x "
                f"{cols or rows} examples: it needs {memory.format_size(need)} ({need} bytes)" + why
            )


def _test_tile(t: int, m: int) -> int:
    """Test rows per tile for train tiles of ``t``: at most ``t``, evened out over ``m``."""
    return _even(m, min(t, m)) if m else 1


def _even(n: int, largest: int) -> int:
    """The smallest tile size giving as few tiles of ``n`` examples as ``largest`` does."""
    return -(-n // -(-n // largest))


def _existing(path: str) -> KernelStore | None:
    """The kernel store at ``path``, or ``None`` when there is none yet."""
    try:
        return KernelStore.open(path)
    except FileNotFoundError:
        return None
