"""The vectorised ``arctan2`` against numpy's, both signs, zeros, wide magnitudes."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from infattn.stax.angles import arctan2


@pytest.mark.parametrize(("dtype", "ulps"), [(np.float64, 16), (np.float32, 4)])
def test_arctan2_matches_numpy(dtype: type, ulps: int) -> None:
    rng = np.random.default_rng(0)
    y = (rng.standard_normal(10**5) * 10.0 ** rng.uniform(-6, 3, 10**5)).astype(dtype)
    x = (rng.standard_normal(10**5) * 10.0 ** rng.uniform(-6, 3, 10**5)).astype(dtype)
    y[:6], x[:6] = [0, 0, 1, -1, 1, 2], [0, -1, 0, 0, 1, -2]
    ref = np.arctan2(y.astype(np.float64), x.astype(np.float64))
    got = np.asarray(arctan2(jnp.asarray(y), jnp.asarray(x)))
    assert got.dtype == dtype
    err = np.abs(got - ref) / np.maximum(np.abs(ref), np.finfo(dtype).tiny)
    assert err.max() < ulps * np.finfo(dtype).eps
