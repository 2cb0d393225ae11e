"""Parameter taps: the empirical NTK of a finite network without per-example Jacobians.

The empirical NTK of outputs ``f_a`` (one per example ``a``) is a sum over
parameters of ``<df_a/dp, df_b/dp>``. Every parameter of an ``infattn.stax``
layer enters the network in one of three ways, and for each the per-example
gradient has a structure that makes this inner product cheap:

* **tokenwise contraction** ``y_t = x_t W`` at every position ``t`` of an example
  (Dense, the attention projections, Conv on patches: :func:`conv`): ``df_a/dW =
  sum_t x_t^T g_t`` with ``g_t = df_a/dy_t``, so

      <df_a/dW, df_b/dW> = sum_{t in a, s in b} (x_t . x_s) (g_t . g_s),

  computed either from the two Gram matrices of positions (``(N T)^2 (C_in +
  C_out)`` flops) or from explicit per-example gradients (``N T C_in C_out +
  N^2 C_in C_out``), whichever is cheaper: never from Jacobians of size
  ``N x #params``;
* **untied contraction** ``y_t = x_t W_t`` with weights of their own at every position
  (ConvLocal on patches: :func:`local`): positions never mix, so ``<df_a/dW, df_b/dW> =
  sum_t (x_t . x'_t) (g_t . g'_t)``;
* **per-example broadcast** of a parameter shared by all examples (biases,
  positional embeddings): with ``g_a`` the cotangent of example ``a``'s copy,
  ``<df_a/dp, df_b/dp> = <g_a, g_b>``.

A tapped parameter is a :class:`Tap`: the value and an accumulator ``acc`` of
shape ``(N1, N2)`` whose cotangent, under :func:`jax.vjp` with respect to the
accumulators, *is* the parameter's NTK contribution. When the examples of a
batch are independent (every ``infattn.stax`` layer keeps them so), one
backward pass seeded with ``1`` at output entry ``r`` of every example gives
``df_{a,r}/dy`` for all examples at once, so the whole ``(N1, N2)`` NTK of
that output entry costs one forward and one backward pass plus the Grams.

Every ``infattn.stax`` layer uses :func:`tokenwise`, :func:`conv`, :func:`local` or
:func:`per_example` for each of its parameters (on plain arrays they are the
ordinary operations), so any model built from them can be tapped; ``infattn.empirical`` does so for
``implementation=AUTO`` (the default) and ``STRUCTURED_DERIVATIVES``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class Tap:
    """A parameter ``value`` with an NTK accumulator ``acc`` ``(N1, N2)``.

    ``split``: the examples of the batch are ``x1`` (the first ``N1``) followed
    by ``x2``, and ``acc`` collects the cross block; ``None``: the batch is
    ``x1`` alone and ``acc`` is the square ``(N1, N1)`` block.
    """

    value: Array
    acc: Array
    split: int | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def dtype(self) -> jnp.dtype:
        return self.value.dtype

    def tree_flatten(self):
        return (self.value, self.acc), self.split

    @classmethod
    def tree_unflatten(cls, split, children):
        return cls(*children, split)


def tokenwise(x: Array, w: Array | Tap, axes: int | Sequence[int] = 0) -> Array:
    """Contract ``x``'s channel axis with the ``axes`` of ``w`` at every position.

    ``x``: ``(N, *positions, C)``; ``w``: any shape whose ``axes`` (flattened in
    order) have size ``C``. Returns ``(N, *positions, *rest)``, ``rest`` being
    ``w``'s other axes in order.
    """
    value = w.value if isinstance(w, Tap) else w
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    rest = [i for i in range(value.ndim) if i not in axes]
    mat = jnp.transpose(value, (*axes, *rest)).reshape(x.shape[-1], -1)
    rest_shape = tuple(value.shape[i] for i in rest)
    y = _tapped_matmul(x, mat, w.acc, w.split) if isinstance(w, Tap) else x @ mat
    return y.reshape(*x.shape[:-1], *rest_shape)


def conv(
    x: Array,
    w: Array | Tap,
    strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    dimension_numbers: tuple[str, str, str],
    lhs_dilation: Sequence[int] | None = None,
) -> Array:
    """``lax.conv_general_dilated``; ``strides``, ``padding`` in the filter's spatial order.

    ``lhs_dilation``: zeros inserted between input positions (a transposed convolution).
    ``w`` is laid out as ``dimension_numbers[1]`` says (``I``, ``O`` and spatial
    letters). Tapped, the same convolution is a :func:`tokenwise` contraction of
    patches ``(N, *out_spatial, C_in * |F|)`` (input channel major, then the
    filter's spatial axes in its order, as XLA orders them).
    """
    rhs = dimension_numbers[1]
    if not isinstance(w, Tap):
        return lax.conv_general_dilated(
            x, w, strides, padding, lhs_dilation, dimension_numbers=dimension_numbers
        )
    spatial = [i for i, c in enumerate(rhs) if c not in "IO"]
    patches = lax.conv_general_dilated_patches(
        x,
        [w.shape[i] for i in spatial],
        strides,
        padding,
        lhs_dilation,
        dimension_numbers=dimension_numbers,
    )
    return tokenwise(patches, w, (rhs.index("I"), *spatial))


def local(x: Array, w: Array | Tap, in_axis: int, position_axes: Sequence[int]) -> Array:
    """Contract ``x``'s channels with weights of its own at every position (untied).

    ``x``: ``(N, *positions, C)``; ``w``: ``positions`` at ``position_axes`` (in
    ``x``'s order), ``C`` at ``in_axis``, any other axes ``rest`` in order. Returns
    ``(N, *positions, *rest)``: ``y[n, p] = x[n, p] @ w[p]``. Tapped, the NTK of ``w``
    is ``sum_p (x_a(p) . x_b(p)) (g_a(p) . g_b(p))``, positions never mixing.

    Example:
        >>> local(jnp.ones((2, 3, 4)), jnp.ones((4, 3, 5)), 0, (1,)).shape
        (2, 3, 5)
    """
    value = w.value if isinstance(w, Tap) else w
    position_axes = tuple(position_axes)
    rest = [i for i in range(value.ndim) if i != in_axis and i not in position_axes]
    mat = jnp.transpose(value, (*position_axes, in_axis, *rest))
    mat = mat.reshape(-1, x.shape[-1], math.prod(value.shape[i] for i in rest))
    flat = x.reshape(x.shape[0], mat.shape[0], x.shape[-1])
    y = _tapped_local(flat, mat, w.acc, w.split) if isinstance(w, Tap) else _local_matmul(flat, mat)
    return y.reshape(*x.shape[:-1], *(value.shape[i] for i in rest))


def per_example(p: Array | Tap | None, n: int, shape: Sequence[int] | None = None) -> Array | None:
    """A parameter with a leading axis of size 1, as ``n`` per-example copies when tapped.

    ``shape``: reshape the parameter to it first (its leading axis of size 1, e.g. a bias
    stored in another layout). Plain arrays are returned reshaped (they broadcast); a
    :class:`Tap` becomes ``(n, *shape[1:])`` so that each example's copy gets its own
    cotangent.
    """
    if p is None:
        return None
    shape = p.shape if shape is None else tuple(shape)
    if isinstance(p, Tap):
        return _tapped_broadcast(p.value.reshape(shape), p.acc, n, p.split)
    return p.reshape(shape)


def _halves(a: Array, split: int | None) -> tuple[Array, Array]:
    """Rows for ``x1`` and for ``x2``: both all of ``a`` when ``split`` is ``None``."""
    return (a, a) if split is None else (a[:split], a[split:])


def _gram_of_gradients(x: Array, g: Array, split: int | None) -> Array:
    """``<sum_t x_t^T g_t (example a), same (example b)>`` for all pairs: ``(N1, N2)``."""
    n = x.shape[0]
    x = x.reshape(n, -1, x.shape[-1])
    g = g.reshape(n, -1, g.shape[-1])
    t, c_in, c_out = x.shape[1], x.shape[2], g.shape[2]
    n2 = n if split is None else n - split
    n1 = n if split is None else split
    by_positions = n1 * n2 * t * t * (c_in + c_out + 1)
    by_gradients = n * t * c_in * c_out + n1 * n2 * c_in * c_out
    hi = jax.lax.Precision.HIGHEST
    if by_gradients <= by_positions:
        a, b = _halves(jnp.einsum("ntc,ntd->ncd", x, g, precision=hi).reshape(n, -1), split)
        return jnp.matmul(a, b.T, precision=hi)
    xa, xb = _halves(x, split)
    ga, gb = _halves(g, split)
    kx = jnp.einsum("atc,bsc->atbs", xa, xb, precision=hi)
    kg = jnp.einsum("atc,bsc->atbs", ga, gb, precision=hi)
    return jnp.einsum("atbs,atbs->ab", kx, kg, precision=hi)


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _tapped_matmul(x: Array, mat: Array, acc: Array, split: int | None) -> Array:
    del acc
    return x @ mat


def _tapped_matmul_fwd(x, mat, acc, split):
    del acc
    return x @ mat, (x, mat)


def _tapped_matmul_bwd(split, res, g):
    x, mat = res
    return g @ mat.T, None, _gram_of_gradients(x, g, split).astype(g.dtype)


_tapped_matmul.defvjp(_tapped_matmul_fwd, _tapped_matmul_bwd)


def _local_matmul(x: Array, mat: Array) -> Array:
    """``(N, P, C) x (P, C, R) -> (N, P, R)``, one matrix per position."""
    return jnp.einsum("npc,pcr->npr", x, mat, precision=jax.lax.Precision.HIGHEST)


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _tapped_local(x: Array, mat: Array, acc: Array, split: int | None) -> Array:
    del acc
    return _local_matmul(x, mat)


def _tapped_local_fwd(x, mat, acc, split):
    del acc
    return _local_matmul(x, mat), (x, mat)


def _tapped_local_bwd(split, res, g):
    x, mat = res
    hi = jax.lax.Precision.HIGHEST
    xa, xb = _halves(x, split)
    ga, gb = _halves(g, split)
    kx = jnp.einsum("apc,bpc->abp", xa, xb, precision=hi)
    kg = jnp.einsum("apr,bpr->abp", ga, gb, precision=hi)
    gram = jnp.sum(kx * kg, axis=-1)
    return jnp.einsum("npr,pcr->npc", g, mat, precision=hi), None, gram.astype(g.dtype)


_tapped_local.defvjp(_tapped_local_fwd, _tapped_local_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _tapped_broadcast(p: Array, acc: Array, n: int, split: int | None) -> Array:
    del acc
    return jnp.broadcast_to(p, (n, *p.shape[1:]))


def _tapped_broadcast_fwd(p, acc, n, split):
    del acc
    return jnp.broadcast_to(p, (n, *p.shape[1:])), None


def _tapped_broadcast_bwd(n, split, res, g):
    del res
    a, b = _halves(g.reshape(n, -1), split)
    gram = jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST)
    return None, gram.astype(g.dtype)


_tapped_broadcast.defvjp(_tapped_broadcast_fwd, _tapped_broadcast_bwd)
