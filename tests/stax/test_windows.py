"""``windows.materialize``: the fusion barrier of the conv window sums changes no value."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infattn.stax.windows import Windows, materialize


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 8), (2, 5, 4, 4), (7,)])
def test_materialize_returns_its_input_bit_for_bit(dtype, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype) * 1e3
    for f in (materialize, jax.jit(materialize)):  # float64: tests/conftest.py enables x64
        out = np.asarray(f(jnp.asarray(x)))
        assert out.dtype == dtype and out.shape == shape
        np.testing.assert_array_equal(out, x)


def test_shared_window_means_of_a_known_kernel():
    # (1, s, s') with s = 4: window 3, SAME: out[i, j] = mean_t m[i + t - 1, j + t - 1]
    m = np.arange(16.0).reshape(1, 4, 4)
    padded = np.pad(m[0], 1)
    expected = np.array(
        [[sum(padded[i + t, j + t] for t in range(3)) / 3 for j in range(4)] for i in range(4)]
    )
    out = Windows((3,), (1,), "SAME").shared(jnp.asarray(m), 1)
    np.testing.assert_allclose(np.asarray(out)[0], expected, rtol=1e-6)
