"""Diagonals of kernels: per-position variances, neural-tangents' diagonal layouts.

Elementwise nonlinearities and LayerNorm need ``q11 = Sigma_aa(x, x)`` and
``q22 = Sigma_bb(x', x')`` next to every entry ``q12 = Sigma_ab(x, x')``.
:func:`keep_diagonals` gives the ``diagonal_batch``/``diagonal_spatial`` layouts, and
:class:`Diagonal` decides, as neural-tangents does, when a network returns spatially
diagonal kernels by default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from infattn.kernel import Kernel

Array = jax.Array


def spatial_diagonal(cov: Array, start: int = 1) -> Array:
    """``(N, s1, s1, s2, s2, ...)`` -> ``(N, s1, s2, ...)``: each position with itself.

    ``start``: the number of leading (batch) axes, 2 for ``(N1, N2, s1, s1, ...)``.

    Example:
        >>> spatial_diagonal(jnp.zeros((2, 3, 4, 4, 5, 5)), start=2).shape
        (2, 3, 4, 5)
    """
    n_sp = (cov.ndim - start) // 2
    for _ in range(n_sp):
        cov = jnp.diagonal(cov, axis1=start, axis2=start + 1)
    return cov


def keep_diagonals(
    k: Kernel, full_covs: tuple[Array, Array | None] | None, spatial: bool
) -> Kernel:
    """``k`` in neural-tangents' ``diagonal_batch``/``diagonal_spatial`` layouts.

    ``full_covs``: the ``x1``-``x1`` and ``x2``-``x2`` kernels ``(N, N, *S)`` that
    replace ``cov1``/``cov2`` (``diagonal_batch=False``), or ``None`` to keep the
    batch diagonal. ``spatial``: keep only the spatial diagonal, ``nngp``/``ntk``
    ``(N1, N2, s1, s2, ...)`` and ``cov1`` ``(N1, s1, s2, ...)``. A kernel computed
    per position (``k.diagonal_spatial``, :mod:`infattn.stax.positionwise`), and its
    ``full_covs``, are already in that layout.

    Example:
        >>> k = Kernel(nngp=jnp.ones((2, 2, 3, 3)), ntk=None, cov1=jnp.ones((2, 3, 3)), cov2=None)
        >>> keep_diagonals(k, None, True).nngp.shape
        (2, 2, 3)
    """
    if full_covs is not None:
        k = k.replace(cov1=full_covs[0], cov2=full_covs[1], diagonal_batch=False)
    if not spatial or k.diagonal_spatial:
        return k
    per_example = 1 if full_covs is None else 2

    def pairs(x):
        return None if x is None else spatial_diagonal(x, 2)

    def covs(x):
        return None if x is None else spatial_diagonal(x, per_example)

    return k.replace(
        nngp=pairs(k.nngp),
        ntk=pairs(k.ntk),
        nngp_se=pairs(k.nngp_se),
        ntk_se=pairs(k.ntk_se),
        cov1=covs(k.cov1),
        cov2=covs(k.cov2),
        diagonal_spatial=True,
    )


def variances(k: Kernel) -> tuple[Array, Array]:
    """Per-position variances ``(N1, *spatial)`` of x1 and ``(N2, *spatial)`` of x2."""
    v1 = spatial_diagonal(k.cov1)
    return v1, v1 if k.cov2 is None else spatial_diagonal(k.cov2)


NO, MAYBE, YES = 0, 1, 2
"""neural-tangents' trinary ``Bool`` (``MAYBE``: yes while off-diagonal entries are zero)."""


@dataclasses.dataclass(frozen=True)
class Diagonal:
    """Whether a layer's kernels may hold only their spatial diagonals (neural-tangents' rule).

    ``input``: whether the layer can work from spatially diagonal input kernels;
    ``output``: whether its outputs' off-diagonal entries vanish (``MAYBE``: after this
    layer, e.g. an untied convolution; ``YES``: for the rest of the network, e.g. after
    global pooling). neural-tangents composes these over the network (:meth:`then` in
    series, :meth:`both` in parallel; layers without one are transparent) and, unless the
    user says otherwise, returns spatially diagonal kernels when the composition is
    :attr:`diagonal`. infattn computes full kernels and keeps the diagonals at the end,
    so its outputs have neural-tangents' layout.

    Example:
        >>> dense, local = Diagonal(), Diagonal(output=MAYBE)
        >>> dense.then(local).diagonal, local.then(dense).diagonal
        (True, False)
    """

    input: int = YES
    output: int = NO

    def then(self, other: Diagonal) -> Diagonal:
        """This layer followed by ``other`` (neural-tangents' ``>>``)."""
        if self.output == YES:
            return self
        if self.output > NO and other.input > NO:
            first = self.input
        elif self.output == NO and other.input < YES:
            first = NO
        else:
            first = min(self.input, other.input)
        return Diagonal(first, other.output)

    def both(self, other: Diagonal) -> Diagonal:
        """Two parallel branches (neural-tangents' ``&``)."""
        return Diagonal(min(self.input, other.input), min(self.output, other.output))

    @property
    def diagonal(self) -> bool:
        """Whether the composed network's kernels are spatially diagonal by default."""
        return self.input == YES and self.output > NO


def fold(requirements: Sequence[Diagonal | None], serial: bool) -> Diagonal | None:
    """The requirement of layers in series (``serial``) or in parallel; ``None``: none has one.

    Example:
        >>> fold([Diagonal(), None, Diagonal(output=MAYBE)], serial=True)
        Diagonal(input=2, output=1)
    """
    out = None
    for r in requirements:
        if r is not None:
            out = r if out is None else (out.then(r) if serial else out.both(r))
    return out
