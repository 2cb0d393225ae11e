"""Small archives in the real CIFAR-10 and IMDb formats, and hostile variants, for tests.

The CIFAR-10 batches are written the way Python 2's ``cPickle`` wrote the real
files (protocol 2, byte strings as ``BINSTRING``, numpy arrays through
``numpy.core.multiarray._reconstruct``), opcode by opcode, so the restricted
unpickler is tested on the real format rather than on what Python 3 would write.
"""

from __future__ import annotations

import io
import struct
import tarfile
from pathlib import Path

import numpy as np


def _int(v: int) -> bytes:
    return b"K" + bytes([v]) if 0 <= v < 256 else b"J" + struct.pack("<i", v)


def _str(v: bytes) -> bytes:
    if len(v) < 256:
        return b"U" + bytes([len(v)]) + v
    return b"T" + struct.pack("<i", len(v)) + v


def _array(a: np.ndarray) -> bytes:
    assert a.dtype == np.uint8
    shape = b"(" + b"".join(_int(s) for s in a.shape) + b"t"
    dtype = b"cnumpy\ndtype\n" + _str(b"u1") + _int(0) + _int(1) + b"\x87R"
    dtype += b"(" + _int(3) + _str(b"|") + b"NNN" + _int(-1) + _int(-1) + _int(0) + b"tb"
    state = b"(" + _int(1) + shape + dtype + b"\x89" + _str(a.tobytes()) + b"tb"
    head = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
    return head + _int(0) + b"\x85" + _str(b"b") + b"\x87R" + state


def _value(v) -> bytes:
    if isinstance(v, dict):
        return b"}(" + b"".join(_value(k) + _value(x) for k, x in v.items()) + b"u"
    if isinstance(v, list):
        return b"](" + b"".join(_value(x) for x in v) + b"e"
    if isinstance(v, bytes):
        return _str(v)
    if isinstance(v, int):
        return _int(v)
    if isinstance(v, np.ndarray):
        return _array(v)
    raise TypeError(type(v))


def py2_pickle(obj) -> bytes:
    """``cPickle.dumps(obj, 2)`` as Python 2 wrote it (dicts, lists, bytes, ints, uint8 arrays)."""
    return b"\x80\x02" + _value(obj) + b"."


def cifar_batch(images: np.ndarray, labels: list[int], label: bytes = b"batch") -> bytes:
    """A batch pickle: ``images`` ``(n, 32, 32, 3)`` uint8 stored channel-major."""
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    names = [b"img_%d.png" % i for i in range(len(images))]
    return py2_pickle(
        {b"batch_label": label, b"labels": labels, b"data": data, b"filenames": names}
    )


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
        link: str = "") -> None:  # fmt: skip
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def cifar_images(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).tolist()


def make_cifar(path: Path, per_batch: int = 3, extra=None) -> dict[str, tuple]:
    """A ``cifar-10-python.tar.gz`` with 5 training batches and a test batch.

    ``extra(tar)`` may add hostile members. Returns the batches written.
    """
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        add(tar, "cifar-10-batches-py", kind=tarfile.DIRTYPE)
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for i, name in enumerate(names):
            batches[name] = cifar_images(per_batch, seed=i)
            add(tar, f"cifar-10-batches-py/{name}", cifar_batch(*batches[name]))
        meta = py2_pickle({b"label_names": [b"airplane"], b"num_cases_per_batch": per_batch})
        add(tar, "cifar-10-batches-py/batches.meta", meta)
        if extra is not None:
            extra(tar)
    return batches


REVIEWS = {
    "train/pos/0_9.txt": "A wonderful film. I loved it!",
    "train/pos/1_8.txt": "Great acting, great story.<br />Loved the music.",
    "train/neg/2_1.txt": "Terrible. I didn't like it at all.",
    "train/neg/3_2.txt": "Boring and bad, a waste of time.",
    "test/pos/4_10.txt": "Loved it: a great film.",
    "test/neg/5_1.txt": "Bad film, boring story.",
}


def make_imdb(path: Path, extra=None) -> None:
    """An ``aclImdb_v1.tar.gz`` with a few reviews (and the files around them)."""
    with tarfile.open(path, "w:gz") as tar:
        add(tar, "aclImdb", kind=tarfile.DIRTYPE)
        add(tar, "aclImdb/imdb.vocab", b"the\nfilm\n")
        add(tar, "aclImdb/train/unsup/6_0.txt", b"unlabelled review")
        for name, text in REVIEWS.items():
            add(tar, f"aclImdb/{name}", text.encode())
        if extra is not None:
            extra(tar)
