"""``kernel_fn(x, None)`` assembled from tiles equals the untiled ``kernel_fn(x, x)``."""

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


@pytest.mark.parametrize("masked", [False, True])
def test_tiles_equal_the_untiled_kernel(masked: bool) -> None:
    assert tiling.tile_size(100, L) == 32
    x = np.random.default_rng(0).standard_normal((100, L, 3))
    if masked:
        x[::3, -5:] = -1.0  # padding at the end of every third sequence
    kw = {"mask_constant": -1.0} if masked else {}
    _, _, kernel_fn = model()  # float64 (tests/conftest.py)
    tiled = kernel_fn(x, None, ("nngp", "ntk", "cov1"), **kw)
    whole = kernel_fn(x, x, ("nngp", "ntk", "cov1"), **kw)
    jitted = jax.jit(kernel_fn, static_argnames=("get", "mask_constant"))
    jitted = jitted(x, None, get=("nngp", "ntk"), **kw)
    assert tiled.nngp.shape == (100, 100, L, L)
    pairs = [*zip(("nngp", "ntk", "cov1"), tiled, whole, strict=True)]
    for name, a, b in [*pairs, ("jit", jitted.ntk, tiled.ntk)]:  # Relu near rho = 1: ~1e-9
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9, err_msg=name)
