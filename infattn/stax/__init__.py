"""Layers with finite forward passes and infinite-width kernels.

A drop-in for ``neural_tangents.stax``: ``from infattn import stax`` and a model
written with these layers runs unchanged. Each constructor returns
``(init_fn, apply_fn, kernel_fn)``.
"""

from infattn.stax.attention import GlobalSelfAttention
from infattn.stax.combinators import FanInSum, FanOut, Identity, parallel, serial
from infattn.stax.elementwise import ABRelu, Abs, Erf, Gelu, LeakyRelu, Relu
from infattn.stax.layer import MaskedArray
from infattn.stax.linear import Conv, Dense
from infattn.stax.normalization import LayerNorm
from infattn.stax.pooling import Flatten, GlobalAvgPool

__all__ = [
    "ABRelu",
    "Abs",
    "Conv",
    "Dense",
    "Erf",
    "FanInSum",
    "FanOut",
    "Flatten",
    "Gelu",
    "GlobalAvgPool",
    "GlobalSelfAttention",
    "Identity",
    "LayerNorm",
    "LeakyRelu",
    "MaskedArray",
    "Relu",
    "parallel",
    "serial",
]
