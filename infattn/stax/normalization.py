"""LayerNorm: normalise each position's channels (and optionally spatial axes).

In the infinite-width limit the channel mean vanishes and the channel variance
concentrates at ``Sigma_aa``, so ``Sigma'_ab = Sigma_ab / sqrt(v_a(x) v_b(x'))``
with ``v = Sigma_aa + eps`` (averaged over the unmasked positions of any spatial
axes in ``axis``); the NTK is scaled the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from infattn.kernel import outer_per_position
from infattn.stax import layout
from infattn.stax.diagonal import variances
from infattn.stax.layer import make_layer
from infattn.validation import check_axes, check_std

Array = jax.Array


def masked_mean(
    x: Array, axis: tuple[int, ...], mask: Array | None, keepdims: bool = False
) -> Array:
    """Mean over ``axis`` of the entries where ``mask`` is False (0 if none are)."""
    if mask is None:
        return jnp.mean(x, axis=axis, keepdims=keepdims)
    keep = jnp.broadcast_to(~mask, x.shape)
    total = jnp.sum(jnp.where(keep, x, 0), axis=axis, keepdims=keepdims)
    count = jnp.sum(keep, axis=axis, keepdims=keepdims)
    return total / jnp.maximum(count, 1)


def LayerNorm(
    axis: int | Sequence[int] = -1,
    eps: float = 1e-12,
    batch_axis: int = 0,
    channel_axis: int = -1,
):
    """Layer normalisation over ``axis`` (axes of the inputs as laid out, channels included).

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(4, W_std=3.0), LayerNorm())
        >>> round(float(kernel_fn(np.ones((1, 2)), get="nngp")[0, 0]), 6)  # unit variance
        1.0
    """
    check_std(eps, "eps")
    check_axes("LayerNorm", batch_axis=batch_axis, channel_axis=channel_axis)

    def spatial_axes(ndim):
        """The canonical positions of the normalised axes, but the channel axis."""
        order = layout.to_canonical_order(ndim, batch_axis, channel_axis)
        given = (axis,) if isinstance(axis, int) else axis
        axes = {order.index(layout.normalize_axis(a, ndim, "axis")) for a in given}
        if ndim - 1 not in axes:
            raise ValueError(
                f"axis: normalisation must include the channel axis ({channel_axis}) to have "
                f"an infinite-width limit; got axis={axis}"
            )
        if 0 in axes:
            raise ValueError(f"axis: normalising over the batch axis is not supported; got {axis}")
        return tuple(sorted(axes - {ndim - 1}))

    def init(rng, input_shape):
        spatial_axes(len(input_shape))
        return input_shape, ()

    def apply(params, x, mask, **kwargs):
        sp = spatial_axes(x.ndim)
        m = None if mask is None or not sp else mask[..., None]
        mean = masked_mean(x, (*sp, x.ndim - 1), m, keepdims=True)
        var = masked_mean((x - mean) ** 2, (*sp, x.ndim - 1), m, keepdims=True)
        return (x - mean) / jnp.sqrt(var + eps), mask

    def kernel(k):
        sp = spatial_axes(len(k.shape1))
        v1, v2 = variances(k)
        v1, v2 = v1 + eps, v2 + eps
        if sp:
            v1 = masked_mean(v1, sp, k.mask1, keepdims=True) * jnp.ones_like(v1)
            v2 = masked_mean(v2, sp, k.mask2_or_mask1(), keepdims=True) * jnp.ones_like(v2)

        def norm(m, a, b):
            return None if m is None else m / jnp.sqrt(a * b)

        return k.replace(
            nngp=norm(k.nngp, *outer_per_position(v1, v2)),
            ntk=norm(k.ntk, *outer_per_position(v1, v2)),
            cov1=norm(k.cov1, *outer_per_position(v1, v1, True)),
            cov2=norm(k.cov2, *outer_per_position(v2, v2, True)),
        )

    boundary = layout.Boundary((batch_axis, channel_axis))
    over_channels = (
        {axis} == {channel_axis} if isinstance(axis, int) else set(axis) == {channel_axis}
    )
    return make_layer(
        init, apply, kernel, "LayerNorm", boundary=boundary, positionwise=over_channels
    )
