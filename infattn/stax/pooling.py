"""Global average pooling and flattening: from spatial kernels to per-example kernels."""

from __future__ import annotations

import jax.numpy as jnp

from infattn.kernel import pair_mask
from infattn.stax import layout
from infattn.stax.layer import make_layer
from infattn.stax.normalization import masked_mean
from infattn.validation import check_axes


def GlobalAvgPool(batch_axis: int = 0, channel_axis: int = -1):
    """Average over all spatial positions (unmasked ones only).

    ``(N, *spatial, C)`` -> ``(N, C)`` (``(C, N)`` when ``channel_axis`` comes
    first); kernel ``(N1, N2, *S)`` -> ``(N1, N2)``: the mean of ``Sigma_ab`` over
    unmasked position pairs.

    Example:
        >>> import numpy as np
        >>> GlobalAvgPool()[2](np.ones((2, 5, 3)), get="nngp").shape
        (2, 2)
    """
    check_axes("GlobalAvgPool", batch_axis=batch_axis, channel_axis=channel_axis)

    def init(rng, input_shape):
        return (input_shape[0], input_shape[-1]), ()

    def apply(params, x, mask, **kwargs):
        axes = tuple(range(1, x.ndim - 1))
        m = None if mask is None else mask[..., None]
        out_mask = None if mask is None else jnp.all(mask, axis=tuple(range(1, mask.ndim)))
        return masked_mean(x, axes, m), out_mask

    def pool(mat, m1, m2, batch_ndim):
        if mat is None:
            return None
        axes = tuple(range(batch_ndim, mat.ndim))
        if m1 is None:
            return jnp.mean(mat, axis=axes)
        return masked_mean(mat, axes, pair_mask(m1, m2, diagonal_batch=batch_ndim == 1))

    def kernel(k):
        m1, m2 = k.mask1, k.mask2_or_mask1()
        return k.replace(
            nngp=pool(k.nngp, m1, m2, 2),
            ntk=pool(k.ntk, m1, m2, 2),
            cov1=pool(k.cov1, m1, m1, 1),
            cov2=None if k.cov2 is None else pool(k.cov2, m2, m2, 1),
            mask1=_all_masked(m1),
            mask2=None if k.cov2 is None else _all_masked(m2),
            shape1=(k.shape1[0], k.shape1[-1]),
            shape2=(k.shape2[0], k.shape2[-1]),
        )

    def out_axes(ndim):
        b, c = layout.canonical_axes((batch_axis, channel_axis), ndim)
        return (0, 1) if b < c else (1, 0)

    boundary = layout.Boundary((batch_axis, channel_axis), out_axes)
    return make_layer(init, apply, kernel, "GlobalAvgPool", boundary=boundary)


def Flatten(batch_axis: int = 0, batch_axis_out: int = 0):
    """Flatten all non-batch axes: ``(N, *spatial, C)`` -> ``(N, prod(spatial) * C)``.

    Row-major over the input's axes in their order; the output's batch axis is
    ``batch_axis_out`` (0 or 1).

    The kernel is the average of ``Sigma_aa`` over positions (the trace of each
    spatial pair divided by its size). The output mask marks examples whose every
    position is padding.

    Example:
        >>> import numpy as np
        >>> Flatten()[2](np.ones((2, 5, 3)), get="nngp").shape
        (2, 2)
    """
    check_axes("Flatten", batch_axis=batch_axis, batch_axis_out=batch_axis_out)

    def flat_size(shape):
        size = 1
        for s in shape[1:]:
            size *= s
        return size

    def init(rng, input_shape):
        return (input_shape[0], flat_size(input_shape)), ()

    def apply(params, x, mask, **kwargs):
        return x.reshape(x.shape[0], -1), _all_masked(mask)

    def trace(mat, batch_ndim):
        if mat is None:
            return None
        while mat.ndim > batch_ndim:
            mat = jnp.trace(mat, axis1=-2, axis2=-1) / mat.shape[-1]
        return mat

    def kernel(k):
        return k.replace(
            nngp=trace(k.nngp, 2),
            ntk=trace(k.ntk, 2),
            cov1=trace(k.cov1, 1),
            cov2=trace(k.cov2, 1),
            mask1=_all_masked(k.mask1),
            mask2=_all_masked(k.mask2),
            shape1=(k.shape1[0], flat_size(k.shape1)),
            shape2=(k.shape2[0], flat_size(k.shape2)),
            is_gaussian=False,
        )

    if batch_axis_out not in (0, 1, -1, -2):
        raise ValueError(f"batch_axis_out: expected 0 or 1, got {batch_axis_out!r}")
    out = batch_axis_out % 2
    boundary = layout.Boundary((batch_axis, None), (out, 1 - out))
    return make_layer(init, apply, kernel, "Flatten", boundary=boundary)


def _all_masked(mask):
    if mask is None or mask.ndim == 1:
        return mask
    return jnp.all(mask, axis=tuple(range(1, mask.ndim)))
