"""scikit-learn's handwritten digits (8x8, 1797 images) with a fixed 1000/797 split.

The split: ``numpy.random.RandomState(0).permutation(1797)``; its first 1000
indices are the training set, the other 797 the test set (``RandomState``'s
stream is frozen by NumPy, so the split is the same everywhere). Pixels (0..16)
are standardised per image (:func:`infattn.data.dataset.standardize`). Needs
scikit-learn (the ``data`` extra); the images ship with it, no download.
"""

from __future__ import annotations

import numpy as np

from infattn.data.dataset import Dataset, standardize, take

N_TRAIN = 1000
N_TEST = 797
SPLIT_SEED = 0
LAYOUTS = ("image", "rows")


def split_indices() -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` indices into ``sklearn.datasets.load_digits()``: 1000 and 797.

    Example:
      >>> train, test = split_indices()
      >>> len(train), len(test), len(set(train) | set(test))
      (1000, 797, 1797)
    """
    perm = np.random.RandomState(SPLIT_SEED).permutation(N_TRAIN + N_TEST)
    return perm[:N_TRAIN], perm[N_TRAIN:]


def load_digits(
    layout: str = "image", n_train: int | None = None, n_test: int | None = None
) -> Dataset:
    """The digits on the fixed split (the first ``n_train`` / ``n_test`` of each part).

    ``layout="image"``: ``x`` is ``(N, 8, 8, 1)``; ``"rows"``: a sequence of the 8
    rows, ``(N, 8, 8)`` (positions x pixels). Targets ``(N, 10)``, centred one-hot.

    Example:
      >>> d = load_digits("rows", n_train=10, n_test=5)
      >>> d.x_train.shape, d.y_test.shape
      ((10, 8, 8), (5, 10))
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {LAYOUTS}, got {layout!r}")
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as err:
        raise ImportError("the digits need scikit-learn: pip install 'infattn[data]'") from err
    raw = sklearn_digits()
    x = standardize(raw.images)  # (1797, 8, 8)
    x = x[..., None] if layout == "image" else x
    train, test = split_indices()
    train = train[: take(n_train, N_TRAIN, "n_train")]
    test = test[: take(n_test, N_TEST, "n_test")]
    return Dataset.from_labels(
        f"digits-{layout}",
        ((x[train], raw.target[train]), (x[test], raw.target[test])),
        tuple(str(c) for c in range(10)),
        description="scikit-learn digits, 8x8, fixed RandomState(0) 1000/797 split",
    )
