"""One store's work: the model, the inputs, and how one tile is computed and written.

A :class:`TileJob` is what a process (this one, or a Dask worker) needs to compute
any tile of a store: the ``kernel_fn``, both input arrays, the layout and the store's
path. Tiles of one part all have one shape (the last tile's examples are padded by
repeating its last example, then cropped), so each part compiles once per device.
Train-train and test-train tiles are ``kernel_fn(x1_tile, x2_tile)``; test-diagonal
tiles map ``kernel_fn(x[i:i+1], None)`` over the tile's examples, so no test-test
block is ever formed. A model that samples a batch jointly (Monte Carlo attention,
not :func:`is_pairwise`) is run ``joint``: its train kernel is the single tile
``kernel_fn(x_train, None)``, exactly as one call gives it (positive semi-definite),
and its test rows are tiles of ``kernel_fn(x_test_tile, x_train)``.

The model enters the store's manifest as a fingerprint: the SHA-256 of the jaxpr of
``kernel_fn`` traced on one pair of inputs (with its constants), which changes when
the architecture, any hyperparameter, ``get`` or ``mask_constant`` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import re
import threading
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from infattn.scale.store import KernelStore, Layout, Tile


def precision(dtype: Any) -> contextlib.AbstractContextManager:
    """A context computing in ``dtype`` (float64 switches ``jax_enable_x64`` on, thread-locally).

    Example:
      >>> with precision(np.float64):
      ...     print(jax.numpy.ones(1).dtype)
      float64
    """
    return jax.enable_x64(True) if np.dtype(dtype).itemsize == 8 else contextlib.nullcontext()


def array_fingerprint(x: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes.

    Example:
      >>> array_fingerprint(np.zeros(3)) == array_fingerprint(np.zeros(3))
      True
    """
    digest = hashlib.sha256(f"{x.dtype.str}{x.shape}".encode())
    digest.update(np.ascontiguousarray(x).tobytes())
    return digest.hexdigest()


_STATIC = ("kernel_fn", "kinds", "mask_constant")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _pair(x1: jax.Array, x2: jax.Array, *, kernel_fn, kinds, mask_constant) -> Any:
    """``kernel_fn(x1, x2, kinds)``: a namedtuple of ``(N1, N2)`` kernels (compiled per model)."""
    return kernel_fn(x1, x2, kinds, mask_constant=mask_constant)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _self_kernels(x: jax.Array, *, kernel_fn, kinds, mask_constant) -> Any:
    """Each example of ``x`` ``(N, ...)`` with itself: a namedtuple of ``(N, 1, 1)`` kernels."""

    def one(xi):
        return kernel_fn(xi[None], None, kinds, mask_constant=mask_constant)

    return jax.vmap(one)(x)


@dataclasses.dataclass
class TileJob:
    """Everything needed to compute and write any tile of the store at ``store_path``.

    ``x_train``: ``(N, *spatial, C)``, ``x_test``: ``(M, *spatial, C)``, both already
    in the compute dtype; ``kinds``: ``("nngp",)``, ``("ntk",)`` or both.
    Picklable (with cloudpickle, as Dask sends it) when ``kernel_fn`` is; the store is
    reopened in each process, and the compiled tile functions are JAX's, cached per
    ``kernel_fn`` object (which must be hashable).

    Example:
      >>> from infattn import stax
      >>> _, _, kernel_fn = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1))
      >>> x = np.random.default_rng(0).standard_normal((5, 3))
      >>> job = TileJob(kernel_fn, x, x[:2], Layout(5, 2, 4), ("nngp",), None, "unused")
      >>> job.compute(Tile("train_train", 0, 1))["nngp"].shape  # rows 0-3, column 4
      (4, 1)
      >>> job.compute(Tile("test_diag", 0))["nngp"].shape
      (2,)
    """

    kernel_fn: Callable[..., Any]
    x_train: np.ndarray
    x_test: np.ndarray
    layout: Layout
    kinds: tuple[str, ...]
    mask_constant: float | None
    store_path: str
    joint: bool = False
    """The model samples a batch jointly: the train kernel is one ``kernel_fn(x_train, None)``."""

    def __post_init__(self) -> None:
        self._store: KernelStore | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    @property
    def _static(self) -> dict[str, Any]:
        return {
            "kernel_fn": self.kernel_fn,
            "kinds": self.kinds,
            "mask_constant": self.mask_constant,
        }

    def store(self) -> KernelStore:
        """The store, opened once per process."""
        with self._lock:
            if self._store is None:
                self._store = KernelStore.open(self.store_path, mode="r+")
            return self._store

    def inputs(self, tile: Tile) -> tuple[np.ndarray, np.ndarray | None]:
        """``tile``'s padded inputs, ``(t or tm, ...)`` each (the second ``None`` on diagonals)."""
        layout = self.layout
        if tile.part == "train_train":
            return _padded(self.x_train, layout.rows(tile), layout.tile), _padded(
                self.x_train, layout.cols(tile), layout.tile
            )
        rows = _padded(self.x_test, layout.rows(tile), layout.test_tile)
        if tile.part == "test_diag":
            return rows, None
        return rows, _padded(self.x_train, layout.cols(tile), layout.tile)

    def compute(self, tile: Tile, device: jax.Device | None = None) -> dict[str, np.ndarray]:
        """``kind -> block`` of ``tile``, cropped to ``(rows, cols)`` or ``(rows,)``."""
        x1, x2 = self.inputs(tile)
        n_rows = _length(self.layout.rows(tile))
        with precision(self.x_train.dtype):
            if tile.part == "test_diag":
                out = _self_kernels(jax.device_put(x1, device), **self._static)
                return {k: np.asarray(getattr(out, k)).reshape(-1)[:n_rows] for k in self.kinds}
            if self.joint and tile.part == "train_train":
                x2 = None  # the whole train set, sampled jointly
            out = _pair(jax.device_put(x1, device), jax.device_put(x2, device), **self._static)
            n_cols = _length(self.layout.cols(tile))
            return {k: np.asarray(getattr(out, k))[:n_rows, :n_cols] for k in self.kinds}

    def run(self, tile: Tile, device: jax.Device | None = None) -> Tile:
        """Compute ``tile`` on ``device`` (default: JAX's), write it and flag it done."""
        self.store().write(tile, self.compute(tile, device))
        return tile

    def model_fingerprint(self) -> str:
        """SHA-256 of the jaxpr (and constants) of ``kernel_fn`` on one pair of inputs."""
        spec = jax.ShapeDtypeStruct((1, *self.x_train.shape[1:]), self.x_train.dtype)
        with precision(self.x_train.dtype):
            closed = jax.make_jaxpr(functools.partial(_pair, **self._static))(spec, spec)
        text = re.sub(r" at 0x[0-9a-fA-F]+", "", str(closed.jaxpr))
        digest = hashlib.sha256(text.encode())
        for const in closed.consts:
            digest.update(array_fingerprint(np.asarray(const)).encode())
        return digest.hexdigest()

    def check_model(self) -> None:
        """Refuse models whose kernels are not one number per pair of inputs."""
        spec = jax.ShapeDtypeStruct((1, *self.x_train.shape[1:]), self.x_train.dtype)
        with precision(self.x_train.dtype):
            out = jax.eval_shape(functools.partial(_pair, **self._static), spec, spec)
        for kind in self.kinds:
            shape = getattr(out, kind).shape
            if shape != (1, 1):
                raise ValueError(
                    f"kernel_fn: returns {kind} of shape {shape} for one pair of inputs; the "
                    "store holds (N1, N2) kernels, so the model must pool or flatten its "
                    "spatial axes (end it with GlobalAvgPool or Flatten, then Dense)"
                )

    def tile_bytes(self, rows: int, cols: int | None = None) -> int:
        """Device memory of one ``rows x cols`` tile (default square), as XLA compiles it.

        ``cols=None`` with ``joint`` measures the joint ``kernel_fn(x[:rows], None)``.
        """

        def spec(n):
            return jax.ShapeDtypeStruct((n, *self.x_train.shape[1:]), self.x_train.dtype)

        joint_train = cols is None and self.joint
        second = None if joint_train else spec(rows if cols is None else cols)
        with precision(self.x_train.dtype):
            lowered = _pair.lower(spec(rows), second, **self._static)
            analysis = lowered.compile().memory_analysis()
        if analysis is None:
            raise RuntimeError(
                "this JAX backend reports no memory analysis; pass tile_size= explicitly"
            )
        return int(
            analysis.argument_size_in_bytes
            + analysis.output_size_in_bytes
            + analysis.temp_size_in_bytes
        )


def is_pairwise(kernel_fn: Callable[..., Any]) -> bool:
    """Whether each kernel entry depends on its pair of inputs alone (then tiles are exact).

    ``infattn.stax`` models say so (Monte Carlo attention samples a batch jointly);
    other functions are assumed pairwise, as closed-form kernels are.

    Example:
      >>> from infattn import stax
      >>> is_pairwise(stax.serial(stax.Dense(2), stax.Relu())[2])
      True
      >>> is_pairwise(stax.GlobalSelfAttention(2, 2, 2, 1, linear_scaling=False)[2])
      False
    """
    return getattr(getattr(kernel_fn, "layer", None), "pairwise", True) is not False


def _length(s: slice) -> int:
    return s.stop - s.start


def _padded(x: np.ndarray, rows: slice, size: int) -> np.ndarray:
    """``x[rows]`` padded to ``size`` examples by repeating the last one."""
    return x[np.minimum(np.arange(rows.start, rows.start + size), rows.stop - 1)]
