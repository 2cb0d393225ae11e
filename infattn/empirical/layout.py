"""Kernel layout of finite networks' outputs: which axes are traced, kept once or paired.

For outputs ``f(x1)`` ``(*out1)`` and ``f(x2)`` ``(*out2)`` (batch first), a kernel
averages over the axes in ``trace_axes``, keeps the axes in ``diagonal_axes`` once
(their diagonal) and every other axis twice, ``x1``'s then ``x2``'s, in order:
``(N1, N2, L, L)`` for sequence outputs, ``(N1, N2)`` after pooling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Axes = int | Sequence[int]


def canonical_axes(axes: Axes, ndim: int, name: str) -> tuple[int, ...]:
    """``axes`` (an axis or a sequence) as sorted non-negative axes of an ``ndim``-array.

    Example:
        >>> canonical_axes(-1, 3, "trace_axes")
        (2,)
    """
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    out = []
    for a in axes:
        if not isinstance(a, int | np.integer) or not -ndim <= a < ndim:
            raise ValueError(f"{name}: expected axes of outputs with {ndim} dimensions, got {axes}")
        out.append(int(a) % ndim)
    return tuple(sorted(set(out)))


def _zipped_order(ndim: int, trace: tuple[int, ...], diag: tuple[int, ...]) -> list[tuple]:
    """Output axes of a kernel: per output axis ``(i, side)``, side 0 = x1's, 1 = x2's."""
    order = []
    for i in range(ndim):
        if i in diag:
            order.append((i, 0))
        elif i not in trace:
            order.extend(((i, 0), (i, 1)))
    return order


def contract(a: Array, b: Array, ndim: int, trace: tuple[int, ...], diag: tuple[int, ...]) -> Array:
    """``<a, b>`` over ``trace`` and over all axes past the first ``ndim``.

    ``a``: ``(*out1, *rest)``, ``b``: ``(*out2, *rest)`` with ``len(out) == ndim``.
    Returns the zipped layout: per output axis ``i``, nothing if ``i in trace``,
    one axis if ``i in diag``, else ``(out1[i], out2[i])``; divided by the size
    of the traced axes. Done as one (batched over ``diag``) matrix product of
    ``(kept, trace * rest)`` matrices: with the default ``trace_axes=(-1,)`` the
    operands need no transposition, so Jacobians are read in place.

    Example:
        >>> a = jnp.ones((2, 3, 4))  # (N1, L, C)
        >>> contract(a, jnp.ones((5, 3, 4)), 3, (2,), ()).shape  # (N1, N2, L, L)
        (2, 5, 3, 3)
    """
    kept = [i for i in range(ndim) if i not in trace and i not in diag]
    rest = list(range(ndim, a.ndim))
    perm = list(diag) + kept + list(trace) + rest
    a_t, b_t = jnp.transpose(a, perm), jnp.transpose(b, perm)
    d_shape = tuple(a.shape[i] for i in diag)
    k1 = tuple(a.shape[i] for i in kept)
    k2 = tuple(b.shape[i] for i in kept)
    d, n1, n2 = math.prod(d_shape), math.prod(k1), math.prod(k2)
    a_m = a_t.reshape(d, n1, -1)
    b_m = b_t.reshape(d, n2, -1)
    g = jax.lax.dot_general(
        a_m, b_m, (((2,), (2,)), ((0,), (0,))), precision=jax.lax.Precision.HIGHEST
    )
    g = g.reshape(d_shape + k1 + k2)
    # current axes: diag..., kept(x1)..., kept(x2)...; move to the zipped order
    pos = {}
    for n, i in enumerate(diag):
        pos[(i, 0)] = n
    for n, i in enumerate(kept):
        pos[(i, 0)] = len(diag) + n
        pos[(i, 1)] = len(diag) + len(kept) + n
    g = jnp.transpose(g, [pos[o] for o in _zipped_order(ndim, trace, diag)])
    size = math.prod(a.shape[i] for i in trace)
    return g / size


def trace_and_diagonal(
    full: Array, ndim: int, trace: tuple[int, ...], diag: tuple[int, ...]
) -> Array:
    """From a full kernel ``(*out1, *out2)`` to the zipped, traced, diagonal layout.

    Example:
        >>> trace_and_diagonal(jnp.ones((2, 4, 2, 4)), 2, (1,), (0,)).shape
        (2,)
    """
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    l1, l2, lo = [], [], []
    for i in range(ndim):
        x = next(letters)
        if i in trace or i in diag:
            l1.append(x)
            l2.append(x)
            if i in diag:
                lo.append(x)
        else:
            y = next(letters)
            l1.append(x)
            l2.append(y)
            lo.extend((x, y))
    size = math.prod(full.shape[i] for i in trace)
    return jnp.einsum(f"{''.join(l1 + l2)}->{''.join(lo)}", full) / size
