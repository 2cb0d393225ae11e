"""Transposed convolution (neural-tangents' ``ConvTranspose``) and its kernel rule.

A transposed convolution with strides ``s`` spreads its input: ``s - 1`` zeros go
between neighbouring positions, the result is padded as ``jax.lax.conv_transpose``
pads it, and a stride-1 ``'VALID'`` convolution runs over it (the filter is not
flipped). Along each spatial axis, with ``lo, hi`` those pads:

* ``'VALID'``: ``lo = f - 1``, output ``n s + max(f - s, 0)`` positions;
* ``'SAME'``: ``n s`` positions;
* ``'CIRCULAR'``: the ``'VALID'`` output folded periodically onto ``n s`` positions
  (each position receives the entries at multiples of ``n s`` from it, the fold
  centred as neural-tangents centres it).

The kernel: the input covariance spread the same way along both axes of each spatial
pair, then averaged along the filter's diagonals as for :func:`~infattn.stax.Conv`
(``1 / |F|`` per tap, whatever the stride), folded on both axes for ``'CIRCULAR'``.
An output position is padding when any padded input position reaches it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from infattn.stax import taps, windows
from infattn.stax.linear import check_channels, conv_setup, init_filter

Array = jax.Array


def transpose_pads(f: int, s: int, padding: str) -> tuple[int, int]:
    """``(lo, hi)`` padding of the spread input (``jax.lax.conv_transpose``'s).

    Example:
        >>> transpose_pads(3, 2, "SAME"), transpose_pads(3, 2, "VALID")
        ((2, 1), (2, 2))
    """
    if padding == "SAME":
        total = f + s - 2
        lo = f - 1 if s > f - 1 else math.ceil(total / 2)
        return lo, total - lo
    return f - 1, f + s - 2 + max(f - s, 0) - (f - 1)


def fold_matrix(length: int, size: int) -> np.ndarray:
    """``(size, length)`` 0/1 matrix folding ``length`` positions periodically onto ``size``.

    Output ``j`` sums inputs ``j + lo + k * size`` for ``|k| <= ceil(length / size) // 2``,
    ``lo = (length - size) // 2`` (neural-tangents' centring).

    Example:
        >>> fold_matrix(5, 3).astype(int).tolist()
        [[0, 1, 0, 0, 1], [0, 0, 1, 0, 0], [1, 0, 0, 1, 0]]
    """
    lo, reach = (length - size) // 2, math.ceil(length / size) // 2
    shift = np.arange(length)[None, :] - np.arange(size)[:, None] - lo
    return ((shift % size == 0) & (np.abs(shift) <= reach * size)).astype(float)


@dataclasses.dataclass(frozen=True)
class Transposed:
    """Transposed windows: ``window``, ``strides`` per spatial axis (canonical order).

    Example:
        >>> t = Transposed((3,), (2,), "CIRCULAR")
        >>> t.out_spatial((4,)), t.spread(jnp.ones((1, 2)), (1,)).ravel().tolist()
        ((8,), [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    """

    window: tuple[int, ...]
    strides: tuple[int, ...]
    padding: str

    def pads(self, kind: str) -> list[tuple[int, int]]:
        """Per axis, the ``(lo, hi)`` pads of ``kind`` (``'VALID'`` or ``'SAME'``)."""
        return [transpose_pads(f, s, kind) for f, s in zip(self.window, self.strides, strict=True)]

    @property
    def conv_padding(self) -> str:
        """The padding the transposed convolution itself uses (CIRCULAR folds VALID)."""
        return "VALID" if self.padding == "CIRCULAR" else self.padding

    def out_spatial(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """The output's spatial sizes."""
        return tuple(
            n * s + (max(f - s, 0) if self.padding == "VALID" else 0)
            for n, f, s in zip(spatial, self.window, self.strides, strict=True)
        )

    def spread(self, x: Array, axes: Sequence[int], kind: str | None = None) -> Array:
        """``x`` with ``s - 1`` zeros between positions and padded, along ``axes``."""
        config = [(0, 0, 0)] * x.ndim
        for a, s, (lo, hi) in zip(
            axes, self.strides, self.pads(kind or self.conv_padding), strict=True
        ):
            config[a] = (lo, hi, s - 1)
        return lax.pad(x, jnp.zeros((), x.dtype), config)

    def fold(self, x: Array, axes: Sequence[int], spatial: Sequence[int]) -> Array:
        """For ``'CIRCULAR'``: fold each of ``axes`` onto the output size (``spatial``:
        the input's sizes along them); otherwise ``x``."""
        if self.padding != "CIRCULAR":
            return x
        for a, size in zip(axes, self.out_spatial(spatial), strict=True):
            mat = jnp.asarray(fold_matrix(x.shape[a], size), x.dtype)
            x = jnp.moveaxis(
                jnp.tensordot(x, mat, axes=([a], [1]), precision=lax.Precision.HIGHEST), -1, a
            )
        return x

    def mask(self, mask: Array) -> Array:
        """The output mask: positions some padded input position reaches."""
        axes = range(1, mask.ndim)
        kind = "SAME" if self.padding == "CIRCULAR" else self.padding
        spread = self.spread(mask.astype(jnp.float32), axes, kind)
        ones = windows.Windows(self.window, (1,) * len(self.window), "VALID")
        return ones.sum(spread, batch_ndim=1) > 0

    def shared(self, m: Array, batch_ndim: int) -> Array:
        """Kernel ``(*B, s1, s1', ...)``: spread both axes of each pair, diagonal means, fold."""
        n_sp = len(self.window)
        spatial = m.shape[batch_ndim::2]
        doubled = Transposed(
            tuple(f for f in self.window for _ in (0, 1)),
            tuple(s for s in self.strides for _ in (0, 1)),
            self.padding,
        )
        axes = range(batch_ndim, batch_ndim + 2 * n_sp)
        m = doubled.spread(m, axes)
        m = windows.Windows(self.window, (1,) * n_sp, "VALID").shared(m, batch_ndim)
        return doubled.fold(m, axes, tuple(n for n in spatial for _ in (0, 1)))


def ConvTranspose(
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    W_std: float = 1.0,
    b_std: float | None = None,
    dimension_numbers: tuple[str, str, str] | None = None,
    parameterization: str = "ntk",
    s: tuple[int, int] = (1, 1),
):
    """Transposed convolution (``jax.lax.conv_transpose``, filter not flipped).

    Arguments as :func:`~infattn.stax.Conv` (``padding``: ``'VALID'``, ``'SAME'`` or
    ``'CIRCULAR'``; ``filter_shape`` and ``strides`` in the filter spec's order). The
    weights ``W_std / sqrt(C_in |F|)`` scale as a convolution's, so with strides an
    output position, reached by about ``|F| / prod(strides)`` taps, has a smaller
    variance (neural-tangents' convention). Input ``(N, *spatial, C)`` -> output
    ``(N, *spatial * strides (+ overhang for 'VALID'), out_chan)``.

    Example:
        >>> import jax.numpy as jnp
        >>> _, _, kernel_fn = ConvTranspose(4, (3,), strides=(2,), padding="SAME")
        >>> k = kernel_fn(jnp.ones((1, 3, 2)), get="nngp")
        >>> k.shape, [round(float(k[0, 0, i, i]), 3) for i in range(3)]
        ((1, 1, 6, 6), [0.333, 0.333, 0.667])
    """
    c = conv_setup(
        "ConvTranspose", out_chan, filter_shape, strides, padding, W_std, b_std,
        dimension_numbers, parameterization, s,
    )  # fmt: skip
    n_sp = c.n_spatial
    tr = Transposed(c.filter_in, c.strides_in, c.padding)

    def init(rng, input_shape):
        sizes = dict(zip(c.spec.filter_spatial, c.filter_shape, strict=True))
        params = init_filter(c, rng, input_shape[-1], sizes, (1,) * (n_sp + 1) + (c.width,))
        out_shape = (input_shape[0], *tr.out_spatial(input_shape[1:-1]), c.width)
        return c.output_shape(out_shape), params

    def apply(params, x, mask, **kwargs):
        W, b = params
        n_in, spatial = x.shape[-1], x.shape[1:-1]
        check_channels(x, W.shape[c.spec.rhs.index("I")], "ConvTranspose")
        pads = c.spec.to_filter_order(tr.pads(tr.conv_padding))
        y = taps.conv(x, W, (1,) * n_sp, pads, c.spec.canonical, lhs_dilation=c.strides)
        y = tr.fold(y, range(1, n_sp + 1), spatial)
        y = c.scale(y, taps.per_example(b, x.shape[0]), n_in)
        return c.to_output(y, None if mask is None else tr.mask(mask))

    def kernel(k):
        return c.kernel(k, tr.shared, tr.out_spatial(k.spatial_shape), tr.mask)

    return c.make(init, apply, kernel)
