"""ConvTranspose, ConvLocal and ImageResize: finite networks, errors, properties.

Parity with neural-tangents is in ``tests/reference`` (grid cases ``convT*``, ``convL*``,
``conv_conv*``, ``resize*``); here wide finite networks must converge to ``kernel_fn``
(relative Frobenius error of the Monte Carlo NNGP and NTK below 5%), and the arguments
neural-tangents refuses are refused.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax import lax

from infattn import stax
from infattn.empirical import monte_carlo_kernel_fn
from tests.stax.test_finite_width import relative_error

WIDTH, NNGP_OUT, NNGP_DRAWS, NTK_DRAWS = 256, 128, 64, 96
X = np.random.default_rng(0).standard_normal((2, 4, 3))
IMAGES = np.random.default_rng(1).standard_normal((2, 3, 3, 2))

MODELS = {
    "conv_transpose_same": (
        lambda w, out: stax.serial(
            stax.ConvTranspose(w, (3,), (2,), "SAME", b_std=0.2),
            stax.Relu(),
            stax.ConvTranspose(out, (2,), (1,), "VALID", W_std=1.3),
        ),
        X,
    ),
    "conv_transpose_circular_2d": (
        lambda w, out: stax.serial(
            stax.ConvTranspose(w, (2, 3), (2, 1), "CIRCULAR", parameterization="standard"),
            stax.Erf(),
            stax.ConvTranspose(out, (2, 2), None, "CIRCULAR", b_std=0.1),
        ),
        IMAGES,
    ),
    "conv_local": (
        lambda w, out: stax.serial(
            stax.ConvLocal(w, (2,), padding="SAME", b_std=0.3),
            stax.Relu(),
            stax.ConvLocal(out, (3,), padding="CIRCULAR", parameterization="standard", b_std=0.2),
        ),
        X,
    ),
    "conv_then_local_2d": (
        lambda w, out: stax.serial(
            stax.Conv(w, (2, 2), padding="SAME"),
            stax.Relu(),
            stax.ConvLocal(out, (2, 1), strides=(1, 2), dimension_numbers=("NHWC", "WOIH", "NHWC")),
        ),
        IMAGES,
    ),
    # after one shared 2-D convolution neural-tangents' kernels are stored reversed and its
    # ConvLocal and ImageResize apply the filter / target shape to the wrong axes: this
    # case and "conv_then_local_2d" check infattn against the finite network instead
    "resize_after_conv": (
        lambda w, out: stax.serial(
            stax.Conv(w, (2, 2), padding="SAME", b_std=0.1),
            stax.Relu(),
            stax.ImageResize((-1, 2, 5, -1), "linear"),
            stax.Dense(out),
        ),
        IMAGES,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["nngp", "ntk"])
@pytest.mark.parametrize("name", list(MODELS))
def test_monte_carlo_agrees_with_kernel(name: str, kind: str) -> None:
    """The NNGP from 128 output channels x 64 draws; the NTK (which concentrates at
    width 256) from one output channel x 96 draws."""
    make, x = MODELS[name]
    init_fn, apply_fn, kernel_fn = make(WIDTH, NNGP_OUT if kind == "nngp" else 1)
    exact = kernel_fn(x, None, kind, diagonal_spatial=False)
    draws = NNGP_DRAWS if kind == "nngp" else NTK_DRAWS
    mc = monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(2), draws, vmap_axes=0)
    est = mc(x, None, kind, return_se=True)
    err, se = relative_error(est.mean(kind), est.se(kind), exact)
    assert err < 0.05, f"{name} {kind}: relative Frobenius error {err:.4f} (MC SE {se:.4f})"


def test_local_kernel_vanishes_between_positions() -> None:
    kernel_fn = stax.ConvLocal(3, (2,), padding="SAME", b_std=0.5)[2]
    k = kernel_fn(X, None, "nngp", diagonal_spatial=False)
    assert np.all(np.asarray(k) * (1 - np.eye(4)) == 0.0)
    conv = stax.Conv(3, (2,), padding="SAME", b_std=0.5)[2](X, None, "nngp")
    np.testing.assert_allclose(np.diagonal(k, 0, 2, 3), np.diagonal(conv, 0, 2, 3), rtol=1e-6)
    np.testing.assert_allclose(kernel_fn(X, None, "nngp"), np.diagonal(k, 0, 2, 3), rtol=1e-6)


def test_conv_transpose_apply_is_lax_conv_transpose() -> None:
    for padding in ("VALID", "SAME"):
        init_fn, apply_fn, _ = stax.ConvTranspose(
            3, (3, 2), (2, 1), padding, dimension_numbers=("NCHW", "HIWO", "NWHC")
        )
        x = np.moveaxis(IMAGES, -1, 1)
        _, (w, _) = init_fn(jax.random.PRNGKey(0), x.shape)
        expected = lax.conv_transpose(
            x, w, (2, 1), padding, dimension_numbers=("NCHW", "HIWO", "NWHC")
        ) / np.sqrt(2 * 6)
        np.testing.assert_allclose(apply_fn((w, None), x), expected, rtol=1e-5, atol=1e-6)


def test_conv_local_apply_is_lax_conv_general_dilated_local() -> None:
    init_fn, apply_fn, _ = stax.ConvLocal(4, (2, 3), (1, 2), "SAME")
    _, (w, _) = init_fn(jax.random.PRNGKey(0), IMAGES.shape)
    assert w.shape == (3, 2, 2 * 6, 4)  # output positions, C_in |F|, out_chan
    expected = lax.conv_general_dilated_local(
        IMAGES, w, (1, 2), "SAME", (2, 3), dimension_numbers=("NHWC", "HWIO", "NHWC")
    ) / np.sqrt(2 * 6)
    np.testing.assert_allclose(apply_fn((w, None), IMAGES), expected, rtol=1e-5, atol=1e-6)


def test_resize_apply_and_mask() -> None:
    _, apply_fn, kernel_fn = stax.ImageResize((-1, 6, 2, -1), "cubic")
    np.testing.assert_allclose(
        apply_fn((), IMAGES), jax.image.resize(IMAGES, (2, 6, 2, 2), "cubic"), rtol=1e-6
    )
    with pytest.raises(NotImplementedError, match="method: kernel_fn supports 'linear'"):
        kernel_fn(IMAGES)
    x = IMAGES.copy()
    x[1, 2] = np.nan  # last row of the second image is padding
    out = stax.ImageResize((-1, 6, -1, -1), "nearest")[1]((), x, mask_constant=np.nan)
    np.testing.assert_array_equal(out.mask[1, :, 0], [False] * 4 + [True] * 2)
    assert not np.any(out.mask[0])


@pytest.mark.parametrize(
    ("layer", "error", "match"),
    [
        (lambda: stax.ConvTranspose(3, (2,), padding="FULL"), ValueError, "padding"),
        (lambda: stax.ConvLocal(3, (2, 0)), ValueError, "filter_shape"),
        (lambda: stax.ConvLocal(3, (2,), strides=(1, 1)), ValueError, "strides"),
        (lambda: stax.ConvTranspose(3, (2,), parameterization="mup"), ValueError, "parameteriz"),
        (lambda: stax.ImageResize((-1, 3, -1), "bicubicish"), ValueError, "method"),
        (lambda: stax.ImageResize((-1, 0, -1), "linear"), ValueError, "shape"),
    ],
)
def test_constructor_errors(layer, error, match) -> None:
    with pytest.raises(error, match=match):
        layer()


def test_resize_kernel_refuses_channel_and_batch_axes() -> None:
    with pytest.raises(ValueError, match="resizing the channel axis"):
        stax.ImageResize((-1, 3, 2), "linear")[2](X)
    with pytest.raises(NotImplementedError, match="batch axis"):
        stax.ImageResize((3, 3, -1), "linear")[2](X)
    assert stax.ImageResize((3, 3, -1), "linear")[1]((), X).shape == (3, 3, 3)


def test_spatially_diagonal_outputs_follow_neural_tangents_rule() -> None:
    def shape(*layers, **kw):
        return stax.serial(*layers)[2](X, None, "nngp", **kw).shape

    local = stax.ConvLocal(3, (2,), padding="SAME")
    assert shape(stax.Dense(3), local) == (2, 2, 4)
    assert shape(local, stax.AvgPool((2,), padding="SAME"), local) == (2, 2, 4)
    assert shape(local, stax.Relu()) == (2, 2, 4, 4)  # off-diagonal entries after Relu
    assert shape(local, diagonal_spatial=False) == (2, 2, 4, 4)
    assert shape(stax.Dense(3), stax.AvgPool((2,), padding="SAME"), local) == (2, 2, 4, 4)
    assert shape(stax.GlobalSelfAttention(3, 3, 3, 1), local) == (2, 2, 4, 4)
    branches = stax.parallel(local, stax.Identity())
    out = stax.serial(stax.FanOut(2), branches)[2](X, None, "nngp")
    assert [k.shape for k in out] == [(2, 2, 4), (2, 2, 4)]  # one layout per network
