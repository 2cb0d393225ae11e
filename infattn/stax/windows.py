"""Sliding windows over spatial axes: padding, output sizes, masks and window sums.

Convolutions and pooling layers slide a window of ``window[d]`` positions with stride
``strides[d]`` along each spatial axis ``d`` of a canonical ``(N, *spatial, C)``
array, after padding it:

* ``'VALID'``: no padding;
* ``'SAME'``: zeros, ``ceil(n / stride)`` outputs (XLA's split of the padding);
* ``'CIRCULAR'``: the ``'SAME'`` amounts, filled periodically (the image wraps around).

On a kernel ``(*B, s1, s1', s2, s2', ...)`` the same windows act on both axes of each
spatial pair: a shared-weight convolution averages along the diagonals
(:meth:`Windows.shared`, both positions shifted together), pooling sums every pair of
positions of the two windows (:meth:`Windows.pooled`).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from infattn.validation import check_choice

Array = jax.Array


class Padding(enum.Enum):
    """The paddings (module docstring); neural-tangents' ``stax.Padding``. Layers take a
    member or its value, in any case (``'same'``)."""

    VALID = "VALID"
    SAME = "SAME"
    CIRCULAR = "CIRCULAR"


PADDINGS = tuple(p.value for p in Padding)


def check_padding(padding: object) -> str:
    """``padding`` as one of :data:`PADDINGS`; a ``ValueError`` naming it otherwise.

    Example:
        >>> check_padding("same"), check_padding(Padding.CIRCULAR)
        ('SAME', 'CIRCULAR')
    """
    value = padding.value if isinstance(padding, Padding) else padding
    return check_choice(value.upper() if isinstance(value, str) else value, PADDINGS, "padding")


_BLOCK = 8
"""Entries per identity product in :func:`materialize`."""


def materialize(x: Array) -> Array:
    """``x`` unchanged, computed once: a fusion barrier for XLA's CPU compiler.

    XLA CPU fuses a cheap producer (a window sum: slices and adds) into each of its
    consumers, recomputing it once per consumer; a nonlinearity's closed form reads
    its input from four fusions or more. An exact identity product over blocks of
    eight entries (``x * 1 + 0 * ...``; 16 flops an entry) is never fused into a
    consumer, so the sum is computed and written once. Other backends, and arrays
    whose size is not a multiple of eight, pass through.

    Example:
        >>> materialize(jnp.arange(16.0)).tolist() == list(range(16))
        True
    """
    if jax.default_backend() != "cpu" or x.size % _BLOCK:
        return x
    flat = x.reshape(-1, _BLOCK)
    eye = jnp.eye(_BLOCK, dtype=x.dtype)
    return jnp.matmul(flat, eye, precision=lax.Precision.HIGHEST).reshape(x.shape)


def _sum_taps(x: Array, axis: int, size: int, stride: int, n_out: int) -> Array:
    """``out[i] = sum_{t < size} x[i * stride + t]`` along ``axis`` (``x`` already padded)."""
    total = 0.0
    for tap in range(size):
        index = [slice(None)] * x.ndim
        index[axis] = slice(tap, tap + (n_out - 1) * stride + 1, stride)
        total = total + x[tuple(index)]
    return total


@dataclasses.dataclass(frozen=True)
class Windows:
    """Windows of ``window`` positions moved by ``strides`` (spatial axes in canonical order).

    Example:
        >>> w = Windows((3,), (2,), "SAME")
        >>> w.pads((5,)), w.out_spatial((5,))
        ([(1, 1)], (3,))
        >>> w.sum(jnp.arange(5.0).reshape(1, 5, 1), batch_ndim=1).ravel().tolist()
        [1.0, 6.0, 7.0]
    """

    window: tuple[int, ...]
    strides: tuple[int, ...]
    padding: str

    def pads(self, spatial: Sequence[int]) -> list[tuple[int, int]]:
        """``(low, high)`` padding of each spatial axis."""
        kind = "VALID" if self.padding == "VALID" else "SAME"
        return [tuple(p) for p in lax.padtype_to_pads(spatial, self.window, self.strides, kind)]

    def out_spatial(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """The number of windows along each spatial axis."""
        return tuple(
            (n + lo + hi - f) // t + 1
            for n, (lo, hi), f, t in zip(
                spatial, self.pads(spatial), self.window, self.strides, strict=True
            )
        )

    def pad(self, x: Array, axes: Sequence[int]) -> Array:
        """``x`` padded along ``axes`` (one per spatial axis; zeros or periodically)."""
        spatial = [x.shape[a] for a in axes]
        width = [(0, 0)] * x.ndim
        for a, p in zip(axes, self.pads(spatial), strict=True):
            width[a] = p
        return jnp.pad(x, width, mode="wrap" if self.padding == "CIRCULAR" else "constant")

    def sum(self, x: Array, batch_ndim: int = 1) -> Array:
        """Window sums of an array ``(*B, *spatial, ...)`` whose spatial axes follow ``B``."""
        axes = list(range(batch_ndim, batch_ndim + len(self.window)))
        spatial = [x.shape[a] for a in axes]
        x = self.pad(x, axes)
        for a, f, t, n_out in zip(
            axes, self.window, self.strides, self.out_spatial(spatial), strict=True
        ):
            x = _sum_taps(x, a, f, t, n_out)
        return x

    def counts(self, spatial: Sequence[int]) -> list[Array]:
        """Per spatial axis, how many positions of each window lie inside the input."""
        return [
            Windows((f,), (t,), self.padding).sum(jnp.ones((1, n)), batch_ndim=1)[0]
            for n, f, t in zip(spatial, self.window, self.strides, strict=True)
        ]

    def mask(self, mask: Array) -> Array:
        """The output mask ``(N, *out_spatial)``: each window's centre position's mask."""
        spatial = mask.shape[1:]
        index = [slice(None)]
        for (lo, _), f, t, n_out in zip(
            self.pads(spatial), self.window, self.strides, self.out_spatial(spatial), strict=True
        ):
            start = (f - 1) // 2 - lo
            index.append(slice(start, start + (n_out - 1) * t + 1, t))
        return mask[tuple(index)]

    def _pairs(self, m: Array, batch_ndim: int, diagonal: bool = False) -> tuple[list[int], Array]:
        """The padded kernel and its axes, two per spatial axis (the same one if ``diagonal``)."""
        if diagonal:
            axes = [batch_ndim + d for d in range(len(self.window))]
            return [a for a in axes for _ in (0, 1)], self.pad(m, axes)
        axes = [batch_ndim + 2 * d + j for d in range(len(self.window)) for j in (0, 1)]
        doubled = Windows(
            tuple(f for f in self.window for _ in (0, 1)),
            tuple(t for t in self.strides for _ in (0, 1)),
            self.padding,
        )
        return axes, doubled.pad(m, axes)

    def shared(self, m: Array, batch_ndim: int, diagonal_spatial: bool = False) -> Array:
        """Kernel ``(*B, s1, s1', ...)`` of a shared-weight convolution: diagonal means.

        ``out[.., i, j, ..] = mean_t m[.., i * stride + t, j * stride + t, ..]`` per axis pair.
        ``diagonal_spatial``: ``m`` holds each position with itself, ``(*B, s1, s2, ...)``;
        the same means then need only those entries (``i = j``).

        Example:
            >>> w = Windows((2,), (1,), "VALID")
            >>> w.shared(jnp.diag(jnp.arange(3.0))[None], 1)[0].tolist()
            [[0.5, 0.0], [0.0, 1.5]]
            >>> w.shared(jnp.arange(3.0)[None], 1, diagonal_spatial=True)[0].tolist()
            [0.5, 1.5]
        """
        spatial = m.shape[batch_ndim:] if diagonal_spatial else m.shape[batch_ndim::2]
        axes, m = self._pairs(m, batch_ndim, diagonal_spatial)
        for d, (f, t, n_out) in enumerate(
            zip(self.window, self.strides, self.out_spatial(spatial), strict=True)
        ):
            a, b = axes[2 * d], axes[2 * d + 1]
            total = 0.0
            for tap in range(f):
                index = [slice(None)] * m.ndim
                index[a] = index[b] = slice(tap, tap + (n_out - 1) * t + 1, t)
                total = total + m[tuple(index)]
            m = total / f
        return materialize(m)

    def pooled(self, m: Array, batch_ndim: int) -> Array:
        """Kernel ``(*B, s1, s1', ...)`` of window sums: every position pair of two windows."""
        spatial = m.shape[batch_ndim::2]
        axes, m = self._pairs(m, batch_ndim)
        for d, (f, t, n_out) in enumerate(
            zip(self.window, self.strides, self.out_spatial(spatial), strict=True)
        ):
            for a in axes[2 * d : 2 * d + 2]:
                m = _sum_taps(m, a, f, t, n_out)
        return m


def check_window(
    shape: Sequence[int], strides: Sequence[int] | None, name: str
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Checked window ``shape`` (argument ``name``) and ``strides`` (default: ones).

    Example:
        >>> check_window((3, 2), None, "filter_shape")
        ((3, 2), (1, 1))
    """
    shape = tuple(shape)
    if not shape or any(not isinstance(f, int) or f < 1 for f in shape):
        raise ValueError(f"{name}: expected positive integers, got {shape!r}")
    strides = (1,) * len(shape) if strides is None else tuple(strides)
    if len(strides) != len(shape) or any(t < 1 for t in strides):
        raise ValueError(f"strides: expected {len(shape)} positive integers, got {strides!r}")
    return shape, strides
