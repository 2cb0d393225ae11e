"""The `Kernel`: infinite-width covariances carried from layer to layer.

Layout (the same as neural-tangents, so arrays compare entry by entry):

* ``nngp``, ``ntk``: ``(N1, N2, *S)`` where ``S`` interleaves the spatial axes in
  pairs, ``(L, L)`` for sequences, ``(H, H, W, W)`` for images and ``()`` after
  pooling or flattening. ``nngp[i, j, a, b]`` is the covariance of one output
  channel at position ``a`` of ``x1[i]`` and position ``b`` of ``x2[j]``.
* ``cov1``: ``(N1, *S)``, each example of ``x1`` with itself (the batch diagonal
  of the ``x1``-``x1`` nngp); ``cov2``: ``(N2, *S)`` or ``None`` when ``x2`` is
  ``None`` (then ``nngp`` is the ``x1``-``x1`` kernel and ``cov2`` is ``cov1``).
* ``mask1``: ``(N1, *spatial)`` booleans, ``True`` at padding positions, or
  ``None``; ``mask2`` likewise (``None`` also when ``x2`` is ``None``).
* ``nngp_se``, ``ntk_se``: standard errors of ``nngp`` and ``ntk``, same shapes,
  when a Monte Carlo layer made the kernel an estimate; ``None`` for closed forms.
* ``replicates``: inside a model, a ``Kernel`` whose ``nngp``, ``ntk``, ``cov1``,
  ``cov2`` carry a leading axis ``R``: replicate ``r`` is the same model computed
  from sub-stream ``r`` of every Monte Carlo layer's samples (masks, shapes and
  flags are the parent's). ``None`` for closed forms. The public ``kernel_fn``
  turns them into ``nngp_se``/``ntk_se`` and drops them (see
  ``docs/standard-errors.md``).
* ``law_key``: a PRNG key, or ``None``. When set, the kernel is one draw of the
  *finite-head law* (:func:`infattn.limits.sample_finite_head_outputs`): every
  standard-scaling Monte Carlo attention layer draws its heads' logits with part
  of it and returns the conditional covariance given them, passing the rest on.

Batch is axis 0 and channels are the last axis of the inputs; ``shape1`` and
``shape2`` are the current (finite-network) shapes of one batch with the channel
axis counting the finite width the layer would have.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array

N_REPLICATES = 10
"""Default number ``R`` of independent sub-streams a Monte Carlo layer splits its
samples into; the standard error has ``R - 1`` degrees of freedom."""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Kernel:
    """Covariances of a network's outputs in the infinite-width limit.

    A pytree: the arrays are leaves, the flags and shapes are static.
    """

    nngp: Array
    ntk: Array | None
    cov1: Array
    cov2: Array | None
    mask1: Array | None = None
    mask2: Array | None = None
    shape1: tuple[int, ...] = dataclasses.field(default=(), metadata={"static": True})
    shape2: tuple[int, ...] = dataclasses.field(default=(), metadata={"static": True})
    is_gaussian: bool = dataclasses.field(default=False, metadata={"static": True})
    x1_is_x2: bool = dataclasses.field(default=False, metadata={"static": True})
    nngp_se: Array | None = None
    ntk_se: Array | None = None
    replicates: Kernel | None = None
    law_key: Array | None = None

    # Fixed conventions, kept for code written against neural-tangents.
    batch_axis: int = dataclasses.field(default=0, metadata={"static": True})
    channel_axis: int = dataclasses.field(default=-1, metadata={"static": True})
    diagonal_batch: bool = dataclasses.field(default=True, metadata={"static": True})
    diagonal_spatial: bool = dataclasses.field(default=False, metadata={"static": True})

    def replace(self, **changes: Any) -> Kernel:
        return dataclasses.replace(self, **changes)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Spatial shape ``(L,)`` or ``(H, W)``; ``()`` after pooling."""
        return tuple(self.shape1[1:-1])

    def mask2_or_mask1(self) -> Array | None:
        """The mask of ``x2``, which is ``x1``'s when ``x2`` is ``None``."""
        return self.mask1 if self.cov2 is None else self.mask2

    def remask(self) -> Kernel:
        """Zero every covariance entry that touches a masked position."""
        if self.mask1 is None:
            return self
        m1, m2, sp = self.mask1, self.mask2_or_mask1(), self.diagonal_spatial
        return self.replace(
            cov1=jnp.where(pair_mask(m1, m1, True, sp), 0.0, self.cov1),
            cov2=None
            if self.cov2 is None
            else jnp.where(pair_mask(m2, m2, True, sp), 0.0, self.cov2),
            nngp=jnp.where(pair_mask(m1, m2, False, sp), 0.0, self.nngp),
            ntk=None
            if self.ntk is None
            else jnp.where(pair_mask(m1, m2, False, sp), 0.0, self.ntk),
        )


def pair_mask(
    m1: Array, m2: Array, diagonal_batch: bool = False, diagonal_spatial: bool = False
) -> Array:
    """Entries of a kernel that touch a masked position.

    ``m1``: ``(N1, *spatial)``, ``m2``: ``(N2, *spatial)`` booleans. Returns
    ``(N1, N2, *S)`` (or ``(N1, *S)`` with ``diagonal_batch``, where ``m2 is m1``)
    in the interleaved layout (each position with itself, ``(N1, N2, *spatial)``, with
    ``diagonal_spatial``), ``True`` where either position is masked.

    Example:
        >>> m = jnp.array([[False, True]])  # (N, L): the second position is padding
        >>> pair_mask(m, m)[0, 0].tolist()
        [[False, True], [True, True]]
    """
    a, b = outer_per_position(m1, m2, diagonal_batch, diagonal_spatial)
    return a | b


def outer_per_position(
    v1: Array, v2: Array, diagonal_batch: bool = False, diagonal_spatial: bool = False
) -> tuple[Array, Array]:
    """Broadcast per-position values to the interleaved kernel layout.

    ``v1``: ``(N1, *spatial)``, ``v2``: ``(N2, *spatial)``. Returns ``(A, B)``
    broadcastable to ``(N1, N2, s1, s1, s2, s2, ...)`` (``(N1, s1, s1, ...)``
    with ``diagonal_batch``) with ``A[i, j, a1, b1, ...] = v1[i, a1, ...]`` and
    ``B[i, j, a1, b1, ...] = v2[j, b1, ...]``; with ``diagonal_spatial``, to
    ``(N1, N2, s1, s2, ...)`` (each position with itself).

    Example:
        >>> a, b = outer_per_position(jnp.ones((2, 3)), jnp.ones((4, 3)))
        >>> (a * b).shape  # (N1, N2, L, L)
        (2, 4, 3, 3)
    """
    # insert a singleton after each spatial axis of v1, before each of v2
    a, b = v1, v2
    if not diagonal_spatial:
        a = v1.reshape(v1.shape[:1] + sum(((s, 1) for s in v1.shape[1:]), ()))
        b = v2.reshape(v2.shape[:1] + sum(((1, s) for s in v2.shape[1:]), ()))
    if diagonal_batch:
        return a, b
    a = a[:, None]
    b = b[None]
    return a, b
