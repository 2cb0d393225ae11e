"""Layers with finite forward passes and infinite-width kernels.

A drop-in for ``neural_tangents.stax``: ``from infattn import stax`` and a model
written with these layers runs unchanged. Each constructor returns
``(init_fn, apply_fn, kernel_fn)``.
"""

from infattn.logits.mechanisms import AttentionMechanism
from infattn.stax.aggregate import Aggregate, AggregateImplementation
from infattn.stax.attention import GlobalSelfAttention
from infattn.stax.branching import FanInConcat, FanInProd
from infattn.stax.combinators import FanInSum, FanOut, Identity, parallel, repeat, serial
from infattn.stax.conv_local import ConvLocal
from infattn.stax.conv_transpose import ConvTranspose
from infattn.stax.dot_general import DotGeneral
from infattn.stax.dropout import Dropout
from infattn.stax.elementwise import (
    ABRelu,
    Abs,
    Erf,
    Gelu,
    LeakyRelu,
    Relu,
    Sigmoid_like,
    Sign,
)
from infattn.stax.exponential import Cos, Exp, ExpNormalized, Gabor, Gaussian, Rbf, Sin
from infattn.stax.indexing import Index, Slice
from infattn.stax.layer import MaskedArray
from infattn.stax.linear import Conv, Dense
from infattn.stax.masking import unmask_fn
from infattn.stax.normalization import LayerNorm
from infattn.stax.numerical import Elementwise, ElementwiseNumerical
from infattn.stax.polynomial import Hermite, Monomial, Polynomial, RectifiedMonomial
from infattn.stax.pooling import AvgPool, Flatten, GlobalAvgPool, GlobalSumPool, SumPool
from infattn.stax.positional import PositionalEmbedding
from infattn.stax.resize import ImageResize
from infattn.stax.windows import Padding

__all__ = [
    "ABRelu",
    "Abs",
    "Aggregate",
    "AggregateImplementation",
    "AttentionMechanism",
    "AvgPool",
    "Conv",
    "ConvLocal",
    "ConvTranspose",
    "Cos",
    "Dense",
    "DotGeneral",
    "Dropout",
    "Elementwise",
    "ElementwiseNumerical",
    "Erf",
    "Exp",
    "ExpNormalized",
    "FanInConcat",
    "FanInProd",
    "FanInSum",
    "FanOut",
    "Flatten",
    "Gabor",
    "Gaussian",
    "Gelu",
    "GlobalAvgPool",
    "GlobalSelfAttention",
    "GlobalSumPool",
    "Hermite",
    "Identity",
    "ImageResize",
    "Index",
    "LayerNorm",
    "LeakyRelu",
    "MaskedArray",
    "Monomial",
    "Padding",
    "Polynomial",
    "PositionalEmbedding",
    "Rbf",
    "RectifiedMonomial",
    "Relu",
    "Sigmoid_like",
    "Sign",
    "Sin",
    "Slice",
    "SumPool",
    "parallel",
    "repeat",
    "serial",
    "unmask_fn",
]
