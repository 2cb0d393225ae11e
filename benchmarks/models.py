"""The benchmark models for any ``stax`` module: the shared brief's transformer (section 6)
and the digits CNN-GAP (:func:`cnn_gap`).

Importable in both environments (it imports nothing but the standard library): pass
``neural_tangents.stax`` or ``infattn.stax``.

    Dense(256) -> 2 x [residual GlobalSelfAttention(4 heads, SOFTMAX, linear scaling,
    SUM positional embedding with decay 1/(1+d^2)) -> LayerNorm -> residual
    Dense-Relu-Dense -> LayerNorm] -> GlobalAvgPool -> Dense(1)
"""

from __future__ import annotations

from typing import Any

WIDTH = 256
N_BLOCKS = 2
N_HEADS = 4


def inverse_quadratic(d: Any) -> Any:
    """Positional-embedding decay ``1 / (1 + d^2)``."""
    return 1.0 / (1.0 + d**2)


def _residual(stax: Any, branch: Any) -> Any:
    """``x + branch(x)``."""
    return stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), branch), stax.FanInSum())


def transformer_block(stax: Any, width: int = WIDTH, n_heads: int = N_HEADS) -> Any:
    """Residual attention, LayerNorm, residual Dense-Relu-Dense, LayerNorm."""
    attention = stax.GlobalSelfAttention(
        n_chan_out=width,
        n_chan_key=width,
        n_chan_val=width,
        n_heads=n_heads,
        linear_scaling=True,
        attention_mechanism="SOFTMAX",
        pos_emb_type="SUM",
        pos_emb_decay_fn=inverse_quadratic,
    )
    mlp = stax.serial(stax.Dense(width), stax.Relu(), stax.Dense(width))
    return stax.serial(
        _residual(stax, attention),
        stax.LayerNorm(),
        _residual(stax, mlp),
        stax.LayerNorm(),
    )


def benchmark_model(
    stax: Any, width: int = WIDTH, n_blocks: int = N_BLOCKS, n_heads: int = N_HEADS
) -> Any:
    """``(init_fn, apply_fn, kernel_fn)`` of the benchmark transformer."""
    blocks = [transformer_block(stax, width, n_heads) for _ in range(n_blocks)]
    return stax.serial(stax.Dense(width), *blocks, stax.GlobalAvgPool(), stax.Dense(1))


RELU_STD = 2.0**0.5
BIAS_STD = 0.05


def cnn_gap(stax: Any, spatial_ndim: int = 2, outputs: int = 10, width: int = WIDTH) -> Any:
    """``infattn.architectures`` ``cnn-gap``: 3 x [3x3 Conv (``W_std=sqrt 2``,
    ``b_std=0.05``), Relu] -> GlobalAvgPool -> Dense(outputs)."""
    conv = [
        layer
        for _ in range(3)
        for layer in (
            stax.Conv(width, (3,) * spatial_ndim, padding="SAME", W_std=RELU_STD, b_std=BIAS_STD),
            stax.Relu(),
        )
    ]
    return stax.serial(*conv, stax.GlobalAvgPool(), stax.Dense(outputs))
