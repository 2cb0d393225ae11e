"""NT's enums (``stax.Padding``, ``stax.AttentionMechanism``, ``stax.PositionalEmbedding``)
stand for their string values wherever a layer takes one: same kernels, same errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from infattn import stax

X = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 3))


def _kernels(layer):
    k = layer[2](X, None, ("nngp", "ntk"))
    return np.asarray(k.nngp), np.asarray(k.ntk)


@pytest.mark.parametrize("padding", list(stax.Padding))
def test_padding_member_equals_its_value(padding):
    """Conv and AvgPool with ``Padding.X`` give the kernels of ``'X'``."""
    for make in (lambda p: stax.Conv(4, (3,), padding=p), lambda p: stax.AvgPool((2,), padding=p)):
        for a, b in zip(_kernels(make(padding)), _kernels(make(padding.value)), strict=True):
            np.testing.assert_array_equal(a, b)


def test_attention_enums_equal_their_values():
    def attention(mechanism, emb):
        return stax.GlobalSelfAttention(
            4, 4, 4, 2, attention_mechanism=mechanism, pos_emb_type=emb,
            pos_emb_decay_fn=lambda d: 1 / (1 + d**2),
        )  # fmt: skip

    for mechanism in stax.AttentionMechanism:
        for emb in stax.PositionalEmbedding:
            a = _kernels(attention(mechanism, emb))
            b = _kernels(attention(mechanism.value, emb.value))
            for u, v in zip(a, b, strict=True):
                np.testing.assert_array_equal(u, v)


def test_values_are_neural_tangents_spelling():
    assert [p.value for p in stax.Padding] == ["VALID", "SAME", "CIRCULAR"]
    assert [m.value for m in stax.AttentionMechanism] == ["SOFTMAX", "IDENTITY", "ABS", "RELU"]
    assert [e.value for e in stax.PositionalEmbedding] == ["NONE", "SUM", "CONCAT"]


@pytest.mark.parametrize("padding", [3, None, "REFLECT"])
def test_bad_padding_names_the_argument(padding):
    with pytest.raises(ValueError, match="padding: expected one of 'VALID', 'SAME', 'CIRCULAR'"):
        stax.Conv(4, (3,), padding=padding)
