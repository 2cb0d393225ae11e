"""Aggregate: graph message passing (neural-tangents' ``Aggregate``, graph neural networks).

Each example comes with a graph over the positions of its ``aggregate_axis`` (all
spatial axes by default): ``apply_fn(..., pattern=p)`` replaces every vertex by the
weighted sum of its predecessors, ``y[n, head] = sum_tail p[n, tail, head] x[n, tail]``,
channel by channel and independently along the other spatial axes. The covariance of
two outputs is the input covariance summed over both predecessor sets,
``nngp'[i, j, q, Q] = sum_{t, T} p1[i, t, q] p2[j, T, Q] nngp[i, j, t, T]``; the
kernel takes ``kernel_fn(..., pattern=(p1, p2))``, one pattern per input batch.

``implementation='DENSE'``: ``p`` is a weighted adjacency tensor ``(N, *agg, *agg)``
(tails first), after ``to_dense(p)``. ``'SPARSE'``: ``p`` is an integer array of
edges ``(N, n_edges, K, 2)`` (``(N, n_edges, 2)`` when ``K = 1``) holding tail and
head coordinates; repeated edges add up and an edge whose head has a negative
coordinate is dropped. Both become one dense rule here (the sparse edges are counted
into an adjacency tensor), which costs ``O(V^2)`` memory per example where
neural-tangents' sparse ``apply_fn`` costs ``O(V + E)``.
"""

from __future__ import annotations

import enum
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from infattn.kernel import Kernel
from infattn.stax import call_kwargs, layout
from infattn.stax.diagonal import NO, Diagonal
from infattn.stax.layer import make_layer
from infattn.validation import check_axes, check_choice

Array = jax.Array
LETTERS = "abdefghklmopqrstuvwxy"


class AggregateImplementation(enum.Enum):
    """How ``Aggregate``'s ``pattern`` is given: an adjacency tensor or a list of edges."""

    DENSE = "DENSE"
    SPARSE = "SPARSE"


def edges_to_dense(pattern: Array, agg_shape: Sequence[int]) -> Array:
    """Edge lists ``(N, E, K, 2)`` (or ``(N, E, 2)`` for ``K = 1``) as adjacency counts.

    Returns ``(N, *agg_shape, *agg_shape)``, tails first. Coordinates wrap around
    each axis; an edge whose head has a negative coordinate is dropped, and a tail
    with a negative coordinate is the last vertex (neural-tangents' behaviour).

    Example:
        >>> edges = jnp.array([[[0, 1], [0, 1], [2, -1]]])  # 0->1 twice, 2->(dropped)
        >>> edges_to_dense(edges, (3,))[0].astype(int).tolist()
        [[0, 2, 0], [0, 0, 0], [0, 0, 0]]
    """
    pattern = jnp.asarray(pattern)
    k = len(agg_shape)
    if pattern.ndim == 3 and k == 1:
        pattern = pattern[:, :, None, :]
    if pattern.ndim != 4 or pattern.shape[2:] != (k, 2):
        raise ValueError(
            f"pattern: with implementation='SPARSE' and {k} aggregate axes, expected integer "
            f"edges of shape (N, n_edges, {k}, 2), got shape {pattern.shape}"
        )
    size = math.prod(agg_shape)

    def flat(coords: Array) -> Array:  # (N, E, K) -> (N, E), -1 where a coordinate < 0
        raveled = jnp.ravel_multi_index(tuple(jnp.moveaxis(coords, -1, 0)), agg_shape, "wrap")
        return jnp.where(jnp.all(coords >= 0, axis=-1), raveled, -1)

    tails = flat(pattern[..., 0]) % size  # -1 is the last vertex
    heads = flat(pattern[..., 1])
    heads = jnp.where(heads < 0, size, heads)  # out of range: dropped
    n = jnp.arange(pattern.shape[0])[:, None]
    dense = jnp.zeros((pattern.shape[0], size, size)).at[n, tails, heads].add(1.0, mode="drop")
    return dense.reshape((pattern.shape[0], *agg_shape, *agg_shape))


def _subscripts(n_spatial: int, agg: Sequence[int]) -> tuple[str, str, str]:
    """Letters of the spatial axes, the pattern's (tails, heads) and the output's."""
    spatial = LETTERS[:n_spatial]
    heads = LETTERS[n_spatial : n_spatial + len(agg)]
    out = list(spatial)
    for a, h in zip(agg, heads, strict=True):
        out[a] = h
    return spatial, "".join(spatial[a] for a in agg) + heads, "".join(out)


def aggregate_kernel(k: Kernel, agg: Sequence[int], p1: Array, p2: Array) -> Kernel:
    """``k`` aggregated by dense patterns ``p1`` (of ``x1``) and ``p2`` (of ``x2``).

    ``agg``: the aggregated spatial axes (canonical indices from 0); ``k`` without
    replicates, canonical layout. The result is remasked (neural-tangents' rule).
    """
    spatial, pat, out = _subscripts(len(k.spatial_shape), agg)
    pairs = "".join(a + a.upper() for a in spatial)
    out_pairs = "".join(a + a.upper() for a in out)

    def cross(m: Array | None, b1: str, b2: str, q1: Array, q2: Array) -> Array | None:
        if m is None:
            return None
        batch = b1 if b1 == b2 else b1 + b2
        rule = f"{b1}{pat},{batch}{pairs},{b2}{pat.upper()}->{batch}{out_pairs}"
        return jnp.einsum(rule, q1.astype(m.dtype), m, q2.astype(m.dtype))

    same2 = p1 if k.cov2 is None else p2
    return k.replace(
        nngp=cross(k.nngp, "i", "j", p1, p2),
        ntk=cross(k.ntk, "i", "j", p1, p2),
        cov1=cross(k.cov1, "i", "i", p1, p1),
        cov2=cross(k.cov2, "i", "i", same2, same2),
    ).remask()


def Aggregate(
    aggregate_axis: int | Sequence[int] | None = None,
    batch_axis: int = 0,
    channel_axis: int = -1,
    to_dense: Callable[[Any], Any] | None = lambda p: p,
    implementation: str = AggregateImplementation.DENSE.value,
):
    """Graph aggregation (module docstring), neural-tangents' ``stax.Aggregate``.

    ``apply_fn(params, x, pattern=p)``; ``kernel_fn(x1, x2, get, pattern=(p1, p2))``
    (``p2`` for ``x2``, or ``p1`` again when ``x2`` is ``None``). ``pattern=None``
    (``(None, None)``) is the identity. ``aggregate_axis``: the axes of the user's
    arrays the graph lives on (default: every axis but the batch and channel axes).
    Masks pass unchanged and the kernel is remasked.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(3), Aggregate(), stax.GlobalSumPool())
        >>> x, ring = np.ones((1, 3, 2)), np.roll(np.eye(3), 1, axis=1)[None]  # (1, 3, 3)
        >>> float(kernel_fn(x, None, "nngp", pattern=(ring, ring))[0, 0])
        9.0
    """
    implementation = AggregateImplementation(
        check_choice(implementation, ("DENSE", "SPARSE"), "implementation")
    )
    check_axes("Aggregate", batch_axis=batch_axis, channel_axis=channel_axis)
    if implementation is AggregateImplementation.SPARSE:
        warnings.warn(
            "Aggregate: negative coordinates in a SPARSE pattern mark padding edges (not "
            "numpy's negative indexing)",
            stacklevel=2,
        )
    axes = (batch_axis, channel_axis)

    def agg_axes(ndim: int) -> tuple[int, ...]:
        """The aggregated axes as canonical spatial indices (from 0)."""
        b, c = layout.canonical_axes(axes, ndim)
        spatial = layout.to_canonical_order(ndim, b, c)[1:-1]
        if aggregate_axis is None:
            return tuple(range(len(spatial)))
        given = (aggregate_axis,) if isinstance(aggregate_axis, int) else tuple(aggregate_axis)
        users = sorted({layout.normalize_axis(a, ndim, "aggregate_axis") for a in given})
        if b in users or c in users:
            raise ValueError(
                f"aggregate_axis: expected spatial axes (not batch_axis={batch_axis} or "
                f"channel_axis={channel_axis}), got {aggregate_axis!r}"
            )
        return tuple(spatial.index(u) for u in users)

    def dense(pattern: Any, shape: Sequence[int], agg: Sequence[int]) -> Array:
        if implementation is AggregateImplementation.SPARSE:
            return edges_to_dense(pattern, [shape[1 + a] for a in agg])
        return jnp.asarray(pattern if to_dense is None else to_dense(pattern))

    def init(rng, input_shape):
        return input_shape, ()

    def apply(params, x, mask, pattern=None, **kwargs):
        if pattern is None:
            return x, mask
        agg = agg_axes(x.ndim)
        spatial, pat, out = _subscripts(x.ndim - 2, agg)
        p = dense(pattern, x.shape, agg).astype(x.dtype)
        return jnp.einsum(f"n{spatial}c,n{pat}->n{out}c", x, p), mask

    def kernel(k):
        pattern = call_kwargs.get("pattern", (None, None))
        p1, p2 = _pair(pattern)
        if p1 is None and p2 is None:
            return k
        agg = agg_axes(len(k.shape1))
        return aggregate_kernel(k, agg, dense(p1, k.shape1, agg), dense(p2, k.shape2, agg))

    boundary = layout.Boundary(axes)
    diagonal = Diagonal(input=NO, output=NO)  # neural-tangents': spatially full kernels
    return make_layer(
        init, apply, kernel, "Aggregate", pairwise=False, boundary=boundary, diagonal=diagonal
    )


def _pair(pattern: Any) -> tuple[Any, Any]:
    if not isinstance(pattern, tuple | list) or len(pattern) != 2:
        raise ValueError(
            "pattern: kernel_fn takes pattern=(pattern1, pattern2), one per input batch "
            f"(pattern1 twice when x2 is None); got {type(pattern).__name__}"
        )
    if (pattern[0] is None) != (pattern[1] is None):
        raise NotImplementedError(
            "pattern: exactly one of pattern1/pattern2 None is not supported (as in "
            "neural-tangents)"
        )
    return pattern[0], pattern[1]
