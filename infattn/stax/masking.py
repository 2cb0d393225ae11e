"""From masked outputs to plain arrays: ``unmask`` and neural-tangents' ``unmask_fn``.

An ``apply_fn`` called with ``mask_constant`` returns a :class:`MaskedArray` (value and
padding mask). Functions that take arrays (``monte_carlo_kernel_fn``,
``empirical_kernel_fn``, a loss) want the value with its padding entries zeroed.

infattn's masks are per position, ``(N, *spatial)`` for a ``(N, *spatial, C)`` value:
they broadcast over the trailing channel axis. A mask with as many axes as the value
(neural-tangents' own, channel axis of size 1) broadcasts as it is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from infattn.stax import layout
from infattn.stax.layer import MaskedArray

Array = jax.Array


def unmask(x: Any) -> Any:
    """``x`` with every ``MaskedArray`` in it replaced by its value, padding zeroed.

    Example:
        >>> out = MaskedArray(jnp.ones((1, 2, 3)), jnp.array([[False, True]]))
        >>> unmask(out)[0].sum(axis=-1).tolist()
        [3.0, 0.0]
    """
    return jax.tree_util.tree_map(_zero_padding, x, is_leaf=_leaf)


def _leaf(v: Any) -> bool:
    return isinstance(v, MaskedArray) or _duck_masked(v)


def _duck_masked(v: Any) -> bool:
    """A masked array of another library (neural-tangents' ``MaskedArray``)."""
    return hasattr(v, "masked_value") and hasattr(v, "mask")


def _zero_padding(v: Any) -> Any:
    if not (isinstance(v, MaskedArray) or _duck_masked(v)):
        return v
    value, mask = v.masked_value, v.mask
    if mask is None:
        return value
    mask = jnp.asarray(mask)
    if mask.ndim < value.ndim and tuple(value.shape[: mask.ndim]) == tuple(mask.shape):
        mask = mask.reshape(mask.shape + (1,) * (value.ndim - mask.ndim))
    elif mask.ndim != value.ndim:
        raise ValueError(
            f"unmask: a mask of shape {tuple(mask.shape)} does not fit outputs of shape "
            f"{tuple(value.shape)}; infattn's masks are (N, *spatial) for batch-first, "
            "channels-last outputs"
        )
    return jnp.where(mask, jnp.zeros((), value.dtype), value)


def check_layout(fn: Callable[..., Any], inputs: Any) -> None:
    """Raise unless ``fn`` (an infattn ``apply_fn``) keeps batch first and channels last.

    Masks are ``(N, *spatial)`` whatever the layout, so zeroing the padding of a
    channels-first or batch-not-first output could hit the wrong axis when sizes
    coincide: such outputs are refused rather than guessed.

    Example:
        >>> from infattn import stax
        >>> _, apply_fn, _ = stax.Dense(2, batch_axis=1, channel_axis=0)
        >>> check_layout(apply_fn, jnp.ones((3, 1)))
        Traceback (most recent call last):
        ...
        NotImplementedError: unmask_fn: masked outputs of a model with batch_axis=1, ...
    """
    boundary = getattr(getattr(fn, "layer", None), "boundary", None)
    if boundary is None:
        return
    ndim = jnp.ndim(inputs[0] if isinstance(inputs, list | tuple) else inputs)
    if layout.canonical_axes(boundary.axes, ndim) != layout.canonical_axes(layout.CANONICAL, ndim):
        raise NotImplementedError(
            f"unmask_fn: masked outputs of a model with batch_axis={boundary.axes[0]}, "
            f"channel_axis={boundary.axes[1]} are not supported (masks are (N, *spatial)); "
            "use batch_axis=0, channel_axis=-1 or the MaskedArray's own mask"
        )


def unmask_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (an ``apply_fn``) returning arrays with padding zeroed instead of ``MaskedArray``.

    neural-tangents' ``stax.unmask_fn``: every ``MaskedArray`` in ``fn``'s output (also
    inside lists and tuples) becomes its ``masked_value`` with the masked entries set
    to zero; other outputs pass unchanged. The masks of infattn's layers are per
    position, so masked outputs must be batch-first and channels-last (other
    layouts raise, :func:`check_layout`).

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> init_fn, apply_fn, _ = stax.Dense(2, b_std=1.0)
        >>> _, params = init_fn(jax.random.PRNGKey(0), (1, 3, 2))
        >>> x = np.array([[[1.0, 2.0], [0.5, 1.0], [9.0, 9.0]]])  # last position is padding
        >>> y = unmask_fn(apply_fn)(params, x, mask_constant=9.0)
        >>> y[0, -1].tolist()
        [0.0, 0.0]
    """

    @functools.wraps(fn)
    def fn_no_mask(*args: Any, **kwargs: Any) -> Any:
        out = fn(*args, **kwargs)
        masked = any(isinstance(v, MaskedArray) for v in jax.tree.leaves(out, is_leaf=_leaf))
        if masked and len(args) > 1:  # an apply_fn(params, inputs, ...)
            check_layout(fn, args[1])
        return unmask(out)

    return fn_no_mask
