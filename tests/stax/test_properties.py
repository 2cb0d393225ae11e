"""Properties every kernel must have, on random small models (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.stax.strategies import models, sequences

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


def as_matrix(k: np.ndarray) -> np.ndarray:
    """``(N, N, L, L)`` or ``(N, N)`` -> the ``(N L, N L)`` covariance matrix."""
    k = np.asarray(k)
    if k.ndim == 2:
        return k
    n, _, length, _ = k.shape
    return k.transpose(0, 2, 1, 3).reshape(n * length, n * length)


def assert_psd(mat: np.ndarray, name: str) -> None:
    scale = max(np.abs(mat).max(), 1e-30)
    np.testing.assert_allclose(mat, mat.T, atol=1e-10 * scale, err_msg=f"{name} not symmetric")
    eig = np.linalg.eigvalsh((mat + mat.T) / 2)
    assert eig.min() >= -1e-9 * scale, f"{name} has eigenvalue {eig.min():.3g} (scale {scale:.3g})"


@SETTINGS
@given(model=models(), x=sequences())
def test_kernels_symmetric_psd(model, x):
    _, _, kernel_fn = model
    k = kernel_fn(x, None, ("nngp", "ntk", "cov1"))
    assert_psd(as_matrix(k.nngp), "nngp")
    assert_psd(as_matrix(k.ntk), "ntk")
    # cov1 is the batch diagonal of nngp
    np.testing.assert_allclose(
        k.cov1, np.einsum("ii...->i...", np.asarray(k.nngp)), rtol=1e-10, atol=1e-12
    )


@SETTINGS
@given(model=models(), data=st.data())
def test_cross_kernel_is_block_of_joint_kernel(model, data):
    length = data.draw(st.integers(2, 5))
    channels = data.draw(st.integers(1, 4))
    x1 = data.draw(sequences(length=length, channels=channels))
    x2 = data.draw(sequences(length=length, channels=channels))
    _, _, kernel_fn = model
    cross = kernel_fn(x1, x2, ("nngp", "ntk"))
    joint = kernel_fn(np.concatenate([x1, x2]), None, ("nngp", "ntk"))
    n1 = len(x1)
    for name in ("nngp", "ntk"):
        np.testing.assert_allclose(
            getattr(cross, name),
            getattr(joint, name)[:n1, n1:],
            rtol=1e-9,
            atol=1e-12,
            err_msg=name,
        )
