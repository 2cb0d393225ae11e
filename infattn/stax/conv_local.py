"""Locally connected layer (neural-tangents' ``ConvLocal``): a convolution with untied weights.

Each output position has its own filter and bias, so outputs at two different positions
share no weights and are uncorrelated: the kernel lives on the spatial diagonal only,

    Sigma'_{p,p} = W_std^2 / |F| sum_{t in F} Sigma_{p+t, p+t} + b_std^2,  Sigma'_{p,q} = 0,

the diagonal of the input covariance averaged over each window (zero padding
contributes zeros, ``'CIRCULAR'`` wraps), as ``jax.lax.conv_general_dilated_local``
computes the finite layer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from infattn.stax import taps, windows
from infattn.stax.diagonal import MAYBE, Diagonal, spatial_diagonal
from infattn.stax.linear import check_channels, conv_setup, init_filter

Array = jax.Array


def diagonal_pattern(spatial: Sequence[int]) -> np.ndarray:
    """``(s1, s1, s2, s2, ...)`` indicator of equal positions.

    Example:
        >>> diagonal_pattern((2,)).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    return functools.reduce(np.multiply.outer, [np.eye(n) for n in spatial], np.ones(()))


def on_diagonal(d: Array, batch_ndim: int) -> Array:
    """``(*B, s1, s2, ...)`` -> ``(*B, s1, s1', s2, s2', ...)``, zeros off the diagonal.

    Example:
        >>> on_diagonal(jnp.array([[1.0, 2.0]]), 1).tolist()
        [[[1.0, 0.0], [0.0, 2.0]]]
    """
    spatial = d.shape[batch_ndim:]
    expanded = d.reshape(*d.shape[:batch_ndim], *(a for n in spatial for a in (n, 1)))
    return expanded * jnp.asarray(diagonal_pattern(spatial), d.dtype)


def ConvLocal(
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    W_std: float = 1.0,
    b_std: float | None = None,
    dimension_numbers: tuple[str, str, str] | None = None,
    parameterization: str = "ntk",
    s: tuple[int, int] = (1, 1),
):
    """Locally connected layer: a convolution whose filter and bias differ at every position.

    Arguments and output shape as :func:`~infattn.stax.Conv`. The weights are stored as
    ``jax.lax.conv_general_dilated_local`` takes them: the filter spec's layout with
    ``I`` of size ``C_in * |F|`` and the spatial axes of the *output's* sizes; the bias
    ``(1, *out_spatial, C)``. The kernel is zero between different positions; a network
    ending here returns only its spatial diagonal, ``(N1, N2, *S)``, as neural-tangents
    does (``diagonal_spatial=False`` for the full kernel).

    Example:
        >>> import jax.numpy as jnp
        >>> _, _, kernel_fn = ConvLocal(4, (2,), b_std=0.5)
        >>> x = jnp.ones((1, 3, 2))
        >>> kernel_fn(x, get="nngp")[0, 0].tolist()  # 1 + 0.5^2 at each position
        [1.25, 1.25]
        >>> kernel_fn(x, get="nngp", diagonal_spatial=False)[0, 0].tolist()
        [[1.25, 0.0], [0.0, 1.25]]
    """
    c = conv_setup(
        "ConvLocal", out_chan, filter_shape, strides, padding, W_std, b_std, dimension_numbers,
        parameterization, s,
    )  # fmt: skip
    n_sp, spec = c.n_spatial, c.spec
    win = windows.Windows(c.filter_in, c.strides_in, c.padding)
    filter_size = math.prod(c.filter_shape)

    def init(rng, input_shape):
        n_in, out_spatial = input_shape[-1], win.out_spatial(input_shape[1:-1])
        sizes = {"I": n_in * filter_size, **dict(zip(spec.spatial, out_spatial, strict=True))}
        params = init_filter(c, rng, n_in, sizes, (1, *out_spatial, c.width))
        return c.output_shape((input_shape[0], *out_spatial, c.width)), params

    def apply(params, x, mask, **kwargs):
        W, b = params
        n_in = x.shape[-1]
        check_channels(x, W.shape[spec.rhs.index("I")] // filter_size, "ConvLocal")
        if c.padding == "CIRCULAR":
            x = win.pad(x, range(1, n_sp + 1))
            pads = [(0, 0)] * n_sp
        else:
            pads = spec.to_filter_order(win.pads(x.shape[1:-1]))
        patches = lax.conv_general_dilated_patches(
            x, c.filter_shape, c.strides, pads, dimension_numbers=spec.canonical
        )
        positions = [spec.rhs.index(a) for a in spec.spatial]
        y = taps.local(patches, W, spec.rhs.index("I"), positions)
        y = c.scale(y, taps.per_example(b, x.shape[0]), n_in)
        return c.to_output(y, None if mask is None else win.mask(mask))

    def kernel(k):
        diagonal = k.diagonal_spatial  # a diagonal kernel stays one, no zeros added

        def untied(m, batch_ndim):
            d = m if diagonal else spatial_diagonal(m, batch_ndim)
            windowed = win.shared(d, batch_ndim, diagonal_spatial=True)
            return windowed if diagonal else on_diagonal(windowed, batch_ndim)

        def bias_pattern(m, batch_ndim):
            return (
                1.0 if diagonal else jnp.asarray(diagonal_pattern(m.shape[batch_ndim::2]), m.dtype)
            )

        out_spatial = win.out_spatial(k.spatial_shape)
        return c.kernel(k, untied, out_spatial, win.mask, bias_pattern)

    return c.make(init, apply, kernel, Diagonal(output=MAYBE), diagonal_kernels=True)
