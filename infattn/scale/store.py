"""The on-disk kernel store: a zarr hierarchy of kernel tiles, its manifest and done flags.

Layout of a store at ``PATH`` (a directory; zarr format 3)::

    PATH/zarr.json                  root group; attribute "infattn_kernels" = the manifest
    PATH/nngp/train_train           (N, N)  chunks (t, t)
    PATH/nngp/test_train            (M, N)  chunks (tm, t)
    PATH/nngp/test_diag             (M,)    chunks (tm,)
    PATH/ntk/...                    the same three arrays (when "ntk" is computed)
    PATH/done/train_train           (T, T)  uint8, one chunk per tile: 1 once written
    PATH/done/test_train            (Tm, T)
    PATH/done/test_diag             (Tm,)

``t`` is the tile size, ``tm`` the test tile size (``min(t, M)``, see
:mod:`infattn.scale.kernels` for models sampled jointly), ``T = ceil(N / t)``
and ``Tm = ceil(M / tm)``. Each tile owns its chunks: a train-train tile
``(I, J)`` with ``I <= J`` writes chunk ``(I, J)`` and its mirror ``(J, I)`` (a
diagonal tile is made exactly symmetric from its upper triangle), so writers never
share a chunk. A tile writes its data first, then its done flag; zarr writes each
chunk to a temporary file and renames it, so a tile killed half-way leaves no flag
and is recomputed. Kernel arrays are filled with NaN where nothing was written yet.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

FORMAT = "infattn-kernels/1"
MANIFEST_KEY = "infattn_kernels"
PARTS = ("train_train", "test_train", "test_diag")
KINDS = ("nngp", "ntk")

COMPARED = (
    ("format", "store format"),
    ("kinds", "kernels (get)"),
    ("dtype", "dtype"),
    ("mask_constant", "mask_constant"),
    ("x_train_shape", "x_train shape"),
    ("x_test_shape", "x_test shape"),
    ("x_train_sha256", "x_train contents (sha256)"),
    ("x_test_sha256", "x_test contents (sha256)"),
    ("model_sha256", "model fingerprint (sha256 of the traced kernel_fn)"),
    ("tile_size", "tile size"),
    ("test_tile_size", "test tile size"),
)
"""Manifest entries that must agree for a store to be resumed: ``(key, description)``."""


@dataclasses.dataclass(frozen=True, order=True)
class Tile:
    """One unit of work: a block of ``part``, at tile row ``row`` and tile column ``col``."""

    part: str
    row: int
    col: int = 0

    @property
    def index(self) -> tuple[int, ...]:
        """The tile's position in its part's grid (its done flag's index)."""
        return (self.row,) if self.part == "test_diag" else (self.row, self.col)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Sizes of a store: ``n_train`` (N), ``n_test`` (M), tile size ``tile`` (t) and
    ``test_tile`` (tm, test rows per tile; default ``min(t, M)``, at least 1)."""

    n_train: int
    n_test: int
    tile: int
    test_tile: int = 0

    def __post_init__(self) -> None:
        if not self.test_tile:
            object.__setattr__(self, "test_tile", max(1, min(self.tile, self.n_test)))

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> Layout:
        """The layout a manifest records."""
        return cls(
            manifest["x_train_shape"][0],
            manifest["x_test_shape"][0],
            manifest["tile_size"],
            manifest["test_tile_size"],
        )

    def grid(self, part: str) -> tuple[int, ...]:
        """Tiles along each axis of ``part``: ``(T, T)``, ``(Tm, T)`` or ``(Tm,)``."""
        t_train = -(-self.n_train // self.tile)
        t_test = -(-self.n_test // self.test_tile)
        return {"train_train": (t_train, t_train), "test_train": (t_test, t_train)}.get(
            part, (t_test,)
        )

    def shape(self, part: str) -> tuple[int, ...]:
        """The kernel array's shape: ``(N, N)``, ``(M, N)`` or ``(M,)``."""
        n, m = self.n_train, self.n_test
        return {"train_train": (n, n), "test_train": (m, n)}.get(part, (m,))

    def chunks(self, part: str) -> tuple[int, ...]:
        """One tile's block shape: ``(t, t)``, ``(tm, t)`` or ``(tm,)``."""
        t, tm = self.tile, self.test_tile
        return {"train_train": (t, t), "test_train": (tm, t)}.get(part, (tm,))

    def tiles(self) -> list[Tile]:
        """Every tile: train-train upper triangle, then test-train, then test diagonal.

        Example:
          >>> for tile in Layout(5, 2, 4).tiles():
          ...     print(tile.part, tile.index)
          train_train (0, 0)
          train_train (0, 1)
          train_train (1, 1)
          test_train (0, 0)
          test_train (0, 1)
          test_diag (0,)
        """
        t_train, _ = self.grid("train_train")
        t_test = self.grid("test_diag")[0]
        upper = [Tile("train_train", i, j) for i in range(t_train) for j in range(i, t_train)]
        cross = [Tile("test_train", i, j) for i in range(t_test) for j in range(t_train)]
        return upper + cross + [Tile("test_diag", i) for i in range(t_test)]

    def rows(self, tile: Tile) -> slice:
        """Rows of ``tile`` in its part (test rows for test parts)."""
        size, n = (
            (self.tile, self.n_train)
            if tile.part == "train_train"
            else (self.test_tile, self.n_test)
        )
        return slice(tile.row * size, min((tile.row + 1) * size, n))

    def cols(self, tile: Tile) -> slice:
        """Train columns of ``tile`` (train-train and test-train tiles)."""
        return slice(tile.col * self.tile, min((tile.col + 1) * self.tile, self.n_train))


class StoreMismatchError(ValueError):
    """An existing store was written with other settings than the current call's."""


class IncompleteStoreError(RuntimeError):
    """Kernels were read from a store whose tiles are not all written."""


class KernelStore:
    """A kernel store on disk (see the module docstring for its layout).

    Open one with :meth:`open` (existing) or :meth:`create_or_open` (resume or start).

    Example:
      >>> import tempfile
      >>> from infattn import stax
      >>> from infattn.scale.kernels import compute_kernels
      >>> _, _, kernel_fn = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1))
      >>> x = np.random.default_rng(0).standard_normal((5, 3))
      >>> path = tempfile.mkdtemp() + "/k"
      >>> _ = compute_kernels(kernel_fn, x, x[:2], path, tile_size=4, progress=False)
      >>> store = KernelStore.open(path)
      >>> store.manifest["tile_size"], store.pending(), store.load("nngp", "test_train").shape
      (4, [], (2, 5))
      >>> {kind: sorted(parts) for kind, parts in store.load_all().items()}["ntk"]
      ['test_diag', 'test_train', 'train_train']
    """

    def __init__(self, path: str | os.PathLike, group: Any):
        self.path = pathlib.Path(path)
        self._group = group
        self.manifest: dict[str, Any] = dict(group.attrs[MANIFEST_KEY])
        self.layout = Layout.of(self.manifest)
        self.kinds: tuple[str, ...] = tuple(self.manifest["kinds"])

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r") -> KernelStore:
        """Open an existing store (``mode`` ``"r"`` or ``"r+"``)."""
        import zarr

        path = pathlib.Path(path)
        if not (path / "zarr.json").exists():
            raise FileNotFoundError(f"{path}: no kernel store there (no zarr.json)")
        group = zarr.open_group(str(path), mode=mode)
        if MANIFEST_KEY not in group.attrs:
            raise StoreMismatchError(f"{path}: a zarr store, but not one written by infattn")
        return cls(path, group)

    @classmethod
    def create_or_open(cls, path: str | os.PathLike, manifest: Mapping[str, Any]) -> KernelStore:
        """Open the store at ``path`` for writing, creating it (atomically) if absent.

        An existing store whose manifest differs from ``manifest`` in any
        :data:`COMPARED` entry is refused with a :class:`StoreMismatchError`
        naming every difference.
        """
        path = pathlib.Path(path)
        if not path.exists() or (path.is_dir() and not any(path.iterdir())):
            _create(path, dict(manifest))
        elif not (path / "zarr.json").exists():
            raise FileExistsError(f"{path} exists and is not a kernel store; choose another path")
        store = cls.open(path, mode="r+")
        store.require(manifest)
        return store

    def require(self, manifest: Mapping[str, Any]) -> None:
        """Raise :class:`StoreMismatchError` naming every :data:`COMPARED` entry that differs."""
        differences = [
            f"{label}: store {self.manifest.get(key)!r}, this call {manifest.get(key)!r}"
            for key, label in COMPARED
            if self.manifest.get(key) != manifest.get(key)
        ]
        if differences:
            raise StoreMismatchError(
                f"{self.path} holds kernels written with other settings; refusing to mix them "
                "(choose another path, or delete it to start over):\n  " + "\n  ".join(differences)
            )

    def done(self) -> set[Tile]:
        """Tiles whose data and done flag are both written."""
        finished = set()
        for part in PARTS:
            flags = np.asarray(self._group[f"done/{part}"][...])
            for index in zip(*np.nonzero(flags), strict=True):
                finished.add(Tile(part, *(int(i) for i in index)))
        return finished

    def pending(self) -> list[Tile]:
        """Tiles still to compute, in the order of :meth:`Layout.tiles`."""
        finished = self.done()
        return [tile for tile in self.layout.tiles() if tile not in finished]

    def write(self, tile: Tile, blocks: Mapping[str, np.ndarray]) -> None:
        """Write ``tile``'s blocks (``kind -> block`` cropped to the tile), then flag it done."""
        rows = self.layout.rows(tile)
        for kind in self.kinds:
            block = np.asarray(blocks[kind])
            array = self._group[f"{kind}/{tile.part}"]
            if tile.part == "test_diag":
                array[rows] = block
                continue
            cols = self.layout.cols(tile)
            if tile.part == "train_train" and tile.row == tile.col:
                upper = np.triu(block)
                block = upper + np.triu(block, 1).T
            array[rows, cols] = block
            if tile.part == "train_train" and tile.row != tile.col:
                array[cols, rows] = block.T
        self._group[f"done/{tile.part}"][tile.index] = 1

    def load(self, kind: str, part: str) -> np.ndarray:
        """The whole array ``kind/part`` (e.g. ``"ntk"``, ``"test_train"``) in memory.

        Raises :class:`IncompleteStoreError` while tiles are missing.
        """
        if kind not in self.kinds or part not in PARTS:
            raise KeyError(
                f"no array {kind}/{part} in {self.path}; kernels {self.kinds}, parts {PARTS}"
            )
        missing = len(self.pending())
        if missing:
            raise IncompleteStoreError(
                f"{self.path}: {missing} of {len(self.layout.tiles())} tiles not written yet; "
                "run the same computation again to finish it"
            )
        return np.asarray(self._group[f"{kind}/{part}"][...])

    def load_all(self) -> dict[str, dict[str, np.ndarray]]:
        """``{kind: {part: array}}`` for every kernel array, in memory (a complete store only)."""
        return {kind: {part: self.load(kind, part) for part in PARTS} for kind in self.kinds}

    def arrays(self) -> Iterator[tuple[str, str, Any]]:
        """``(kind, part, zarr array)`` for every kernel array (lazy, chunked access)."""
        for kind in self.kinds:
            for part in PARTS:
                yield kind, part, self._group[f"{kind}/{part}"]


def _create(path: pathlib.Path, manifest: dict[str, Any]) -> None:
    """Build the empty store beside ``path`` and rename it into place (atomic)."""
    import zarr

    layout = Layout.of(manifest)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    try:
        root = zarr.open_group(str(staging), mode="w-")
        for kind in manifest["kinds"]:
            group = root.require_group(kind)
            for part in PARTS:
                group.create_array(
                    part,
                    shape=layout.shape(part),
                    chunks=layout.chunks(part),
                    dtype=manifest["dtype"],
                    fill_value=np.nan,
                    config={"write_empty_chunks": True},
                )
        done = root.require_group("done")
        for part in PARTS:
            grid = layout.grid(part)
            done.create_array(
                part, shape=grid, chunks=(1,) * len(grid), dtype="uint8", fill_value=0
            )
        root.attrs[MANIFEST_KEY] = manifest
        try:
            os.rename(staging, path)
        except OSError:
            if not (path / "zarr.json").exists():  # someone else created it first: use theirs
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
