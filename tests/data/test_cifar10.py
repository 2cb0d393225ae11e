"""CIFAR-10 loader on small archives in the real format, and on hostile ones."""

from __future__ import annotations

import os
import pickle
import tarfile

import numpy as np
import pytest

from infattn.data import (
    ChecksumError,
    UnsafeArchiveError,
    UnsafePickleError,
    archive,
    cifar10,
    load_cifar10,
    safe_pickle,
    standardize,
)
from tests.data.archives import add, cifar_batch, cifar_images, make_cifar, py2_pickle


def test_reads_the_real_format(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    batches = make_cifar(path, per_batch=3)
    d = load_cifar10(path, verify=False)
    assert d.x_train.shape == (15, 32, 32, 3) and d.x_test.shape == (3, 32, 32, 3)
    images = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    np.testing.assert_allclose(d.x_train, standardize(images))  # channel-major -> (H, W, C)
    labels = [y for i in range(1, 6) for y in batches[f"data_batch_{i}"][1]]
    assert d.labels_train.tolist() == labels
    assert d.labels_test.tolist() == batches["test_batch"][1]
    assert d.y_train.shape == (15, 10) and np.allclose(d.y_train.sum(1), 0.0)
    small = load_cifar10(path, n_train=2, n_test=1, verify=False)
    np.testing.assert_allclose(small.x_train, d.x_train[:2])


def test_checksum_mismatch_names_path_and_both_digests(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    make_cifar(path)
    with pytest.raises(ChecksumError) as err:
        load_cifar10(path)
    message = str(err.value)
    assert str(path) in message and cifar10.MD5 in message and archive.md5(path) in message
    assert "--skip-checksum" in message


def test_missing_archive_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-python\.tar\.gz") as err:
        load_cifar10(tmp_path / "nothing.tar.gz")
    assert str(tmp_path / "nothing.tar.gz") in str(err.value) and cifar10.URL in str(err.value)


def test_download_is_checked_before_use(tmp_path, monkeypatch):
    source = tmp_path / "served.tar.gz"
    make_cifar(source)
    monkeypatch.setattr(cifar10, "URL", source.as_uri())
    target = tmp_path / "cache" / "cifar-10-python.tar.gz"
    with pytest.raises(ChecksumError):  # the served file is not the published archive
        load_cifar10(target, download=True)
    assert not target.exists() and not list(target.parent.glob("*.part"))
    monkeypatch.setattr(cifar10, "MD5", archive.md5(source))
    assert load_cifar10(target, download=True).x_test.shape == (3, 32, 32, 3)
    assert target.exists()


def test_a_pickle_that_would_run_a_command_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    evil = pickle.dumps(Exploit(), protocol=2)
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add(tar, "cifar-10-batches-py/data_batch_1", evil)
        add(tar, "cifar-10-batches-py/test_batch", cifar_batch(*cifar_images(2, 0)))
    with pytest.raises(UnsafePickleError, match=r"refusing to load (posix|os|nt)\.system"):
        load_cifar10(path, n_train=1, verify=False)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        b"cbuiltins\neval\n(S'1+1'\ntR.",  # any callable by name
        b"\x80\x02cnumpy\nload\nq\x00.",  # numpy functions other than the reconstructor
        pickle.dumps(np.array([1, "a"], dtype=object), protocol=2),  # object arrays
        pickle.dumps(np.ma.masked_array([1, 2]), protocol=2),  # ndarray subclasses
    ],
)
def test_only_the_cifar_globals_are_accepted(payload):
    with pytest.raises(UnsafePickleError):
        safe_pickle.loads(payload)


def test_a_valid_pickle_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="not a CIFAR-10 batch"):
        cifar10.read_batch(py2_pickle([1, 2, 3]), "x")
    bad = py2_pickle({b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]})
    with pytest.raises(ValueError, match="3072"):
        cifar10.read_batch(bad, "x")


@pytest.mark.parametrize(
    ("name", "kind", "link", "match"),
    [
        ("cifar-10-batches-py/../../escape", tarfile.REGTYPE, "", r"outside the archive"),
        ("/tmp/absolute", tarfile.REGTYPE, "", "absolute path"),
        ("cifar-10-batches-py/data_batch_1", tarfile.SYMTYPE, "/etc/passwd", "is a link"),
        ("cifar-10-batches-py/hard", tarfile.LNKTYPE, "cifar-10-batches-py/test_batch", "link"),
        ("cifar-10-batches-py/dev", tarfile.CHRTYPE, "", "not a regular file"),
    ],
)
def test_unsafe_members_are_refused(tmp_path, name, kind, link, match):
    path = tmp_path / "cifar-10-python.tar.gz"
    make_cifar(path, extra=lambda tar: add(tar, name, b"x", kind=kind, link=link))
    with pytest.raises(UnsafeArchiveError, match=match):
        load_cifar10(path, verify=False)
    assert not (tmp_path / "escape").exists()


def test_a_truncated_archive_is_an_error_not_a_partial_data_set(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    make_cifar(path, per_batch=20)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsafeArchiveError, match="truncated or corrupt"):
        load_cifar10(path, verify=False)
    with pytest.raises(ChecksumError):  # and the checksum catches it first by default
        load_cifar10(path)


def test_an_archive_without_the_batches_names_what_is_missing(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add(tar, "something/else.txt", b"hello")
    with pytest.raises(ValueError, match="missing members"):
        load_cifar10(path, verify=False)
