"""The parity grid itself is well formed (needs neither infattn nor neural-tangents)."""

from __future__ import annotations

import math

import numpy as np

from tests.reference import grid


def test_size_is_bounded() -> None:
    assert 150 <= len(grid.CASES) <= 700


def test_inputs_are_deterministic_float64() -> None:
    for case in grid.CASES.values():
        (a1, a2), (b1, b2) = case.inputs(), case.inputs()
        canonical = case.to_canonical(a1)
        assert a1.dtype == np.float64
        assert canonical.shape == (grid.N1, *case.spatial, case.channels)
        np.testing.assert_array_equal(case.to_layout(canonical), a1)
        np.testing.assert_array_equal(a1, b1)
        assert (a2 is None) == (not case.with_x2)
        if a2 is not None:
            assert case.to_canonical(a2).shape[0] == grid.N2
            np.testing.assert_array_equal(a2, b2)


def test_masking_pads_but_never_fully_masks() -> None:
    for case in grid.CASES.values():
        for x in filter(lambda v: v is not None, case.inputs()):
            x = case.to_canonical(x)
            flat = x.reshape(x.shape[0], math.prod(case.spatial), case.channels)
            if case.mask_constant is None:
                continue
            padded = np.all(flat == case.mask_constant, axis=-1)
            assert np.all(np.any(flat == case.mask_constant, axis=-1) == padded)
            assert not np.any(np.all(padded, axis=1)), case.name
            assert np.any(padded), case.name


def test_every_attention_option_is_covered() -> None:
    specs = " ".join(case.spec for case in grid.CASES.values())
    for needle in (
        "'SOFTMAX'",
        "'IDENTITY'",
        "'ABS'",
        "'RELU'",
        "linear_scaling=False",
        "'NONE'",
        "'SUM'",
        "'CONCAT'",
        "pos_emb_p_norm=1",
        "inverse_quadratic",
        "exponential",
        "n_chan_pos_emb=",
        "W_pos_emb_std=",
        "val_pos_emb=True",
        "W_key_std=",
        "W_query_std=",
        "W_value_std=",
        "W_out_std=",
        "n_heads=3",
        "'standard'",
        "Conv(",
        "'SAME'",
        "'VALID'",
        "strides=",
        "(3, 3)",
        "(2, 2)",
        "LeakyRelu",
        "ABRelu",
        "Abs",
        "Erf",
        "Gelu",
        "LayerNorm",
        "GlobalAvgPool",
        "Flatten",
        "FanOut",
        "FanInSum",
        "parallel",
        "Identity",
        "ConvTranspose(",
        "ConvLocal(",
        "ImageResize(",
        "'CIRCULAR'",
        "'nearest'",
        "antialias=False",
    ):
        assert needle in specs, needle


def test_every_filter_spec_is_covered() -> None:
    specs = " ".join(case.spec for case in grid.CASES.values())
    for rhs in (*grid.FILTER_SPECS_2D, *grid.FILTER_SPECS_1D):
        needle = f"'{rhs}'"
        assert needle in specs, needle
    for needle in ("'NWHC', 'HWIO', 'NWHC'", "'NHWC', 'HWIO', 'NWHC'", "'NDHWC', 'HDWIO'"):
        assert needle in specs, needle


def test_every_layout_is_covered() -> None:
    """Inputs in each layout of ``LAYOUT_SPECS`` (every position of N and of C)."""
    layouts = {case.layout for case in grid.CASES.values()}
    assert set(grid.LAYOUT_SPECS) <= layouts
    for n in range(4):
        assert any(spec.index("N") == n for spec in grid.LAYOUT_SPECS)
        assert any(spec.index("C") == n for spec in grid.LAYOUT_SPECS)
    specs = " ".join(case.spec for case in grid.CASES.values())
    for needle in ("channel_axis=3", "channel_axis=1", "batch_axis=1", "layout=CN "):
        assert needle in specs, needle
