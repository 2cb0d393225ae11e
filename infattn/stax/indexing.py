"""Index and Slice: numpy-style basic indexing of a layer's arrays (neural-tangents' ``Index``).

``Index(idx)`` computes ``x[idx]`` with ``idx`` written for the user's arrays (their
``batch_axis`` and ``channel_axis`` where they are); ``Slice[1:, ::2, ...]`` builds
``idx``. Indexing keeps each activation and drops the others, so the kernel is the
input kernel indexed the same way: a spatial entry indexes both axes of its pair
``(s, s')``, a batch entry indexes both batch axes of ``nngp``/``ntk`` (the same
index on ``x1`` and ``x2``, as neural-tangents does) and the one of ``cov1``/``cov2``.
An integer removes its axis. The channel axis (infinitely wide) can only be indexed
with ``:`` in the kernel, and the batch axis never with an integer (a kernel always
has one).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from infattn.kernel import Kernel
from infattn.stax import layout
from infattn.stax.layer import make_layer
from infattn.validation import check_axes

Entry = int | slice
FULL = slice(None)


class _Slice:
    """``Slice[...]`` returns the index expression between the brackets."""

    def __getitem__(self, idx: Any) -> Any:
        return idx

    def __repr__(self) -> str:
        return "Slice"


Slice = _Slice()
"""Builds ``Index``'s ``idx``: ``Slice[1, :, 2:8:3] == (1, slice(None), slice(2, 8, 3))``.

Example:
    >>> Slice[::2, 1]
    (slice(None, None, 2), 1)
"""


def expand_idx(idx: Any, ndim: int) -> tuple[Entry, ...]:
    """``idx`` as one entry (an integer or a slice) per axis of an ``ndim``-axis array.

    ``...`` stands for as many ``:`` as needed and missing trailing entries are
    ``:``. Only integers, slices and one ``...`` are accepted (basic indexing).

    Example:
        >>> expand_idx((0, ...), 3)
        (0, slice(None, None, None), slice(None, None, None))
    """
    entries = idx if isinstance(idx, tuple) else (idx,)
    for e in entries:
        if not (e is Ellipsis or isinstance(e, slice) or _is_int(e)):
            raise ValueError(
                "idx: Index expects integers, slices and at most one '...' (basic indexing, "
                f"e.g. stax.Slice[::2, 1:, ...]); got the entry {e!r} in {idx!r}"
            )
    n_ellipsis = sum(e is Ellipsis for e in entries)
    if n_ellipsis > 1 or len(entries) - n_ellipsis > ndim:
        raise ValueError(
            f"idx: Index got {idx!r}, which does not fit an array with {ndim} axes "
            "(at most one '...' and one entry per axis)"
        )
    if n_ellipsis:
        at = entries.index(Ellipsis)
        fill = (FULL,) * (ndim - len(entries) + 1)
        entries = entries[:at] + fill + entries[at + 1 :]
    entries = entries + (FULL,) * (ndim - len(entries))
    return tuple(int(e) if _is_int(e) else e for e in entries)


def _is_int(e: Any) -> bool:
    return isinstance(e, int | np.integer) and not isinstance(e, bool)


def indexed_shape(shape: tuple[int, ...], idx: tuple[Entry, ...]) -> tuple[int, ...]:
    """The shape of ``x[idx]`` for ``x`` of ``shape`` (numpy's rules, nothing allocated).

    Example:
        >>> indexed_shape((4, 5, 3), (slice(None, None, 2), 1, slice(None)))
        (2, 3)
    """
    return np.broadcast_to(np.zeros((), bool), shape)[idx].shape


@dataclasses.dataclass(frozen=True)
class IndexPlan:
    """``idx`` for an ``ndim``-axis array, split by the role of each axis.

    ``batch``, ``spatial`` (in the canonical spatial order), ``channel``: the entries
    of the batch, spatial and channel axes; ``out_axes``: the batch and channel axes
    of ``x[idx]`` (shifted by the integers before them).
    """

    batch: slice
    spatial: tuple[Entry, ...]
    channel: slice
    out_axes: layout.Axes

    @property
    def canonical(self) -> tuple[Entry, ...]:
        """The index of a canonical ``(N, *spatial, C)`` array."""
        return (self.batch, *self.spatial, self.channel)


def index_plan(idx: Any, ndim: int, axes: layout.Axes) -> IndexPlan:
    """Split ``idx`` (written for arrays with batch and channel axes ``axes``).

    Example:
        >>> index_plan((slice(None), 0), 4, (0, 1)).out_axes  # NCHW[:, 0] has no channels
        Traceback (most recent call last):
        ...
        NotImplementedError: idx: Index cannot index the channel axis 1 with an integer (0); ...
    """
    full = expand_idx(idx, ndim)
    b, c = layout.canonical_axes(axes, ndim)
    for axis, name, what in ((b, "batch", "a batch axis"), (c, "channel", "a channel axis")):
        if _is_int(full[axis]):
            raise NotImplementedError(
                f"idx: Index cannot index the {name} axis {axis} with an integer "
                f"({full[axis]}); it would remove it and layers need {what}: use a slice "
                f"(e.g. {full[axis]}:{full[axis] + 1})"
            )

    def shifted(axis: int) -> int:
        return axis - sum(_is_int(e) for e in full[:axis])

    spatial = tuple(full[a] for a in layout.to_canonical_order(ndim, b, c)[1:-1])
    return IndexPlan(full[b], spatial, full[c], (shifted(b), shifted(c)))


def index_kernel(k: Kernel, plan: IndexPlan) -> Kernel:
    """``k`` indexed by ``plan`` (canonical layout; ``k`` without replicates)."""
    if plan.channel != FULL:
        raise NotImplementedError(
            f"idx: Index in kernel_fn cannot index the (infinitely wide) channel axis, "
            f"got {plan.channel!r}; only ':' (or '...') is supported"
        )
    pairs = tuple(e for e in plan.spatial for _ in range(2))
    cross, own = (plan.batch, plan.batch, *pairs), (plan.batch, *pairs)
    return k.replace(
        nngp=k.nngp[cross],
        ntk=None if k.ntk is None else k.ntk[cross],
        cov1=k.cov1[own],
        cov2=None if k.cov2 is None else k.cov2[own],
        mask1=None if k.mask1 is None else k.mask1[plan.canonical[:-1]],
        mask2=None if k.mask2 is None else k.mask2[plan.canonical[:-1]],
        shape1=indexed_shape(k.shape1, plan.canonical),
        shape2=indexed_shape(k.shape2, plan.canonical),
    )


def Index(idx: Any, batch_axis: int = 0, channel_axis: int = -1):
    """``x[idx]``, neural-tangents' ``stax.Index``; build ``idx`` with :data:`Slice`.

    ``idx`` holds integers, slices and at most one ``...``, one entry per axis of
    the user's arrays (``batch_axis``, ``channel_axis`` say which is which). An
    integer removes its axis (never the batch or channel axis); in ``kernel_fn``
    the channel axis takes only ``:``. Indexing the batch axis indexes ``x1`` and
    ``x2`` alike. Masks are indexed with the arrays; the kernel is not remasked.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Conv(4, (2, 2)), Index(Slice[::2, :, 0]))
        >>> kernel_fn(np.ones((3, 4, 5, 2)), get="nngp").shape  # (N1, N2, H, H)
        (2, 2, 3, 3)
    """
    check_axes("Index", batch_axis=batch_axis, channel_axis=channel_axis)
    axes = (batch_axis, channel_axis)
    expand_idx(idx, 64)  # the entries' types, checked now

    def plan(ndim: int) -> IndexPlan:
        return index_plan(idx, ndim, axes)

    def init(rng, input_shape):
        return indexed_shape(tuple(input_shape), plan(len(input_shape)).canonical), ()

    def apply(params, x, mask, **kwargs):
        p = plan(x.ndim)
        return x[p.canonical], None if mask is None else mask[p.canonical[:-1]]

    def kernel(k):
        return index_kernel(k, plan(len(k.shape1)))

    boundary = layout.Boundary(axes, out_axes=lambda ndim: plan(ndim).out_axes)
    name = f"Index({idx!r})"
    return make_layer(
        init, apply, kernel, name, pairwise=not _indexes_batch(idx, axes), boundary=boundary
    )


def _indexes_batch(idx: Any, axes: layout.Axes) -> bool:
    """Whether ``idx`` may select examples, for some number of axes (then never tiled)."""
    for ndim in range(2, 33):
        try:
            full = expand_idx(idx, ndim)
            b, _ = layout.canonical_axes(axes, ndim)
        except ValueError:
            continue
        if full[b] != FULL:
            return True
    return False
