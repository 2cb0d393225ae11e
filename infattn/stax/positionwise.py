"""Spatial-diagonal kernels of position-wise models, computed one position at a time.

A model is *position-wise* when every layer acts on each position alone (Dense,
nonlinearities, LayerNorm over channels, Dropout, routing and fan-in over channels):
the kernel entry of positions ``(a, a)`` then depends only on the inputs at ``a``.
So ``kernel_fn(..., diagonal_spatial=True)`` runs the model on each position as an
input of spatial size one, ``vmap``-ed over positions, and never forms a
location-location covariance: memory ``O(N1 N2 P)`` for ``P`` positions instead of
``O(N1 N2 P^2)``. Layers declare it with ``make_layer(..., positionwise=True)``;
:func:`on_positions` runs such a layer on the spatially diagonal kernels of the
convolutions (``Conv``, ``ConvLocal``, ``Flatten`` take them too). Other models
(attention, pooling, positional embeddings) compute the full kernel and keep its
diagonal (:func:`infattn.stax.diagonal.keep_diagonals`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from infattn.kernel import Kernel

Array = jax.Array


def _positions(x: Array) -> Array:
    """``(N, *spatial, C)`` -> ``(P, N, 1, ..., 1, C)``: one input of size 1 per position."""
    n, c, ones = x.shape[0], x.shape[-1], (1,) * (x.ndim - 2)
    return jnp.moveaxis(x.reshape(n, -1, c), 1, 0).reshape(-1, n, *ones, c)


def _gather(a: Array | None, batch_ndim: int, spatial: tuple[int, ...]) -> Array | None:
    """``(P, *batch, 1, ..., 1)`` -> ``(*batch, *spatial)``."""
    if a is None:
        return None
    a = a.reshape(a.shape[: 1 + batch_ndim])
    return jnp.moveaxis(a, 0, -1).reshape(*a.shape[1:], *spatial)


def per_position_kernel(
    rule: Callable[[Kernel], Kernel],
    to_kernel: Callable[[Array, Array | None], Kernel],
    x1: Array,
    x2: Array | None,
    x1_is_x2: bool,
) -> Kernel | list[Kernel]:
    """``rule``'s kernel in the ``diagonal_spatial`` layout, one position at a time.

    ``x1``: ``(N1, *spatial, C)``, ``x2``: ``(N2, *spatial, C)`` or ``None``;
    ``to_kernel(a, b)`` builds the input kernel of inputs of spatial size one and
    ``rule`` must be position-wise (see the module docstring). ``x1_is_x2``: the
    flag of the whole inputs (positions alone would be traced). Returns ``nngp``/``ntk``
    ``(N1, N2, *spatial)``, ``cov1`` ``(N1, *spatial)``, masks ``(N1, *spatial)``.

    Example:
        >>> from infattn.stax.layer import inputs_to_kernel
        >>> x = jnp.arange(12.0).reshape(2, 3, 2)
        >>> k = per_position_kernel(lambda k: k, inputs_to_kernel, x, None, True)
        >>> k.nngp.shape, k.cov1.shape, float(k.nngp[1, 0, 2])  # (10 * 4 + 11 * 5) / 2
        ((2, 2, 3), (2, 3), 47.5)
    """

    def one(a: Array, b: Array | None) -> Kernel:
        return rule(to_kernel(a, b).replace(x1_is_x2=x1_is_x2))

    p2 = None if x2 is None else _positions(x2)
    out = jax.vmap(one)(_positions(x1), p2)
    n2 = (x1 if x2 is None else x2).shape[0]
    if isinstance(out, list):
        return [_unstack(k, x1.shape, n2) for k in out]
    return _unstack(out, x1.shape, n2)


def on_positions(rule: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A position-wise ``rule`` that also takes spatially diagonal kernels.

    A ``diagonal_spatial`` Kernel (or a list, one per branch), ``nngp`` ``(N1, N2, *spatial)``,
    is cut into one kernel of spatial size one per position, ``rule`` runs on them
    ``vmap``-ed, and the results are put back in that layout; other kernels go to
    ``rule`` as they are.

    Example:
        >>> from infattn.stax.layer import inputs_to_kernel
        >>> x = jnp.arange(12.0).reshape(2, 3, 2)
        >>> k = per_position_kernel(lambda k: k, inputs_to_kernel, x, None, True)
        >>> double = on_positions(lambda k: k.replace(nngp=2 * k.nngp))
        >>> float(double(k).nngp[1, 0, 2]), double(k).nngp.shape
        (95.0, (2, 2, 3))
    """

    def positions_rule(k: Any) -> Any:
        first = k[0] if isinstance(k, list) else k
        if not first.diagonal_spatial or len(first.shape1) <= 2:
            return rule(k)
        stacked = [_stack(ki) for ki in k] if isinstance(k, list) else _stack(k)
        out = jax.vmap(rule)(stacked)
        if isinstance(out, list):
            return [_unstack(ko, first.shape1, first.shape2[0]) for ko in out]
        return _unstack(out, first.shape1, first.shape2[0])

    return positions_rule


def _scatter(a: Array | None, batch_ndim: int, per_axis: int) -> Array | None:
    """``(*batch, *spatial)`` -> ``(P, *batch, 1, ..., 1)`` (``per_axis`` ones per axis)."""
    if a is None:
        return None
    n_sp = a.ndim - batch_ndim
    a = jnp.moveaxis(a.reshape(*a.shape[:batch_ndim], -1), -1, 0)
    return a.reshape(*a.shape, *(1,) * (per_axis * n_sp))


def _stack(k: Kernel) -> Kernel:
    """A ``diagonal_spatial`` Kernel -> one kernel of spatial size one per position (stacked)."""
    if k.replicates is not None or k.nngp_se is not None:
        raise ValueError("positionwise: diagonal kernels with replicates are not supported")
    ones = (1,) * (len(k.shape1) - 2)
    return k.replace(
        nngp=_scatter(k.nngp, 2, 2),
        ntk=_scatter(k.ntk, 2, 2),
        cov1=_scatter(k.cov1, 1, 2),
        cov2=_scatter(k.cov2, 1, 2),
        mask1=_scatter(k.mask1, 1, 1),
        mask2=_scatter(k.mask2, 1, 1),
        shape1=(k.shape1[0], *ones, k.shape1[-1]),
        shape2=(k.shape2[0], *ones, k.shape2[-1]),
        diagonal_spatial=False,
    )


def _unstack(k: Kernel, shape1: tuple[int, ...], n2: int) -> Kernel:
    """A Kernel stacked over positions -> the ``diagonal_spatial`` layout of inputs ``shape1``."""
    spatial = tuple(shape1[1:-1])
    if k.replicates is not None or any(s != 1 for s in k.shape1[1:-1]):
        raise ValueError(
            "positionwise: a layer built with positionwise=True changed the spatial shape "
            f"or made replicates (output shape {k.shape1})"
        )
    return k.replace(
        nngp=_gather(k.nngp, 2, spatial),
        ntk=_gather(k.ntk, 2, spatial),
        cov1=_gather(k.cov1, 1, spatial),
        cov2=_gather(k.cov2, 1, spatial),
        mask1=_gather(k.mask1, 1, spatial),
        mask2=_gather(k.mask2, 1, spatial),
        shape1=(shape1[0], *spatial, k.shape1[-1]),
        shape2=(n2, *spatial, k.shape2[-1]),
        diagonal_spatial=True,
    )
