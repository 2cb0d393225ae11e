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
        assert a1.dtype == np.float64 and a1.shape == (grid.N1, *case.spatial, case.channels)
        np.testing.assert_array_equal(a1, b1)
        assert (a2 is None) == (not case.with_x2)
        if a2 is not None:
            assert a2.shape[0] == grid.N2
            np.testing.assert_array_equal(a2, b2)


def test_masking_pads_but_never_fully_masks() -> None:
    for case in grid.CASES.values():
        for x in filter(lambda v: v is not None, case.inputs()):
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
    ):
        assert needle in specs, needle


def test_every_filter_spec_is_covered() -> None:
    specs = " ".join(case.spec for case in grid.CASES.values())
    for rhs in (*grid.FILTER_SPECS_2D, *grid.FILTER_SPECS_1D):
        needle = f"'{rhs}'"
        assert needle in specs, needle
    for needle in ("'NWHC', 'HWIO', 'NWHC'", "'NHWC', 'HWIO', 'NWHC'", "'NDHWC', 'HDWIO'"):
        assert needle in specs, needle
