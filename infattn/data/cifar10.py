"""CIFAR-10 from the python-version archive ``cifar-10-python.tar.gz``.

The archive holds ``cifar-10-batches-py/data_batch_1`` .. ``data_batch_5`` (10000
training images each), ``test_batch`` and ``batches.meta``, each a Python 2
pickle of a dict with ``data`` (uint8 ``(10000, 3072)``, channel-major 32x32
images) and ``labels``. The archive is checked against its published MD5, its
members are read in place (:mod:`infattn.data.archive`) and the pickles are read
with a restricted unpickler that never runs code (:mod:`infattn.data.safe_pickle`).
Images are standardised per image; ``x`` is ``(N, 32, 32, 3)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from infattn.data import archive, safe_pickle
from infattn.data.dataset import Dataset, standardize, take

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
FILENAME = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
PER_BATCH = 10000
CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


def read_batch(content: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images (n, 32, 32, 3) uint8, labels (n,))`` from one pickled batch.

    Refuses (``ValueError``) anything but the CIFAR-10 layout.

    Example:
      >>> read_batch(b"\\x80\\x02}q\\x00.", "empty")
      Traceback (most recent call last):
      ...
      ValueError: empty: not a CIFAR-10 batch (expected keys b'data' and b'labels')
    """
    batch: Any = safe_pickle.loads(content)
    if not isinstance(batch, dict) or not {b"data", b"labels"} <= set(batch):
        raise ValueError(f"{where}: not a CIFAR-10 batch (expected keys b'data' and b'labels')")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2):
        raise ValueError(f"{where}: b'data' must be a uint8 (n, 3072) array")
    if data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        raise ValueError(
            f"{where}: b'data' {data.shape} and b'labels' {labels.shape} do not match (n, 3072)"
        )
    if labels.dtype.kind not in "iu" or (
        labels.size and not 0 <= labels.min() <= labels.max() < 10
    ):
        raise ValueError(f"{where}: b'labels' must be integers 0..9")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def default_path() -> Path:
    """``$INFATTN_DATA/cifar-10-python.tar.gz`` (default folder ``~/.cache/infattn``)."""
    return Path(os.environ.get("INFATTN_DATA", "~/.cache/infattn")).expanduser() / FILENAME


def load_cifar10(
    path: str | os.PathLike | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    *,
    verify: bool = True,
    download: bool = False,
) -> Dataset:
    """CIFAR-10: the first ``n_train`` training and ``n_test`` test images.

    ``path``: the archive (default :func:`default_path`). ``verify=False`` skips
    the MD5 check; ``download=True`` fetches a missing archive (then checks it).
    Only the batches needed for ``n_train`` are decoded.
    """
    path = archive.locate(
        default_path() if path is None else path,
        url=URL,
        digest=MD5,
        what="CIFAR-10 archive (cifar-10-python.tar.gz)",
        download=download,
        verify=verify,
        skip_hint="--skip-checksum (verify=False)",
    )
    n_batches = len(TRAIN_BATCHES)
    if n_train is not None:
        n_batches = -(-take(n_train, PER_BATCH * n_batches, "n_train") // PER_BATCH)
    wanted = {f"{FOLDER}/{b}" for b in (*TRAIN_BATCHES[:n_batches], "test_batch")}
    batches = {
        name: read_batch(content, f"{path}:{name}")
        for name, content in archive.regular_members(path, wanted.__contains__)
    }
    missing = sorted(wanted - set(batches))
    if missing:
        raise ValueError(f"{path}: not a CIFAR-10 python archive; missing members {missing}")
    train = [batches[f"{FOLDER}/{b}"] for b in TRAIN_BATCHES[:n_batches]]
    x_tr, l_tr = (np.concatenate(parts) for parts in zip(*train, strict=True))
    x_te, l_te = batches[f"{FOLDER}/test_batch"]
    n_train = take(n_train, len(x_tr), "n_train")
    n_test = take(n_test, len(x_te), "n_test")
    return Dataset.from_labels(
        "cifar10",
        (
            (standardize(x_tr[:n_train]), l_tr[:n_train]),
            (standardize(x_te[:n_test]), l_te[:n_test]),
        ),
        CLASSES,
        description="CIFAR-10 python archive, first n images of the official split",
    )
