"""DotGeneral: ``jax.lax.dot_general`` with a constant operand (neural-tangents' ``DotGeneral``).

The layer computes ``dot_general(x, rhs)`` or ``dot_general(lhs, x)``: a fixed linear
map of the non-channel axes, the same for every channel. Channels stay independent,
so the output covariance is the input covariance mapped on both sides,
``nngp'[.., q, Q] = sum_{p, P} c[p, q] c[P, Q] nngp[.., p, P]`` where ``c`` is the
constant: axes of ``c`` contracted with input axes are summed over, axes paired
through the batch dimensions of ``dimension_numbers`` multiply entrywise, and the
constant's other axes become new spatial axes (outer products).

Every rule is one ``einsum`` written on the canonical layout: each input spatial
axis and each free axis of the constant gets a letter; the finite layer writes one
letter per axis, the kernel the letter for ``x1``'s side and its capital for
``x2``'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infattn.kernel import Kernel
from infattn.stax import layout
from infattn.stax.combinators import Identity
from infattn.stax.diagonal import NO, Diagonal
from infattn.stax.layer import make_layer, parts_of
from infattn.validation import check_axes

Array = jax.Array

LETTERS = "abdefghklmopqrstuvwxy"
"""Letters for spatial and constant axes (``n``, ``c``, ``i``, ``j`` are taken)."""


@dataclasses.dataclass(frozen=True)
class DotPlan:
    """The einsum subscripts of a ``DotGeneral`` on canonical ``(N, *spatial, C)`` arrays.

    ``spatial``: one letter per input spatial axis; ``other``: one letter per axis of
    the constant; ``out``: the output spatial axes' letters, in the output's order;
    ``out_axes``: the output's batch and channel axes in the user's layout.
    """

    spatial: str
    other: str
    out: str
    out_axes: layout.Axes

    def finite(self, batch: str = "n", channel: str = "c") -> str:
        """Subscripts of the finite map: ``x, constant -> y``."""
        lhs = batch + self.spatial + channel
        return f"{lhs},{self.other}->{batch}{self.out}{channel}"

    def kernel(self, batch: str) -> str:
        """Subscripts of the kernel map: ``constant, kernel, constant -> kernel``.

        A constant axis paired with the inputs' batch axis (``n``) takes the first
        example's letter on the left, the second's on the right (``batch``: ``ij`` or ``i``).
        """
        pairs = "".join(a + a.upper() for a in self.spatial)
        out = "".join(a + a.upper() for a in self.out)
        left = self.other.replace("n", batch[0])
        right = self.other.upper().replace("N", batch[-1])
        return f"{left},{batch}{pairs},{right}->{batch}{out}"

    @property
    def pairs_batch(self) -> bool:
        """Whether a constant axis is paired with the inputs' batch axis (one per example)."""
        return "n" in self.other


def _dims(values: Any, ndim: int, what: str) -> tuple[int, ...]:
    values = tuple(values)
    if any(isinstance(v, bool) or not isinstance(v, int) or not -ndim <= v < ndim for v in values):
        raise ValueError(
            f"dimension_numbers: the {what} dimensions must be axes of an array with {ndim} "
            f"axes, got {values}"
        )
    out = tuple(v % ndim for v in values)
    if len(set(out)) != len(out):
        raise ValueError(f"dimension_numbers: the {what} dimensions repeat an axis: {values}")
    return out


def dot_plan(
    dimension_numbers: Any, ndim: int, n_other: int, is_lhs: bool, axes: layout.Axes
) -> DotPlan:
    """The plan for inputs with ``ndim`` axes (batch and channel axes ``axes``).

    ``is_lhs``: the constant is the left operand. Example (``rhs`` of shape ``(2,)``
    contracted with the height of NHWC inputs: the output is NWC):

        >>> dot_plan((((1,), (0,)), ((), ())), 4, 1, False, (0, -1))
        DotPlan(spatial='ab', other='a', out='b', out_axes=(0, 2))
    """
    try:
        (lc, rc), (lb, rb) = dimension_numbers
    except (TypeError, ValueError):
        raise ValueError(
            "dimension_numbers: expected ((lhs_contracting, rhs_contracting), (lhs_batch, "
            f"rhs_batch)), got {dimension_numbers!r}"
        ) from None
    in_c, other_c = (rc, lc) if is_lhs else (lc, rc)
    in_b, other_b = (rb, lb) if is_lhs else (lb, rb)
    in_c, in_b = _dims(in_c, ndim, "input's contracting"), _dims(in_b, ndim, "input's batch")
    other_c = _dims(other_c, n_other, "constant's contracting")
    other_b = _dims(other_b, n_other, "constant's batch")
    if len(in_c) != len(other_c) or len(in_b) != len(other_b):
        raise ValueError(
            f"dimension_numbers: contracting and batch dimensions must pair up, got "
            f"{dimension_numbers!r}"
        )
    b, c = layout.canonical_axes(axes, ndim)
    checks = ((b, "batch_axis", in_c, "contract"), (c, "channel_axis", in_c + in_b, "use"))
    for axis, name, dims, verb in checks:
        if axis in dims:
            raise NotImplementedError(
                f"dimension_numbers: DotGeneral cannot {verb} the inputs' {name} ({axis}) "
                f"in dimension_numbers; got {dimension_numbers!r}"
            )
    return _letters(ndim, n_other, is_lhs, in_c + in_b, other_c + other_b, in_b, (b, c))


def _letters(ndim, n_other, is_lhs, in_paired, other_paired, in_b, axes) -> DotPlan:
    """Letters of the axes and the output order of ``lax.dot_general``."""
    b, c = axes
    spatial_axes = layout.to_canonical_order(ndim, b, c)[1:-1]
    letter = {("x", u): LETTERS[i] for i, u in enumerate(spatial_axes)}
    letter["x", b] = "n"  # the batch axis, when paired with a constant axis
    free_other = [k for k in range(n_other) if k not in other_paired]
    letter.update({("o", k): LETTERS[len(spatial_axes) + i] for i, k in enumerate(free_other)})
    for u, k in zip(in_paired, other_paired, strict=True):
        letter["o", k] = letter["x", u]
    free_in = [("x", u) for u in range(ndim) if u not in in_paired]
    free_o = [("o", k) for k in free_other]
    tags = [("x", u) for u in in_b] + (free_o + free_in if is_lhs else free_in + free_o)
    spatial = "".join(letter["x", u] for u in spatial_axes)
    other = "".join(letter["o", k] for k in range(n_other))
    out = "".join(letter[t] for t in tags if t not in (("x", b), ("x", c)))
    return DotPlan(spatial, other, out, (tags.index(("x", b)), tags.index(("x", c))))


def dot_kernel(k: Kernel, plan: DotPlan, other: np.ndarray, mask_fn: Any) -> Kernel:
    """``k`` mapped by the constant ``other`` (canonical layout; ``k`` without replicates)."""

    shape1 = out_shape(k.shape1, plan, other.shape)
    shape2 = out_shape(k.shape2, plan, other.shape)

    def cross(m: Array | None, batch: str) -> Array | None:
        if m is None:
            return None
        c = other.astype(m.dtype)
        return jnp.einsum(plan.kernel(batch), c, m, c)

    return k.replace(
        nngp=cross(k.nngp, "ij"),
        ntk=cross(k.ntk, "ij"),
        cov1=cross(k.cov1, "i"),
        cov2=cross(k.cov2, "i"),
        mask1=mask_fn(k.mask1),
        mask2=mask_fn(k.mask2),
        shape1=shape1,
        shape2=shape2,
    )


def out_shape(shape: Sequence[int], plan: DotPlan, other_shape: Sequence[int]) -> tuple[int, ...]:
    """The canonical output shape for a canonical input ``shape``; checks paired sizes."""
    size = dict(zip("n" + plan.spatial, shape[:-1], strict=True))
    for letter, n in zip(plan.other, other_shape, strict=True):
        if size.setdefault(letter, n) != n:
            raise ValueError(
                f"DotGeneral: the constant of shape {tuple(other_shape)} does not fit inputs of "
                f"shape {tuple(shape)} (canonical layout) along the paired dimensions"
                + (" (the batch axis: x1 and x2 need as many examples)" if letter == "n" else "")
            )
    return (shape[0], *(size[a] for a in plan.out), shape[-1])


def DotGeneral(
    *,
    lhs: Any = None,
    rhs: Any = None,
    dimension_numbers: Any = (((), ()), ((), ())),
    precision: Any = None,
    batch_axis: int = 0,
    channel_axis: int = -1,
):
    """A constant (not trained) ``lax.dot_general`` operand, neural-tangents' ``DotGeneral``.

    ``apply_fn`` computes ``jax.lax.dot_general(x, rhs, dimension_numbers, precision)``
    or ``jax.lax.dot_general(lhs, x, ...)`` (at most one of ``lhs``, ``rhs``; with
    neither the layer is the identity). Output axes follow ``dot_general``: batch
    dimensions, then the left operand's free axes, then the right's. The inputs'
    ``channel_axis`` may not be contracted or paired, nor the ``batch_axis`` contracted
    (see ``docs/neural-tangents.md``); pairing the ``batch_axis`` with a constant axis maps
    each example by its own slice of the constant (``x1`` and ``x2`` then need as many
    examples as that axis, and the model is never tiled).
    A position of the output is padding when every term of its sum is padding or has a
    zero constant; the kernel is not remasked. As in neural-tangents, a layer contracting
    input axes needs spatially full input kernels (:class:`Diagonal` ``input=NO``), so a
    network ending in ``ConvLocal`` before it does not return spatially diagonal kernels.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> diff = DotGeneral(rhs=np.array([1.0, -1.0]), dimension_numbers=(((1,), (0,)), ((), ())))
        >>> _, _, kernel_fn = stax.serial(stax.Dense(3), diff)  # (N, 2, C) -> (N, C)
        >>> kernel_fn(np.ones((2, 2, 4)), get="nngp").shape
        (2, 2)
    """
    if lhs is not None and rhs is not None:
        raise ValueError(
            "lhs, rhs: DotGeneral takes at most one constant (the inputs are the other "
            "operand); got both"
        )
    check_axes("DotGeneral", batch_axis=batch_axis, channel_axis=channel_axis)
    axes = (batch_axis, channel_axis)
    if lhs is None and rhs is None:  # the identity, with neural-tangents' requirement
        part = parts_of(Identity())
        return make_layer(
            part.init,
            part.apply,
            part.kernel,
            "DotGeneral",
            handles_replicates=True,
            positionwise=True,
            diagonal=Diagonal(),
        )
    is_lhs = rhs is None
    other = np.asarray(lhs if is_lhs else rhs)  # kept in its precision until used

    def plan(ndim: int) -> DotPlan:
        return dot_plan(dimension_numbers, ndim, other.ndim, is_lhs, axes)

    def mask_fn(mask: Array | None) -> Array | None:
        if mask is None:
            return None
        dtype = jnp.result_type(float)  # counts of unmasked terms, in the default float
        valid = (~mask)[..., None].astype(dtype)
        hits = jnp.einsum(plan(valid.ndim).finite(), valid, jnp.asarray(other != 0, dtype))
        return hits[..., 0] <= 0

    def init(rng, input_shape):
        return out_shape(input_shape, plan(len(input_shape)), other.shape), ()

    def apply(params, x, mask, **kwargs):
        p = plan(x.ndim)
        out_shape(x.shape, p, other.shape)
        y = jnp.einsum(p.finite(), x, other.astype(x.dtype), precision=precision)
        return y, mask_fn(mask)

    def kernel(k):
        return dot_kernel(k, plan(len(k.shape1)), other, mask_fn)

    boundary = layout.Boundary(axes, out_axes=lambda ndim: plan(ndim).out_axes)
    diagonal = _diagonal(dimension_numbers, is_lhs)
    pairwise = not _pairs_batch(dimension_numbers, is_lhs, batch_axis)
    return make_layer(
        init, apply, kernel, "DotGeneral", pairwise, boundary=boundary, diagonal=diagonal
    )


def _pairs_batch(dimension_numbers: Any, is_lhs: bool, batch_axis: int) -> bool:
    """Whether the inputs' batch axis is paired with a constant axis (examples then differ)."""
    try:
        paired = tuple(dimension_numbers[1][1 if is_lhs else 0])
    except (TypeError, IndexError):
        return False  # malformed: dot_plan raises when the layer is used
    # without the rank, a negative axis may be the batch axis: untiled is always right
    return bool(paired) and (batch_axis in paired or batch_axis < 0 or min(paired) < 0)


def _diagonal(dimension_numbers: Any, is_lhs: bool) -> Diagonal:
    """neural-tangents' requirement: spatially full inputs when the inputs' axes are contracted.

    (Contracting the batch axis raises in :func:`dot_plan`; pairing axes keeps diagonals.)

    Example:
        >>> contract, pair = (((1,), (0,)), ((), ())), (((), ()), ((1,), (0,)))
        >>> _diagonal(contract, False).input, _diagonal(pair, False)
        (0, Diagonal(input=2, output=0))
    """
    try:
        contracting = dimension_numbers[0][1 if is_lhs else 0]
    except (TypeError, IndexError):
        contracting = ()  # malformed: dot_plan raises when the layer is used
    return Diagonal(input=NO) if len(tuple(contracting)) else Diagonal()
