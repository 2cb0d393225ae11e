"""Keyword arguments of a ``kernel_fn`` call, seen by the layers' kernel rules.

neural-tangents passes the extra keyword arguments of ``kernel_fn(x1, x2, get,
**kwargs)`` to every layer's kernel function (``Aggregate`` reads ``pattern``).
infattn's kernel rules take only a Kernel, so :func:`held` keeps the call's
arguments for the rules to read with :func:`current` while the call runs. A
model called with such arguments is never tiled (the arguments are per batch).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

_KWARGS: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("kernel_kwargs")


@contextlib.contextmanager
def held(kwargs: dict[str, Any]) -> Iterator[None]:
    """Hold ``kwargs`` for the rules run inside the ``with`` block.

    Example:
        >>> with held({"pattern": (1, 2)}):
        ...     current()["pattern"]
        (1, 2)
        >>> current()
        {}
    """
    token = _KWARGS.set(dict(kwargs))
    try:
        yield
    finally:
        _KWARGS.reset(token)


def current() -> dict[str, Any]:
    """The keyword arguments of the ``kernel_fn`` call running now (``{}`` outside one)."""
    return _KWARGS.get({})
