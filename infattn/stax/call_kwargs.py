"""Keyword arguments of a ``kernel_fn`` call, seen by the layers' kernel rules.

neural-tangents passes the extra keyword arguments of ``kernel_fn(x1, x2, get,
**kwargs)`` to every layer's kernel function (``Aggregate`` reads ``pattern``).
infattn's kernel rules take only a Kernel, so :func:`held` keeps the call's
arguments for the rules to read with :func:`get` while the call runs, and raises
afterwards for any argument that no layer read (a misspelt keyword is an error,
not ignored). A model called with such arguments is never tiled (they are per
batch).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator
from typing import Any


@dataclasses.dataclass
class _Call:
    kwargs: dict[str, Any]
    read: set[str] = dataclasses.field(default_factory=set)


_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("kernel_call", default=None)


@contextlib.contextmanager
def held(kwargs: dict[str, Any]) -> Iterator[None]:
    """Hold ``kwargs`` for the rules run inside the ``with`` block; raise for unread ones.

    Example:
        >>> with held({"pattern": (1, 2)}):
        ...     get("pattern")
        (1, 2)
        >>> with held({"patern": 1}):  # doctest: +ELLIPSIS
        ...     get("pattern")
        Traceback (most recent call last):
        ...
        TypeError: kernel_fn got an unexpected keyword argument 'patern' (no layer ...)
    """
    call = _Call(dict(kwargs))
    token = _CALL.set(call)
    try:
        yield
    finally:
        _CALL.reset(token)
    unread = sorted(set(call.kwargs) - call.read)
    if unread:
        raise TypeError(
            f"kernel_fn got an unexpected keyword argument {unread[0]!r} (no layer of the "
            "model takes it)"
        )


def get(name: str, default: Any = None) -> Any:
    """The ``kernel_fn`` call's keyword argument ``name`` (``default`` when not given)."""
    call = _CALL.get()
    if call is None:
        return default
    call.read.add(name)
    return call.kwargs.get(name, default)


def active() -> bool:
    """Whether the ``kernel_fn`` call running now has extra keyword arguments."""
    call = _CALL.get()
    return call is not None and bool(call.kwargs)
