"""Fan-in layers beyond the sum: concatenation and elementwise product of branches.

Branches are independent given the inputs (each has its own weights), so

* ``FanInConcat`` along channels averages the branch kernels weighted by their
  widths (a channel of the output is a channel of one branch); along a spatial axis
  the kernel is block diagonal (positions of different branches are independent,
  mean-zero Gaussian);
* ``FanInProd`` multiplies the kernels, ``E[f1 g1 f2 g2] = E[f1 f2] E[g1 g2]``, and
  the NTK follows the product rule.

Masks are per position: a position of a channel concatenation or a product is
padding when it is padding in every branch; a spatial concatenation concatenates
the masks.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from infattn.kernel import Kernel
from infattn.stax.combinators import and_masks
from infattn.stax.layer import make_layer

Array = jax.Array


def _check_shapes(ks: Sequence[Kernel], name: str, skip: int | None = None) -> None:
    """Raise unless the branches' shapes agree (except on canonical axis ``skip``)."""

    def cut(shape):
        return tuple(s for i, s in enumerate(shape) if i != skip)

    for attr in ("shape1", "shape2"):
        shapes = [cut(getattr(k, attr)) for k in ks]
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"{name}: branch shapes must agree; got {attr} {shapes}")


def FanInProd():
    """Multiply the branches entrywise; their kernels multiply (product rule for the NTK).

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> branches = stax.parallel(stax.Dense(3, W_std=2.0), stax.Dense(3, W_std=3.0))
        >>> _, _, kernel_fn = stax.serial(stax.FanOut(2), branches, FanInProd())
        >>> float(kernel_fn(np.ones((1, 3)), get="nngp")[0, 0])  # 4 * 9
        36.0
    """

    def init(rng, input_shapes):
        if len({tuple(s) for s in input_shapes}) != 1:
            raise ValueError(
                f"input_shape: FanInProd needs equal branch shapes, got {input_shapes}"
            )
        return tuple(input_shapes[0]), ()

    def apply(params, xs, masks, **kwargs):
        return functools.reduce(jnp.multiply, xs), and_masks(masks or [])

    def kernel(ks):
        _check_shapes(ks, "FanInProd")
        nngp, ntk = ks[0].nngp, ks[0].ntk
        for k in ks[1:]:
            ntk = None if ntk is None or k.ntk is None else ntk * k.nngp + nngp * k.ntk
            nngp = nngp * k.nngp
        cov2s = [k.cov2 for k in ks]
        return ks[0].replace(
            nngp=nngp,
            ntk=ntk,
            cov1=functools.reduce(jnp.multiply, [k.cov1 for k in ks]),
            cov2=None if any(c is None for c in cov2s) else functools.reduce(jnp.multiply, cov2s),
            mask1=and_masks([k.mask1 for k in ks]),
            mask2=and_masks([k.mask2 for k in ks]),
            is_gaussian=len(ks) == 1 and ks[0].is_gaussian,
        )

    return make_layer(init, apply, kernel, "FanInProd", positionwise=True)


def FanInConcat(axis: int = -1):
    """Concatenate the branches along ``axis`` of the arrays (channels by default).

    Along channels the kernel is the width-weighted average of the branch kernels
    (not Gaussian: the channels of different branches have different laws); along
    a spatial axis it is block diagonal, which needs Gaussian branches.
    Concatenating examples (the batch axis) is refused.

    Example:
        >>> import numpy as np
        >>> from infattn import stax
        >>> branches = stax.parallel(stax.Dense(1, W_std=1.0), stax.Dense(3, W_std=3.0))
        >>> _, _, kernel_fn = stax.serial(stax.FanOut(2), branches, FanInConcat())
        >>> float(kernel_fn(np.ones((1, 3)), get="nngp")[0, 0])  # (1 * 1 + 3 * 9) / 4
        7.0
    """
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise ValueError(f"axis: expected an integer axis, got {axis!r}")

    def init(rng, input_shapes):
        ndim = len(input_shapes[0])
        a = _normalize(axis, ndim)
        rest = {tuple(s[:a]) + tuple(s[a + 1 :]) for s in input_shapes}
        if len(rest) != 1 or any(len(s) != ndim for s in input_shapes):
            raise ValueError(
                f"input_shape: FanInConcat needs branch shapes that agree off axis {axis}, "
                f"got {input_shapes}"
            )
        size = sum(s[a] for s in input_shapes)
        return (*input_shapes[0][:a], size, *input_shapes[0][a + 1 :]), ()

    def apply(params, xs, masks, **kwargs):
        ndim = xs[0].ndim
        a = _normalize(axis, ndim)
        return jnp.concatenate(xs, a), _concat_masks(xs, masks, a)

    def kernel(ks):
        role = _role(ks[0], axis)
        if role == 0:
            raise NotImplementedError(
                f"axis: FanInConcat along the batch axis ({axis}) has no per-pair kernel; "
                "concatenate the inputs instead"
            )
        ndim = len(ks[0].shape1)
        _check_shapes(ks, "FanInConcat", skip=role)
        if role == ndim - 1:
            return _concat_channels(ks)
        return _concat_spatial(ks, role - 1)

    # channels (axis -1 in the default layout) are concatenated at each position
    return make_layer(init, apply, kernel, f"FanInConcat({axis})", positionwise=axis == -1)


def _normalize(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis: expected an axis of arrays with {ndim} axes, got {axis}")
    return axis % ndim


def _role(k: Kernel, axis: int) -> int:
    """The canonical axis (``0`` batch, ``1..`` spatial, last channels) of array ``axis``."""
    ndim = len(k.shape1)
    a = _normalize(axis, ndim)
    b, c = k.batch_axis % ndim, k.channel_axis % ndim
    if a == b:
        return 0
    if a == c:
        return ndim - 1
    return 1 + [i for i in range(ndim) if i not in (b, c)].index(a)


def _concat_masks(xs: Sequence[Array], masks: Sequence[Array | None] | None, a: int):
    """Masks of the concatenation along array axis ``a`` (arrays batch first, channels last)."""
    masks = list(masks or [None] * len(xs))
    if all(m is None for m in masks):
        return None
    if any(m is not None and m.shape != x.shape[:-1] for m, x in zip(masks, xs, strict=True)):
        raise NotImplementedError(
            "inputs: FanInConcat of masked arrays needs batch-first, channels-last arrays"
        )
    if a == xs[0].ndim - 1:
        return None if any(m is None for m in masks) else and_masks(masks)
    full = [
        jnp.zeros(x.shape[:-1], bool) if m is None else m for m, x in zip(masks, xs, strict=True)
    ]
    return jnp.concatenate(full, a)


def _concat_channels(ks: Sequence[Kernel]) -> Kernel:
    widths = [k.shape1[-1] for k in ks]
    total = sum(widths)

    def average(name):
        mats = [getattr(k, name) for k in ks]
        if any(m is None for m in mats):
            return None
        return sum(w * m for w, m in zip(widths, mats, strict=True)) / total

    def masks(name):
        ms = [getattr(k, name) for k in ks]
        return None if any(m is None for m in ms) else and_masks(ms)

    return ks[0].replace(
        nngp=average("nngp"),
        ntk=average("ntk"),
        cov1=average("cov1"),
        cov2=average("cov2"),
        mask1=masks("mask1"),
        mask2=masks("mask2"),
        shape1=(*ks[0].shape1[:-1], total),
        shape2=(*ks[0].shape2[:-1], sum(k.shape2[-1] for k in ks)),
        is_gaussian=False,
    )


def _block_diagonal(mats: Sequence[Array | None], p: int) -> Array | None:
    """Branch blocks on the diagonal of axes ``(p, p + 1)``, zero elsewhere."""
    if any(m is None for m in mats):
        return None
    sizes = [m.shape[p] for m in mats]
    rows = []
    for i, m in enumerate(mats):
        pads = [(0, 0)] * m.ndim
        pads[p] = (sum(sizes[:i]), sum(sizes[i + 1 :]))
        rows.append(jnp.pad(m, pads))
    return jnp.concatenate(rows, p + 1)


def _concat_spatial(ks: Sequence[Kernel], d: int) -> Kernel:
    """Concatenation along canonical spatial axis ``d`` (independent Gaussian branches)."""
    if not all(k.is_gaussian for k in ks):
        raise ValueError(
            "FanInConcat: along a spatial axis every branch must be Gaussian (end in Dense, "
            f"Conv, attention or LayerNorm after them); got {[k.is_gaussian for k in ks]}"
        )

    def masks(name, shape):
        ms = [getattr(k, name) for k in ks]
        if all(m is None for m in ms):
            return None
        shapes = [getattr(k, shape)[:-1] for k in ks]
        full = [jnp.zeros(s, bool) if m is None else m for m, s in zip(ms, shapes, strict=True)]
        return jnp.concatenate(full, 1 + d)

    def grown(attr):
        shape = getattr(ks[0], attr)
        size = sum(getattr(k, attr)[1 + d] for k in ks)
        return (*shape[: 1 + d], size, *shape[2 + d :])

    x2_given = ks[0].cov2 is not None
    return ks[0].replace(
        nngp=_block_diagonal([k.nngp for k in ks], 2 + 2 * d),
        ntk=_block_diagonal([k.ntk for k in ks], 2 + 2 * d),
        cov1=_block_diagonal([k.cov1 for k in ks], 1 + 2 * d),
        cov2=_block_diagonal([k.cov2 for k in ks], 1 + 2 * d) if x2_given else None,
        mask1=masks("mask1", "shape1"),
        mask2=masks("mask2", "shape2") if x2_given else None,
        shape1=grown("shape1"),
        shape2=grown("shape2"),
    )
