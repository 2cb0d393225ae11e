"""Named architectures for experiments: the paper's attention families and baselines.

Each entry builds an ``infattn.stax`` model for inputs ``(N, *spatial, C)`` with
``outputs`` logits. The *stem* adapts to the input: a 3x3 convolution with ReLU
for images (two spatial axes), a token-wise Dense embedding for sequences (one
spatial axis), as in the paper's CIFAR-10 and IMDb models. ``width`` only
matters for finite networks (kernels are its infinite limit).

``infattn experiment --list`` prints :data:`ARCHITECTURES` with one line each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from infattn import stax

RELU_STD = 2.0**0.5
BIAS_STD = 0.05
DEFAULT_WIDTH = 256


def decay(d: Any) -> Any:
    """Positional-embedding covariance ``1 / (1 + d^2)`` between positions at distance ``d``."""
    return 1.0 / (1.0 + d**2)


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A named model family: ``build(spatial_ndim, outputs, width)`` -> the stax triple."""

    name: str
    description: str
    uses_attention: bool
    layers: Callable[[int, int], list]

    def build(self, spatial_ndim: int, outputs: int, width: int = DEFAULT_WIDTH) -> tuple:
        """``(init_fn, apply_fn, kernel_fn)`` for inputs with ``spatial_ndim`` spatial axes.

        Example:
          >>> _, _, kernel_fn = get("fc3").build(spatial_ndim=1, outputs=2)
          >>> import numpy as np
          >>> kernel_fn(np.ones((3, 4, 2)), None, "nngp").shape
          (3, 3)
        """
        if spatial_ndim not in (1, 2):
            raise ValueError(
                f"{self.name}: expected inputs with 1 (sequences) or 2 (images) spatial axes, "
                f"got {spatial_ndim}"
            )
        return stax.serial(*self.layers(spatial_ndim, width), stax.Dense(outputs))


def _dense(width: int) -> tuple:
    return stax.Dense(width, W_std=RELU_STD, b_std=BIAS_STD)


def _conv(width: int, spatial_ndim: int) -> tuple:
    return stax.Conv(width, (3,) * spatial_ndim, padding="SAME", W_std=RELU_STD, b_std=BIAS_STD)


def _stem(spatial_ndim: int, width: int) -> list:
    """Two 3x3 convolutions with a ReLU between for images; a token-wise Dense embedding for
    sequences. Both end linear, so the attention that follows sees a Gaussian input."""
    if spatial_ndim == 2:
        first = stax.Conv(width, (3, 3), padding="SAME", b_std=BIAS_STD)
        return [first, stax.Relu(), _conv(width, 2)]
    return [stax.Dense(width, b_std=BIAS_STD)]


def _attention(width: int, *, linear: bool = True, positions: bool = True, **kwargs) -> tuple:
    pe = {"pos_emb_type": "SUM", "pos_emb_decay_fn": decay} if positions else {}
    return stax.GlobalSelfAttention(
        width, width, width, n_heads=4, linear_scaling=linear, b_std=BIAS_STD, **pe, **kwargs
    )


def _residual(*layers: tuple) -> tuple:
    return stax.serial(
        stax.FanOut(2), stax.parallel(stax.Identity(), stax.serial(*layers)), stax.FanInSum()
    )


def _fc3(nd: int, w: int) -> list:
    return [stax.Flatten(), *[layer for _ in range(3) for layer in (_dense(w), stax.Relu())]]


def _cnn_gap(nd: int, w: int) -> list:
    return [
        *[layer for _ in range(3) for layer in (_conv(w, nd), stax.Relu())],
        stax.GlobalAvgPool(),
    ]


def _attn(positions: bool, linear: bool) -> Callable[[int, int], list]:
    def layers(nd: int, w: int) -> list:
        return [
            *_stem(nd, w),
            _attention(w, positions=positions, linear=linear),
            stax.Relu(),
            _dense(w),
            stax.Relu(),
            stax.GlobalAvgPool(),
        ]

    return layers


def _transformer(nd: int, w: int) -> list:
    block = [
        _residual(_attention(w)),
        stax.LayerNorm(),
        _residual(_dense(w), stax.Relu(), stax.Dense(w, b_std=BIAS_STD)),
        stax.LayerNorm(),
    ]
    return [*_stem(nd, w), *block, stax.GlobalAvgPool()]


def _conv_attention(nd: int, w: int) -> list:
    convs = [_conv(w, nd), stax.Relu(), _conv(w, nd)]
    return [*convs, _residual(_attention(w)), stax.Relu(), stax.GlobalAvgPool()]


def _attention_fc(nd: int, w: int) -> list:
    mlp = [layer for _ in range(3) for layer in (_dense(w), stax.Relu())]
    return [*_stem(nd, w), _residual(_attention(w)), stax.Flatten(), *mlp]


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            "fc3", "3-layer ReLU fully connected network (attention-free baseline)", False, _fc3
        ),
        Architecture(
            "cnn-gap",
            "3 ReLU 3x3 convolutions, global average pooling (attention-free)",
            False,
            _cnn_gap,
        ),
        Architecture(
            "attn",
            "stem, softmax attention 1/d scaling, no positions, ReLU MLP, pooling",
            True,
            _attn(positions=False, linear=True),
        ),
        Architecture(
            "attn-pe",
            "as attn with positional embeddings (SUM, decay 1/(1+d^2))",
            True,
            _attn(positions=True, linear=True),
        ),
        Architecture(
            "attn-sqrt",
            "as attn-pe with standard 1/sqrt(d) scaling (Monte Carlo logits)",
            True,
            _attn(positions=True, linear=False),
        ),
        Architecture(
            "transformer",
            "stem, residual attention, LayerNorm, residual MLP, LayerNorm, pooling",
            True,
            _transformer,
        ),
        Architecture(
            "conv-attn",
            "3x3 convolution, ReLU, 3x3 convolution, residual softmax "
            "attention with positions, ReLU, pooling",
            True,
            _conv_attention,
        ),
        Architecture(
            "attn-fc",
            "stem, residual softmax attention 1/d with positions, flatten, 3-layer ReLU MLP",
            True,
            _attention_fc,
        ),
    )
}


def get(name: str) -> Architecture:
    """The architecture called ``name``; an unknown name lists the known ones.

    Example:
      >>> get("nope")  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      KeyError: "unknown architecture 'nope'; known: fc3, cnn-gap, attn, ..."
    """
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]
