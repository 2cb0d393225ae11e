"""Pooling and flattening: windowed (AvgPool, SumPool), global, and Flatten.

Windowed pooling keeps the spatial layout (see :mod:`infattn.stax.windows`); global
pooling and flattening turn spatial kernels into per-example kernels.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp

from infattn.kernel import pair_mask
from infattn.stax import layout, windows
from infattn.stax.diagonal import MAYBE, YES, Diagonal
from infattn.stax.layer import make_layer
from infattn.stax.normalization import masked_mean
from infattn.validation import check_axes


def AvgPool(
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    normalize_edges: bool = False,
    batch_axis: int = 0,
    channel_axis: int = -1,
):
    """Average over windows of ``window_shape`` positions moved by ``strides``.

    ``padding``: ``'VALID'``, ``'SAME'`` or ``'CIRCULAR'`` (:mod:`infattn.stax.windows`).
    Window sums are divided by the window size, or with ``normalize_edges`` and
    ``'SAME'`` by the number of positions inside the input. The kernel of two
    windows is the sum of ``Sigma_ab`` over all their position pairs, divided by both
    normalisations.

    Example:
        >>> import numpy as np
        >>> AvgPool((2,), padding="SAME")[2](np.ones((1, 3, 2)), get="nngp").shape
        (1, 1, 3, 3)
    """
    return _pool(
        "AvgPool", window_shape, strides, padding, normalize_edges, axes=(batch_axis, channel_axis)
    )


def SumPool(
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    batch_axis: int = 0,
    channel_axis: int = -1,
):
    """Sum over windows of ``window_shape`` positions moved by ``strides`` (see :func:`AvgPool`).

    Example:
        >>> import numpy as np
        >>> float(SumPool((2,))[2](np.ones((1, 3, 2)), get="nngp")[0, 0, 0, 0])
        4.0
    """
    return _pool("SumPool", window_shape, strides, padding, False, axes=(batch_axis, channel_axis))


def _scales(win: windows.Windows, spatial, average: bool, normalize_edges: bool) -> list:
    """Per spatial axis, what each window's sum is divided by (``(n_out,)`` each)."""
    if not average:
        return [jnp.ones(n) for n in win.out_spatial(spatial)]
    if normalize_edges and win.padding == "SAME":
        return win.counts(spatial)
    return [
        jnp.full(n, float(f)) for n, f in zip(win.out_spatial(spatial), win.window, strict=True)
    ]


def _pool(name, window_shape, strides, padding, normalize_edges, axes):
    """AvgPool (``name == 'AvgPool'``) and SumPool: one rule, two normalisations."""
    window_shape, strides = windows.check_window(window_shape, strides, "window_shape")
    padding = windows.check_padding(padding)
    check_axes(name, batch_axis=axes[0], channel_axis=axes[1])
    win = windows.Windows(window_shape, strides, padding)
    n_sp = len(window_shape)

    def scales(spatial):
        return _scales(win, spatial, name == "AvgPool", normalize_edges)

    def init(rng, input_shape):
        return (input_shape[0], *win.out_spatial(input_shape[1:-1]), input_shape[-1]), ()

    def apply(params, x, mask, **kwargs):
        spatial = x.shape[1:-1]
        if mask is not None:
            x = jnp.where(mask[..., None], 0.0, x)
        y = win.sum(x, batch_ndim=1)
        for d, scale in enumerate(scales(spatial)):
            y = y / scale.reshape(-1, *(1,) * (n_sp - d))
        return y, None if mask is None else win.mask(mask)

    def pool(m, batch_ndim, spatial):
        if m is None:
            return None
        m = win.pooled(m, batch_ndim)
        for d, scale in enumerate(scales(spatial)):
            after = 2 * (n_sp - d) - 1  # axes after the first of pair d
            m = m / scale.reshape(-1, *(1,) * after) / scale.reshape(-1, *(1,) * (after - 1))
        return m

    def kernel(k):
        spatial = k.spatial_shape
        if len(spatial) != n_sp:
            raise ValueError(
                f"inputs: {name} with a {n_sp}-D window needs inputs with {n_sp} spatial axes; "
                f"got shape {k.shape1}"
            )
        out = win.out_spatial(spatial)
        k = k.replace(
            nngp=pool(k.nngp, 2, spatial),
            ntk=pool(k.ntk, 2, spatial),
            cov1=pool(k.cov1, 1, spatial),
            cov2=pool(k.cov2, 1, spatial),
            mask1=None if k.mask1 is None else win.mask(k.mask1),
            mask2=None if k.mask2 is None else win.mask(k.mask2),
            shape1=(k.shape1[0], *out, k.shape1[-1]),
            shape2=(k.shape2[0], *out, k.shape2[-1]),
        )
        return k.remask()

    boundary = layout.Boundary(axes, rank=n_sp + 2)
    return make_layer(init, apply, kernel, name, boundary=boundary, diagonal=Diagonal(MAYBE))


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
    return _global_pool("GlobalAvgPool", batch_axis, channel_axis)


def GlobalSumPool(batch_axis: int = 0, channel_axis: int = -1):
    """Sum over all spatial positions (unmasked ones only); see :func:`GlobalAvgPool`.

    The kernel is the sum of ``Sigma_ab`` over all position pairs (padding
    contributes zeros).

    Example:
        >>> import numpy as np
        >>> float(GlobalSumPool()[2](np.ones((1, 5, 3)), get="nngp")[0, 0])
        25.0
    """
    return _global_pool("GlobalSumPool", batch_axis, channel_axis)


def _global_pool(name: str, batch_axis: int, channel_axis: int):
    """GlobalAvgPool and GlobalSumPool."""
    check_axes(name, batch_axis=batch_axis, channel_axis=channel_axis)
    average = name == "GlobalAvgPool"

    def init(rng, input_shape):
        return (input_shape[0], input_shape[-1]), ()

    def apply(params, x, mask, **kwargs):
        axes = tuple(range(1, x.ndim - 1))
        m = None if mask is None else mask[..., None]
        out_mask = _all_masked(mask)
        if average:
            return masked_mean(x, axes, m), out_mask
        return jnp.sum(x if m is None else jnp.where(m, 0.0, x), axis=axes), out_mask

    def pool(mat, m1, m2, batch_ndim):
        if mat is None:
            return None
        axes = tuple(range(batch_ndim, mat.ndim))
        if not average:
            return jnp.sum(mat, axis=axes)
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
    diagonal = Diagonal(MAYBE, YES)
    return make_layer(init, apply, kernel, name, boundary=boundary, diagonal=diagonal)


def Flatten(batch_axis: int = 0, batch_axis_out: int = 0):
    """Flatten all non-batch axes: ``(N, *spatial, C)`` -> ``(N, prod(spatial) * C)``.

    Row-major over the input's axes in their order; the output's batch axis is
    ``batch_axis_out`` (0 or 1).

    The kernel is the average of ``Sigma_aa`` over positions (the trace of each
    spatial pair divided by its size; the mean of a spatially diagonal kernel). The
    output mask marks examples whose every position is padding.

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

    def kernel(k):
        def trace(mat, batch_ndim):
            if mat is None:
                return None
            if k.diagonal_spatial:  # (*B, s1, s2, ...): the diagonal itself
                return jnp.mean(mat, axis=tuple(range(batch_ndim, mat.ndim)))
            while mat.ndim > batch_ndim:
                mat = jnp.trace(mat, axis1=-2, axis2=-1) / mat.shape[-1]
            return mat

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
            diagonal_spatial=False,  # no spatial axes left: both layouts are one
        )

    if batch_axis_out not in (0, 1, -1, -2):
        raise ValueError(f"batch_axis_out: expected 0 or 1, got {batch_axis_out!r}")
    out = batch_axis_out % 2
    boundary = layout.Boundary((batch_axis, None), (out, 1 - out))
    diagonal = Diagonal(output=YES)
    return make_layer(
        init, apply, kernel, "Flatten", boundary=boundary, diagonal=diagonal, diagonal_kernels=True
    )


def _all_masked(mask):
    if mask is None or mask.ndim == 1:
        return mask
    return jnp.all(mask, axis=tuple(range(1, mask.ndim)))
