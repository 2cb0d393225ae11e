"""Draws of network outputs as statistics see them: ``(n, d)`` float64, checked; shared helpers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

BLOCK = 1 << 21
"""Array entries per block in chunked computations."""


@dataclasses.dataclass(frozen=True, eq=False)
class Outcome:
    """A test's statistic and p-value: shape ``(d,)`` per coordinate, ``()`` if multivariate."""

    statistic: np.ndarray
    p_value: np.ndarray


def as_draws(
    samples: ArrayLike, name: str, minimum: int, purpose: str, *, allow_constant: bool = False
) -> np.ndarray:
    """Validate ``samples`` ``(n, *shape)`` and return float64 draws of shape ``(n, d)``.

    Example:
        >>> as_draws(np.ones((5, 2, 3)), "samples", 2, "a test", allow_constant=True).shape
        (5, 6)
    """
    a = np.asarray(samples)
    if a.ndim == 0:
        raise ValueError(f"{name}: expected an array of shape (n_draws, ...), got a scalar")
    if a.dtype.kind in "bcOSUMm":
        raise ValueError(f"{name}: expected real numbers, got dtype {a.dtype}")
    x = a.astype(np.float64).reshape(a.shape[0], -1)
    if x.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one coordinate, got shape {a.shape}")
    if x.shape[0] < minimum:
        raise ValueError(
            f"{name}: {purpose} needs at least {minimum} draws along axis 0, got {x.shape[0]}"
        )
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise ValueError(f"{name}: expected finite values, found {bad} NaN/inf entries")
    if not allow_constant:
        constant = np.flatnonzero(np.ptp(x, axis=0) == 0)
        if constant.size:
            raise ValueError(
                f"{name}: coordinates {constant[:5].tolist()} are constant across draws; "
                "Gaussianity statistics need positive variance"
            )
    return x


def matching_reference(samples_shape: tuple[int, ...], reference: ArrayLike) -> np.ndarray:
    """Validate ``reference`` ``(m, *shape)`` against the samples' trailing ``shape``.

    Example:
        >>> matching_reference((5, 2), np.arange(6.0).reshape(3, 2)).shape
        (3, 2)
    """
    r = np.asarray(reference)
    if r.shape[1:] != samples_shape[1:]:
        raise ValueError(
            f"reference: expected shape (m, {', '.join(map(str, samples_shape[1:]))}) matching "
            f"samples' trailing axes, got {r.shape}"
        )
    return as_draws(r, "reference", 2, "a two-sample test", allow_constant=True)


def thin(x: np.ndarray, size: int) -> np.ndarray:
    """Deterministic subsample: ``size`` evenly spaced draws of ``x`` ``(n, d)`` if n > size.

    Example:
        >>> thin(np.arange(10.0)[:, None], 3).ravel().tolist()
        [0.0, 4.0, 9.0]
    """
    if x.shape[0] <= size:
        return x
    return x[np.linspace(0, x.shape[0] - 1, size).round().astype(int)]


def bootstrap(
    x: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], n_boot: int, seed: int
) -> np.ndarray:
    """``statistic`` on ``n_boot`` resamples (with replacement) of the rows of ``x``.

    Example:
        >>> bootstrap(np.ones((4, 1)), lambda r: r.mean(0), 3, 0).shape
        (3, 1)
    """
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    return np.stack([statistic(x[rng.integers(0, n, n)]) for _ in range(n_boot)])


def exceedance_p(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """``(1 + #{null >= observed}) / (len(null) + 1)`` for each observed value.

    Example:
        >>> exceedance_p(np.array([2.0]), np.array([1.0, 3.0, 0.0])).tolist()
        [0.5]
    """
    count = len(null) - np.searchsorted(np.sort(null), observed, side="left")
    return (1.0 + count) / (len(null) + 1.0)


def coordinate_index(coordinate: int, d: int) -> int:
    """``coordinate`` of ``d`` as an index in ``[0, d)`` (negative counts from the end).

    Example:
        >>> coordinate_index(-1, 3)
        2
    """
    if not isinstance(coordinate, int | np.integer) or not -d <= coordinate < d:
        raise ValueError(f"coordinate: expected an integer in [0, {d}), got {coordinate!r}")
    return int(coordinate) % d
