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
