"""Argument checks shared by the layer constructors: clear errors that name the argument."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def check_std(value: Any, name: str, optional: bool = False) -> None:
    """A standard deviation: a finite, non-negative number (or ``None`` when optional)."""
    if value is None and optional:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        allowed = "a finite non-negative number" + (" or None" if optional else "")
        raise ValueError(f"{name}: expected {allowed}, got {value!r}")


def check_width(value: Any, name: str) -> None:
    """A layer width: a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")


def check_choice(value: Any, choices: Sequence[str], name: str) -> str:
    """One of a fixed set of (upper- or lower-case) names; returns it."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
