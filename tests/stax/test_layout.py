"""Layouts: convolution dimension numbers and axis positions mean what they mean in NT.

The kernels of every layout are checked against neural-tangents in
``tests/reference``; here the finite forward pass is checked against
``jax.lax.conv_general_dilated`` called with the same filter, and the kernel
against the forward pass of an equivalent canonical-layout network.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax import lax

from infattn import stax
from infattn.stax import layout

X = np.random.default_rng(0).standard_normal((3, 5, 4, 2))


@pytest.mark.parametrize("rhs", ["HWIO", "WHIO", "IOWH", "OIHW", "WIOH"])
def test_conv_filter_spec_is_lax_semantics(rhs: str) -> None:
    """Filter stored in the spec's layout; ``filter_shape``/``strides`` in its letter order."""
    sizes = {"H": 2, "W": 3}
    steps = {"H": 1, "W": 2}
    spatial = [c for c in rhs if c in "HW"]
    dn = ("NHWC", rhs, "NHWC")
    init_fn, apply_fn, kernel_fn = stax.Conv(
        4,
        tuple(sizes[c] for c in spatial),
        strides=tuple(steps[c] for c in spatial),
        padding="SAME",
        dimension_numbers=dn,
    )
    out_shape, (W, b) = init_fn(jax.random.PRNGKey(1), X.shape)
    assert W.shape == tuple({"I": 2, "O": 4, **sizes}[c] for c in rhs)
    expected = lax.conv_general_dilated(
        X, W, tuple(steps[c] for c in spatial), "SAME", dimension_numbers=dn
    ) / np.sqrt(2 * 6)
    y = apply_fn((W, b), X)
    assert out_shape == y.shape == (3, 5, 2, 4)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    assert kernel_fn(X, None, "nngp").shape == (3, 3, 5, 5, 2, 2)


def test_conv_output_spec_permutes_spatial_axes() -> None:
    """``('NHWC', 'HWIO', 'NWHC')`` is the canonical conv with its output's H, W swapped."""
    plain = stax.Conv(4, (2, 3), strides=(1, 2), padding="SAME", b_std=0.3)
    swapped = stax.Conv(
        4,
        (2, 3),
        strides=(1, 2),
        padding="SAME",
        b_std=0.3,
        dimension_numbers=("NHWC", "HWIO", "NWHC"),
    )
    _, params = plain[0](jax.random.PRNGKey(0), X.shape)
    np.testing.assert_allclose(
        swapped[1](params, X), np.swapaxes(plain[1](params, X), 1, 2), rtol=1e-6
    )
    k_plain = plain[2](X, X[:2], "nngp")
    k_swapped = swapped[2](X, X[:2], "nngp")
    np.testing.assert_allclose(k_swapped, np.transpose(k_plain, (0, 1, 4, 5, 2, 3)), rtol=1e-6)


@pytest.mark.parametrize(
    ("dn", "match"),
    [
        (("NHWC", "HWI", "NHWC"), "filter spec"),
        (("NHWC", "HXIO", "NHWC"), "filter spec"),
        (("NHWC", "HWIO", "NHW"), "output spec"),
        (("NHHC", "HWIO", "NHWC"), "input spec"),
        ("NHWC", "three strings"),
    ],
)
def test_bad_dimension_numbers(dn, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        stax.Conv(4, (2, 2), dimension_numbers=dn)


def test_conv_spec_orders() -> None:
    spec = layout.conv_spec(("NWHC", "IOHW", "NHWC"), 2)
    assert spec.spatial == "WH" and spec.filter_spatial == "HW" and spec.out_spatial == "HW"
    assert spec.to_input_order((2, 3)) == (3, 2)
    assert spec.to_filter_order(spec.to_input_order((2, 3))) == (2, 3)
    assert spec.spatial_to_out == (1, 0)


def _net(spec: str):
    """Conv, LayerNorm, Dense, Relu, GlobalAvgPool, Dense with inputs laid out as ``spec``."""
    b, c = spec.index("N"), spec.index("C")
    b_fc, c_fc = (0, 1) if b < c else (1, 0)
    rhs = "OI" + "".join(ch for ch in spec if ch in "HW")
    return stax.serial(
        stax.Conv(3, (2, 2), padding="SAME", b_std=0.2, dimension_numbers=(spec, rhs, spec)),
        stax.LayerNorm(axis=c, batch_axis=b, channel_axis=c),
        stax.Dense(4, batch_axis=b, channel_axis=c),
        stax.Relu(),
        stax.GlobalAvgPool(batch_axis=b, channel_axis=c),
        stax.Dense(2, batch_axis=b_fc, channel_axis=c_fc),
    )


@pytest.mark.parametrize("spec", ["NCHW", "HWCN", "CWNH"])
def test_layouts_are_moved_at_the_boundary(spec: str) -> None:
    """Same parameters, inputs transposed: outputs transposed, kernels unchanged."""
    x = np.transpose(X, ["NHWC".index(ch) for ch in spec])
    init_ref, apply_ref, kernel_ref = _net("NHWC")
    init_fn, apply_fn, kernel_fn = _net(spec)
    _, params_ref = init_ref(jax.random.PRNGKey(0), X.shape)
    out_shape, params = init_fn(jax.random.PRNGKey(0), x.shape)
    # the filter is OIHW (OIWH when W comes first) in both: the same draws up to that order
    assert jax.tree.map(np.shape, params) == jax.tree.map(np.shape, params_ref)
    if spec.index("W") < spec.index("H"):
        params = ((np.swapaxes(params_ref[0][0], 2, 3), params_ref[0][1]), *params_ref[1:])
    else:
        params = params_ref
    y, y_ref = apply_fn(params, x), apply_ref(params_ref, X)
    assert out_shape == y.shape
    np.testing.assert_allclose(y, y_ref if spec.index("N") < spec.index("C") else y_ref.T, 1e-5)
    index = [slice(None)] * 4
    index[spec.index("N")] = slice(0, 2)
    k = kernel_fn(x, x[tuple(index)])
    k_ref = kernel_ref(X, X[:2])
    np.testing.assert_allclose(k.nngp, k_ref.nngp, rtol=1e-5)
    np.testing.assert_allclose(k.ntk, k_ref.ntk, rtol=1e-5)
    assert (k.batch_axis, k.channel_axis) == (
        (0, 1) if spec.index("N") < spec.index("C") else (1, 0)
    )


def test_masks_follow_the_channel_axis() -> None:
    """Channels first: a position is padding when all its channels (axis 1) are."""
    x = np.transpose(X, (0, 3, 1, 2)).copy()  # NCHW
    x[0, :, 1, 2] = -5.0
    _, _, kernel_fn = _net("NCHW")
    k = kernel_fn(x, None, mask_constant=-5.0)
    assert k.mask1 is not None and k.mask1.shape == (3,) and not k.mask1.any()
    first = stax.Conv(3, (1, 1), dimension_numbers=("NCHW", "OIHW", "NCHW"))
    kernel = first[2](x, None, mask_constant=-5.0)
    assert kernel.mask1.shape == (3, 5, 4) and kernel.mask1.sum() == 1 and kernel.mask1[0, 1, 2]
    assert not np.allclose(k.nngp, kernel_fn(x, None).nngp)


def test_inconsistent_axes_are_refused() -> None:
    """A layer whose axes disagree with its inputs' layout raises (as in NT)."""
    conv = stax.Conv(3, (2, 2), dimension_numbers=("NCHW", "OIHW", "NCHW"))
    _, _, kernel_fn = stax.serial(conv, stax.Dense(2))
    with pytest.raises(ValueError, match="Dense: channel_axis=-1 but its inputs have"):
        kernel_fn(np.transpose(X, (0, 3, 1, 2)))
    with pytest.raises(ValueError, match="channel_axis"):
        stax.Dense(2, channel_axis=4)[2](X)
    with pytest.raises(TypeError, match="batch_axis"):
        stax.Dense(2, batch_axis=0.0)
