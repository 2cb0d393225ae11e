"""Memory budgets: sizes such as ``512MiB``, a device's free memory, the largest tile that fits.

A tile is the kernel block of ``t`` examples against ``t`` examples. Its device
memory (arguments, outputs and XLA's temporaries, as reported by the compiled
computation) grows with the number of pairs, ``a + b t + c t^2`` with non-negative
coefficients, so three small measurements fix it and the budget's tile size follows; that size is
then measured itself (compilation is the measuring instrument, so every answer is
checked, and a superquadratic surprise only shrinks the tile).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import jax
import numpy as np

CPU_DEFAULT_BUDGET = 1 << 30
"""Default budget (bytes) where JAX reports no device memory (CPU): 1 GiB."""

GPU_FREE_FRACTION = 0.75
"""Fraction of a device's free memory taken as the default budget."""

PROBES = (1, 4, 16)
"""Tile sizes measured to fit a tile's memory as a polynomial in its size."""

MAX_SHRINK_STEPS = 3
"""Further measurements (compilations) allowed when the fitted size does not fit."""

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(text: str | int) -> int:
    """Bytes in a size such as ``"512MiB"``, ``"2GB"``, ``"1.5 GiB"`` or ``1000``.

    Units: B, kB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB (powers of 1024),
    case-insensitive.

    Example:
      >>> parse_size("512MiB"), parse_size("2 GB"), parse_size(64)
      (536870912, 2000000000, 64)
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
        if match is None or match.group(2).lower() not in _UNITS:
            raise ValueError(
                f"memory size {text!r}: expected a number with an optional unit "
                "(B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. '512MiB'"
            )
        value, unit = float(match.group(1)), match.group(2).lower()
    size = int(value * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"memory size {text!r}: expected a positive size")
    return size


def format_size(n: int) -> str:
    """A byte count in binary units, three significant digits.

    Example:
      >>> format_size(536870912), format_size(1536), format_size(12)
      ('512 MiB', '1.50 KiB', '12 B')
    """
    if n < 1024:
        return f"{n} B"
    exponent = min(int(math.log(n, 1024)), 4)
    value = n / 1024**exponent
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f} {('KiB', 'MiB', 'GiB', 'TiB')[exponent - 1]}"


def default_budget(devices: Sequence[jax.Device]) -> int:
    """Per-device budget: ``GPU_FREE_FRACTION`` of the smallest free memory JAX reports.

    Devices whose ``memory_stats()`` is missing (CPU) get ``CPU_DEFAULT_BUDGET``.

    Example:
      >>> default_budget(jax.devices("cpu")) == CPU_DEFAULT_BUDGET
      True
    """
    free = []
    for device in devices:
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        if stats and "bytes_limit" in stats:
            free.append(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    if not free:
        return CPU_DEFAULT_BUDGET
    return int(GPU_FREE_FRACTION * min(free))


def largest_fitting(measure: Callable[[int], int], budget: int, limit: int) -> int:
    """The largest tile size ``t <= limit`` whose measured memory ``measure(t)`` fits ``budget``.

    ``measure(t)``: bytes one tile of size ``t`` needs. Unless ``limit`` itself fits,
    fits ``a + b t + c t^2`` to measurements at ``t = 1, 4, 16``, solves it for the
    budget, then measures that size (shrinking it while it does not fit). Raises
    ``MemoryError`` naming the need when not even ``t = 1`` fits.

    Example:
      >>> largest_fitting(lambda t: 100 + 8 * t * t, budget=10_000, limit=1000)
      35
    """
    used = {limit: measure(limit)}
    if used[limit] <= budget:  # everything in one tile: the common small case, one measurement
        return limit
    used[1] = measure(1)
    if used[1] > budget:
        raise MemoryError(
            f"memory_budget {format_size(budget)} cannot hold one tile: a tile of 1 x 1 "
            f"examples needs {format_size(used[1])} ({used[1]} bytes); raise the budget"
        )
    probes = sorted({min(p, limit) for p in PROBES})
    used.update((t, used[t] if t in used else measure(t)) for t in probes)
    t = _solve({p: used[p] for p in probes}, budget, limit)
    for _ in range(MAX_SHRINK_STEPS):
        if t not in used:
            used[t] = measure(t)
        if used[t] <= budget:
            break
        t = max(1, int(t * math.sqrt(budget / used[t])))
    return max(s for s, m in used.items() if m <= budget)


def _solve(used: dict[int, int], budget: int, limit: int) -> int:
    """Largest ``t <= limit`` where the quadratic through the measurements ``used`` fits."""
    sizes = np.array(sorted(used), dtype=float)
    values = np.array([used[int(s)] for s in sizes], dtype=float)
    coefficients = np.polyfit(sizes, values, min(2, len(sizes) - 1))[::-1].tolist()
    a, b, c = (max(0.0, v) for v in [*coefficients, 0.0, 0.0][:3])
    room = max(0.0, budget - a)
    if room == 0 or (b == 0 and c == 0):
        return 1 if room == 0 else limit
    root = 2 * room / (b + math.sqrt(b * b + 4 * c * room))  # c t^2 + b t = room, stably
    return int(min(limit, max(1.0, root)))
