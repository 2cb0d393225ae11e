"""Tiled kernels in a store: values against direct kernel_fn calls, refusals, budgets."""

from __future__ import annotations

import dataclasses
import shutil

import jax
import numpy as np
import pytest

from infattn import stax
from infattn.scale import KernelStore, StoreMismatchError, compute_kernels
from infattn.scale.store import Tile
from tests.scale.runner import inputs, model

KINDS = ("nngp", "ntk")


def test_tiles_match_one_kernel_fn_call(built):
    _, kernel_fn, arrays = built
    x_train, x_test = inputs()
    direct = jax.jit(lambda a, b: kernel_fn(a, b, KINDS))
    full, cross = direct(x_train, None), direct(x_test, x_train)
    self_full = direct(x_test, None)  # the test-test kernel, here only to read its diagonal
    for kind in KINDS:
        train = arrays[kind, "train_train"]
        assert train.shape == (11, 11)
        np.testing.assert_array_equal(train, train.T)  # mirrored exactly
        np.testing.assert_allclose(train, getattr(full, kind), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(
            arrays[kind, "test_train"], getattr(cross, kind), rtol=1e-12, atol=1e-14
        )
        np.testing.assert_allclose(
            arrays[kind, "test_diag"], np.diag(getattr(self_full, kind)), rtol=1e-12, atol=1e-14
        )


def test_rerun_of_a_finished_store_changes_nothing(built):
    path, kernel_fn, arrays = built
    x_train, x_test = inputs()
    store = compute_kernels(kernel_fn, x_train, x_test, path, progress=False)  # tile size kept
    assert store.layout.tile == 3 and not store.pending()
    for (kind, part), value in arrays.items():
        np.testing.assert_array_equal(store.load(kind, part), value)


def test_half_written_tile_is_recomputed_bit_identically(built, tmp_path):
    path, kernel_fn, arrays = built
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    store = KernelStore.open(copy, mode="r+")
    # a tile killed between its data and its done flag: garbage data, no flag
    group = store._group
    for kind in KINDS:
        group[f"{kind}/train_train"][3:6, 6:9] = -1.0
        group[f"{kind}/test_train"][3:5, 0:3] = np.nan
    group["done/train_train"][1, 2] = 0
    group["done/test_train"][1, 0] = 0
    assert set(store.pending()) == {Tile("train_train", 1, 2), Tile("test_train", 1, 0)}
    x_train, x_test = inputs()
    store = compute_kernels(kernel_fn, x_train, x_test, copy, progress=False)
    for (kind, part), value in arrays.items():
        np.testing.assert_array_equal(store.load(kind, part), value)


def test_store_written_with_other_settings_is_refused(built):
    path, kernel_fn, arrays = built
    x_train, x_test = inputs()
    other_model = stax.serial(stax.Dense(16, b_std=0.2), stax.Relu(), stax.Flatten(), stax.Dense(1))
    cases = [
        ({"x_train": x_train * 2}, "x_train contents"),
        ({"x_test": x_test[:4]}, "x_test shape"),
        ({"kernel_fn": other_model[2]}, "model fingerprint"),
        ({"tile_size": 4}, "tile size: store 3, this call 4"),
        ({"dtype": np.float32}, "dtype: store 'float64', this call 'float32'"),
        ({"get": "nngp"}, "kernels (get)"),
        ({"mask_constant": 0.0}, "mask_constant"),
    ]
    base = {"kernel_fn": kernel_fn, "x_train": x_train, "x_test": x_test}
    for change, named in cases:
        args = {**base, **change}
        with pytest.raises(StoreMismatchError, match="refusing to mix") as error:
            compute_kernels(
                args.pop("kernel_fn"), args.pop("x_train"), args.pop("x_test"), path,
                progress=False, **args,
            )  # fmt: skip
        assert named in str(error.value), (change, str(error.value))
    store = KernelStore.open(path)
    for (kind, part), value in arrays.items():  # untouched
        np.testing.assert_array_equal(store.load(kind, part), value)


def test_paths_that_are_not_kernel_stores_are_refused(tmp_path):
    import zarr

    x_train, x_test = inputs()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a kernel store"):
        compute_kernels(model(), x_train, x_test, tmp_path / "busy", tile_size=3)
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    with pytest.raises(StoreMismatchError, match="not one written by infattn"):
        compute_kernels(model(), x_train, x_test, tmp_path / "other.zarr", tile_size=3)


def test_incomplete_store_is_not_read(built, tmp_path):
    path, _, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    store = KernelStore.open(copy, mode="r+")
    store._group["done/test_diag"][1] = 0
    with pytest.raises(RuntimeError, match="1 of 20 tiles not written yet"):
        store.load("nngp", "train_train")


def test_memory_budget_that_cannot_hold_a_tile_is_refused(tmp_path):
    x_train, x_test = inputs()
    kernel_fn = model()
    with pytest.raises(MemoryError, match=r"cannot hold one tile: a tile of 1 x 1 examples needs"):
        compute_kernels(kernel_fn, x_train, x_test, tmp_path / "a", memory_budget="1KiB")
    with pytest.raises(MemoryError, match=r"one tile of 8 x 8 examples: it needs"):
        compute_kernels(
            kernel_fn, x_train, x_test, tmp_path / "b", memory_budget="8KiB", tile_size=8
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(ValueError, match="memory size '12 parsecs'"):
        compute_kernels(kernel_fn, x_train, x_test, tmp_path / "c", memory_budget="12 parsecs")


def test_models_the_store_cannot_hold_are_refused(tmp_path):
    x = np.random.default_rng(0).standard_normal((4, 3, 2))
    spatial = stax.serial(stax.Dense(4), stax.Relu())[2]
    with pytest.raises(ValueError, match=r"nngp of shape \(1, 1, 3, 3\)"):
        compute_kernels(spatial, x, x, tmp_path / "s", tile_size=2)
    with pytest.raises(ValueError, match="get: expected"):
        compute_kernels(model(), x, x, tmp_path / "g", get=("nngp", "cov1"))


def test_monte_carlo_attention_gets_its_train_kernel_from_one_joint_call(tmp_path):
    kernel_fn = stax.serial(
        stax.Dense(8),
        stax.GlobalSelfAttention(8, 8, 8, 1, linear_scaling=False, mc_samples=16),
        stax.GlobalAvgPool(),
        stax.Dense(1),
    )[2]
    x_train = np.random.default_rng(1).standard_normal((6, 3, 2))
    store = compute_kernels(kernel_fn, x_train, None, tmp_path / "mc", tile_size=1)
    assert store.layout.tile == 6
    joint = jax.jit(lambda a: kernel_fn(a, None, KINDS))(x_train)
    for kind in KINDS:
        train = store.load(kind, "train_train")
        np.testing.assert_allclose(train, getattr(joint, kind), rtol=1e-12, atol=1e-14)
        assert np.linalg.eigvalsh(train).min() >= -1e-10 * np.abs(train).max()  # PSD


def sampled_jointly(kernel_fn):
    """``kernel_fn`` declared not pairwise, as Monte Carlo attention is (cheap to compile)."""

    def joint_kernel_fn(x1, x2=None, get=None, *, mask_constant=None):
        return kernel_fn(x1, x2, get, mask_constant=mask_constant)

    joint_kernel_fn.layer = dataclasses.replace(kernel_fn.layer, pairwise=False)
    return joint_kernel_fn


def test_joint_models_tile_their_test_rows_and_size_the_train_tile(built, tmp_path):
    _, kernel_fn, arrays = built
    x_train, x_test = inputs()
    joint = sampled_jointly(kernel_fn)
    store = compute_kernels(joint, x_train, x_test, tmp_path / "j", tile_size=2, progress=False)
    assert (store.layout.tile, store.layout.test_tile) == (11, 2)  # tile_size: test rows
    assert len(store.layout.tiles()) == 1 + 3 + 3
    for (kind, part), value in arrays.items():
        np.testing.assert_allclose(store.load(kind, part), value, rtol=1e-12, atol=1e-14)
    with pytest.raises(MemoryError, match="samples a batch jointly"):
        compute_kernels(joint, x_train, x_test, tmp_path / "small", memory_budget="4KiB")
