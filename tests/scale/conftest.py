"""A finished store of the test model, shared by the scale tests."""

from __future__ import annotations

import pytest

from infattn.scale import compute_kernels
from tests.scale.runner import inputs, model

KINDS = ("nngp", "ntk")
PARTS = ("train_train", "test_train", "test_diag")


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """``(path, kernel_fn, arrays)``: 11 train, 5 test examples in tiles of 3, computed here."""
    path = tmp_path_factory.mktemp("scale") / "kernels"
    kernel_fn = model()
    x_train, x_test = inputs()
    store = compute_kernels(kernel_fn, x_train, x_test, path, tile_size=3, progress=False)
    arrays = {(k, p): store.load(k, p) for k in KINDS for p in PARTS}
    return path, kernel_fn, arrays
