"""Image resizing (neural-tangents' ``ImageResize``) and its kernel rule.

``jax.image.resize`` with the ``'linear'`` and ``'nearest'`` methods is a fixed linear
map along each resized axis, ``y = A x``; the covariance of the output along a spatial
pair is ``A Sigma A^T``, which is ``jax.image.resize`` applied to both axes of the pair.
The kernel is therefore resized as an image with each spatial size doubled up. Other
methods (cubic, Lanczos) work in ``apply_fn`` but, as in neural-tangents, not in
``kernel_fn``; nor does resizing the channel axis (infinite in the limit). Resizing the
batch axis works in ``apply_fn``; ``kernel_fn`` refuses it (neural-tangents then returns
batch-by-batch ``cov1`` blocks, which infattn's batch-diagonal kernels do not hold).

An output position is padding when only padded positions contribute to it (the mask is
inverted, resized, rounded and inverted back, neural-tangents' convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from infattn.stax import layout
from infattn.stax.diagonal import NO, YES, Diagonal
from infattn.stax.layer import make_layer

_KERNEL_METHODS = (jax.image.ResizeMethod.LINEAR, jax.image.ResizeMethod.NEAREST)


def _method(method: str | jax.image.ResizeMethod) -> jax.image.ResizeMethod:
    if isinstance(method, jax.image.ResizeMethod):
        return method
    try:
        return jax.image.ResizeMethod.from_string(method)
    except (ValueError, AttributeError):
        raise ValueError(
            "method: expected a jax.image.ResizeMethod or one of 'nearest', 'linear', "
            f"'cubic', 'lanczos3', 'lanczos5' (or their aliases), got {method!r}"
        ) from None


def ImageResize(
    shape: Sequence[int],
    method: str | jax.image.ResizeMethod,
    antialias: bool = True,
    precision: Any = jax.lax.Precision.HIGHEST,
    batch_axis: int = 0,
    channel_axis: int = -1,
):
    """Resize inputs with ``jax.image.resize``; ``-1`` in ``shape`` keeps an axis's size.

    ``shape``: one entry per input axis (batch and channels included, in the inputs'
    layout). ``kernel_fn`` supports ``method`` ``'linear'`` and ``'nearest'`` and needs
    ``-1`` at ``batch_axis`` and ``channel_axis``; ``apply_fn`` supports every method.

    Example:
        >>> import jax.numpy as jnp
        >>> _, _, kernel_fn = ImageResize((-1, 4, -1), "nearest")
        >>> k = kernel_fn(jnp.arange(2.0).reshape(1, 2, 1) + 1, get="nngp")
        >>> k.shape, k[0, 0, 0].tolist()  # positions 0, 0, 1, 1 of [1, 2]
        ((1, 1, 4, 4), [1.0, 1.0, 2.0, 2.0])
    """
    shape = tuple(shape)
    if not shape or any(not isinstance(n, int) or (n < 1 and n != -1) for n in shape):
        raise ValueError(f"shape: expected positive integers or -1, one per axis, got {shape!r}")
    method = _method(method)
    order = layout.to_canonical_order(len(shape), batch_axis, channel_axis)
    target = layout.permute_shape(shape, order)  # canonical (N, *spatial, C)

    def out_shape(in_shape: Sequence[int]) -> tuple[int, ...]:
        return tuple(n if t == -1 else t for n, t in zip(in_shape, target, strict=True))

    def resize(x: jax.Array, new_shape: Sequence[int]) -> jax.Array:
        return jax.image.resize(x, tuple(new_shape), method, antialias, precision)

    def resize_mask(mask: jax.Array | None, n: int) -> jax.Array | None:
        if mask is None:
            return None
        return ~resize(~mask, (n, *out_shape((*mask.shape, 1))[1:-1])).astype(bool)

    def init(rng, input_shape):
        return out_shape(input_shape), ()

    def apply(params, x, mask, **kwargs):
        y = resize(x, out_shape(x.shape))
        return y, resize_mask(mask, y.shape[0])

    def resize_kernel(m: jax.Array | None, batch_ndim: int) -> jax.Array | None:
        if m is None:
            return None
        spatial = out_shape((1, *m.shape[batch_ndim::2], 1))[1:-1]
        return resize(m, (*m.shape[:batch_ndim], *(n for n in spatial for _ in (0, 1))))

    def kernel(k):
        _check_kernel(method, target)
        new1, new2 = out_shape(k.shape1), out_shape(k.shape2)
        k = k.replace(
            nngp=resize_kernel(k.nngp, 2),
            ntk=resize_kernel(k.ntk, 2),
            cov1=resize_kernel(k.cov1, 1),
            cov2=resize_kernel(k.cov2, 1),
            mask1=resize_mask(k.mask1, new1[0]),
            mask2=resize_mask(k.mask2, new2[0]),
            shape1=new1,
            shape2=new2,
        )
        return k.remask()

    boundary = layout.Boundary((batch_axis, channel_axis), rank=len(shape))
    diagonal = Diagonal(input=NO if any(n != -1 for n in target[1:-1]) else YES)
    return make_layer(init, apply, kernel, "ImageResize", boundary=boundary, diagonal=diagonal)


def _check_kernel(method: jax.image.ResizeMethod, target: Sequence[int]) -> None:
    """Raise where neural-tangents' (or infattn's) ``kernel_fn`` does not resize."""
    if method not in _KERNEL_METHODS:
        raise NotImplementedError(
            "method: kernel_fn supports 'linear' (jax.image.ResizeMethod.LINEAR) and "
            f"'nearest' (jax.image.ResizeMethod.NEAREST) interpolation only, got {method}"
        )
    if target[-1] != -1:
        raise ValueError(
            "shape: resizing the channel axis is not defined in the infinite-width limit; "
            f"expected -1 at channel_axis, got {target[-1]}"
        )
    if target[0] != -1:
        raise NotImplementedError(
            "shape: kernel_fn does not resize the batch axis (it would need batch-by-batch "
            f"covariances); expected -1 at batch_axis, got {target[0]}"
        )
