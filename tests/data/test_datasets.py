"""Digits split and layouts, synthetic tasks, targets; docstring examples of infattn.data."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

from infattn.data import load_digits, one_hot, phase_sequences, standardize, trend_sequences

MODULES = ("archive", "cifar10", "dataset", "digits", "glove", "safe_pickle", "synthetic", "text")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"infattn.data.{name}")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_digits_split_is_fixed_disjoint_and_complete():
    from sklearn.datasets import load_digits as sklearn_digits

    d = load_digits("image")
    assert d.x_train.shape == (1000, 8, 8, 1) and d.x_test.shape == (797, 8, 8, 1)
    raw, perm = sklearn_digits(), np.random.RandomState(0).permutation(1797)
    np.testing.assert_allclose(d.x_train.reshape(1000, 64), standardize(raw.data[perm[:1000]]))
    np.testing.assert_allclose(d.x_test.reshape(797, 64), standardize(raw.data[perm[1000:]]))
    assert d.labels_train.tolist() == raw.target[perm[:1000]].tolist()
    assert np.bincount(d.labels_test, minlength=10).min() > 60
    x = d.x_train.reshape(1000, -1)
    np.testing.assert_allclose(x.mean(1), 0.0, atol=1e-12)
    np.testing.assert_allclose((x**2).mean(1), 1.0)


def test_digits_rows_are_the_images_rows():
    image, rows = load_digits("image", 5, 5), load_digits("rows", 5, 5)
    np.testing.assert_array_equal(image.x_train[..., 0], rows.x_train)
    np.testing.assert_array_equal(image.labels_test, rows.labels_test)
    with pytest.raises(ValueError, match="layout"):
        load_digits("columns")
    with pytest.raises(ValueError, match="n_train"):
        load_digits(n_train=1001)


def test_trend_sequences_pad_at_the_end_and_encode_the_class_in_the_order():
    d = trend_sequences(n_train=400, n_test=10, min_length=3, max_length=9, noise=0.3, seed=1)
    pad = np.all(d.x_train == d.mask_constant, axis=-1)
    lengths = (~pad).sum(1)
    assert lengths.min() >= 3 and lengths.max() <= 9
    assert all(not p[:n].any() and p[n:].all() for p, n in zip(pad, lengths, strict=True))
    # the drift direction: last real token minus first, projected on the mean drift
    drift = np.array([x[n - 1] - x[0] for x, n in zip(d.x_train, lengths, strict=True)])
    u = np.mean(drift * np.where(d.labels_train == 1, 1, -1)[:, None], axis=0)
    assert np.mean((drift @ u > 0) == (d.labels_train == 1)) > 0.9
    # ...while the bag of tokens is the same for both classes (sum of tokens: no signal)
    total = d.x_train.sum(1) @ u
    assert abs(total[d.labels_train == 1].mean() - total[d.labels_train == 0].mean()) < 0.5


def test_phase_sequences_and_targets():
    x = phase_sequences(np.linspace(0, 1, 4), length=5)
    assert x.shape == (4, 5, 2)
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0)
    y = one_hot(np.array([0, 2]), 3)
    np.testing.assert_allclose(y.sum(1), 0.0, atol=1e-15)
    assert y.argmax(1).tolist() == [0, 2]
    with pytest.raises(ValueError, match="labels"):
        one_hot(np.array([3]), 3)
