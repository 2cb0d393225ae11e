"""Hypothesis strategies: small random models and inputs built from infattn.stax."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from infattn import stax

MECHANISMS = ("SOFTMAX", "IDENTITY", "ABS", "RELU")


def _decay(d):
    return 1.0 / (1.0 + d)


@st.composite
def attention_layers(draw, width: int):
    linear = draw(st.booleans())
    mechanism = draw(st.sampled_from(MECHANISMS)) if linear else "IDENTITY"
    emb = draw(st.sampled_from(("NONE", "SUM", "CONCAT")))
    return stax.GlobalSelfAttention(
        width,
        width,
        width,
        draw(st.integers(1, 3)),
        linear_scaling=linear,
        W_key_std=draw(st.floats(0.5, 1.5)),
        W_query_std=draw(st.floats(0.5, 1.5)),
        W_value_std=draw(st.floats(0.5, 1.5)),
        W_out_std=draw(st.floats(0.5, 1.5)),
        b_std=draw(st.sampled_from((None, 0.3))),
        attention_mechanism=mechanism,
        pos_emb_type=emb,
        pos_emb_decay_fn=draw(st.sampled_from((None, _decay))),
        W_pos_emb_std=draw(st.floats(0.5, 1.5)),
        val_pos_emb=draw(st.booleans()),
    )


@st.composite
def blocks(draw, width: int):
    kind = draw(st.sampled_from(("attention", "residual_attention", "mlp", "layernorm")))
    if kind == "attention":
        return [draw(attention_layers(width))]
    if kind == "residual_attention":
        return [
            stax.FanOut(2),
            stax.parallel(stax.Identity(), draw(attention_layers(width))),
            stax.FanInSum(),
        ]
    if kind == "mlp":
        nonlin = draw(
            st.sampled_from(
                (
                    stax.Relu(),
                    stax.Erf(),
                    stax.Gelu(),
                    stax.Abs(),
                    stax.LeakyRelu(0.2),
                    stax.ABRelu(-0.5, 1.5),
                )
            )
        )
        return [nonlin, stax.Dense(width, W_std=draw(st.floats(0.5, 2.0)), b_std=0.1)]
    return [stax.LayerNorm()]


@st.composite
def models(draw, pooled: bool | None = None):
    """``(model, spatial_ndim)``: Dense embedding, 1-3 blocks, optional readout."""
    width = 8
    layers = [
        stax.Dense(width, W_std=draw(st.floats(0.5, 2.0)), b_std=draw(st.sampled_from((None, 0.2))))
    ]
    for _ in range(draw(st.integers(1, 3))):
        layers += draw(blocks(width))
    pooled = draw(st.booleans()) if pooled is None else pooled
    if pooled:
        layers += [draw(st.sampled_from((stax.GlobalAvgPool(), stax.Flatten()))), stax.Dense(1)]
    return stax.serial(*layers)


@st.composite
def sequences(draw, n: int | None = None, length: int | None = None, channels: int | None = None):
    n = draw(st.integers(1, 3)) if n is None else n
    length = draw(st.integers(2, 5)) if length is None else length
    channels = draw(st.integers(1, 4)) if channels is None else channels
    seed = draw(st.integers(0, 2**31 - 1))
    return np.random.default_rng(seed).standard_normal((n, length, channels))
