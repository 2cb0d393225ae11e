"""The :class:`Dataset` every loader returns, and the preprocessing they share."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A classification task as regression targets, ready for kernels.

    ``x_train``: ``(N, *spatial, C)`` float inputs (padding positions, if any, hold
    ``mask_constant`` in every channel); ``y_train``: ``(N, K)`` centred one-hot
    targets (:func:`one_hot`); ``labels_train``: ``(N,)`` class indices; the same
    for the test set. ``classes`` names the ``K`` classes.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    labels_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels_test: np.ndarray
    classes: tuple[str, ...]
    mask_constant: float | None = None
    description: str = ""

    @classmethod
    def from_labels(
        cls,
        name: str,
        splits: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
        classes: tuple[str, ...],
        **kwargs,
    ) -> Dataset:
        """Build from ``((x_train, labels_train), (x_test, labels_test))``."""
        (x_tr, l_tr), (x_te, l_te) = splits
        k = len(classes)
        return cls(
            name, x_tr, one_hot(l_tr, k), np.asarray(l_tr), x_te, one_hot(l_te, k),
            np.asarray(l_te), tuple(classes), **kwargs,
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train {self.x_train.shape}, test {self.x_test.shape}, "
            f"{len(self.classes)} classes, mask_constant={self.mask_constant})"
        )


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Centred one-hot targets ``(N, K)``: ``1 - 1/K`` for the class, ``-1/K`` elsewhere.

    Example:
      >>> one_hot(np.array([1, 0]), 2).tolist()
      [[-0.5, 0.5], [0.5, -0.5]]
    """
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels: expected integers in [0, {n_classes}), got {labels.min()}..")
    return np.eye(n_classes)[labels] - 1.0 / n_classes


def standardize(x: np.ndarray) -> np.ndarray:
    """Centre each example and scale it to a mean square of 1 over all its entries.

    ``x``: ``(N, ...)``; a constant example stays 0.

    Example:
      >>> standardize(np.array([[1.0, 3.0]])).tolist()
      [[-1.0, 1.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    flat = x.reshape(len(x), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    rms = np.sqrt(np.mean(flat**2, axis=1, keepdims=True))
    return (flat / np.where(rms > 0, rms, 1.0)).reshape(x.shape)


def take(n: int | None, available: int, what: str) -> int:
    """``n`` (all when ``None``), refusing more than there are."""
    if n is None:
        return available
    if not 0 < n <= available:
        raise ValueError(f"{what}: expected 1..{available} examples, got {n}")
    return n
