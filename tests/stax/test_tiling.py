"""Kernels assembled from tiles equal the untiled ones: ``kernel_fn(x, None)`` from the
upper triangle of tile pairs, ``kernel_fn(x1, x2)`` from all of them."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from infattn import stax
from infattn.stax import tiling

L = 16  # 512 / 16 = 32 examples per tile: N = 100 makes 3 tiles and a padded one


def model():
    return stax.serial(
        stax.Dense(8),
        stax.GlobalSelfAttention(8, 8, 8, n_heads=2, linear_scaling=True),
        stax.Relu(),
        stax.Conv(4, (3,), padding="SAME"),
        stax.LayerNorm(),
    )


def untiled(kernel_fn, *args, **kw):
    """``kernel_fn(*args, **kw)`` computed whole (a tile budget no input reaches)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tiling, "TILE_ENTRIES", 2**60)
        return kernel_fn(*args, **kw)


@pytest.mark.parametrize("masked", [False, True])
def test_tiles_equal_the_untiled_kernel(masked: bool) -> None:
    assert tiling.tile_size(100, L) == 32
    x = np.random.default_rng(0).standard_normal((100, L, 3))
    if masked:
        x[::3, -5:] = -1.0  # padding at the end of every third sequence
    kw = {"mask_constant": -1.0} if masked else {}
    _, _, kernel_fn = model()  # float64 (tests/conftest.py)
    tiled = kernel_fn(x, None, ("nngp", "ntk", "cov1"), **kw)
    whole = untiled(kernel_fn, x, x, ("nngp", "ntk", "cov1"), **kw)
    jitted = jax.jit(kernel_fn, static_argnames=("get", "mask_constant"))
    jitted = jitted(x, None, get=("nngp", "ntk"), **kw)
    assert tiled.nngp.shape == (100, 100, L, L)
    pairs = [*zip(("nngp", "ntk", "cov1"), tiled, whole, strict=True)]
    for name, a, b in [*pairs, ("jit", jitted.ntk, tiled.ntk)]:  # Relu near rho = 1: ~1e-9
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("masked", [False, True])
def test_rectangular_tiles_equal_the_untiled_kernel(masked: bool) -> None:
    assert tiling.tile_sizes(70, 100, L) == (24, 25)  # x1: 3 tiles (2 padded rows), x2: 4
    rng = np.random.default_rng(1)
    x1, x2 = rng.standard_normal((70, L, 3)), rng.standard_normal((100, L, 3))
    if masked:
        x1[::3, -5:] = x2[::4, :2] = -1.0
    kw = {"mask_constant": -1.0} if masked else {}
    get = ("nngp", "ntk", "cov1", "cov2")
    _, _, kernel_fn = model()
    tiled = kernel_fn(x1, x2, get, **kw)
    whole = untiled(kernel_fn, x1, x2, get, **kw)
    jitted = jax.jit(kernel_fn, static_argnames=("get", "mask_constant"))(x1, x2, get=get, **kw)
    assert tiled.nngp.shape == (70, 100, L, L) and tiled.cov2.shape == (100, L, L)
    assert kernel_fn(x2, x2).x1_is_x2 and not kernel_fn(x1, x2).x1_is_x2  # NT's flag
    for name, a, b, c in zip(get, tiled, whole, jitted, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(c, b, rtol=1e-7, atol=1e-9, err_msg=f"jit {name}")


def test_few_tile_pairs_are_not_tiled() -> None:
    assert tiling.tile_sizes(30, 40, L) is None  # 1 x 2 tiles of 32: fewer than 4 pairs
    assert tiling.tile_sizes(40, 70, L) == (20, 24)
