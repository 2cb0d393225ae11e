"""Argument checks shared by the whole package, with one message style.

Every error starts with the argument's name, then says what was expected and
what was given: ``"x1: expected an array of shape (N, ..., C), got list"``.
Wrong Python types (a list where a batch of inputs belongs, an integer where a
PRNG key belongs) raise ``TypeError``; wrong values, complex or non-numeric
dtypes included, ``ValueError`` (complex numbers are refused, never truncated);
layouts the package does not implement ``NotImplementedError``. Statistics
functions (samples, fits) accept any array-like, lists included.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def check_std(value: Any, name: str, optional: bool = False) -> None:
    """A standard deviation: a finite, non-negative number (or ``None`` when optional).

    Example:
        >>> check_std(1.0, "W_std")
        >>> check_std(-1.0, "W_std")
        Traceback (most recent call last):
        ...
        ValueError: W_std: expected a finite non-negative number, got -1.0
    """
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
    """A layer width: a positive integer.

    Example:
        >>> check_width(0, "out_dim")
        Traceback (most recent call last):
        ...
        ValueError: out_dim: expected a positive integer, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")


def check_int(value: Any, name: str, minimum: int) -> int:
    """An integer ``>= minimum``: ``TypeError`` for other types, ``ValueError`` below it.

    Example:
        >>> check_int(3, "n_samples", 2)
        3
        >>> check_int(1.5, "seed", 0)
        Traceback (most recent call last):
        ...
        TypeError: seed: expected an integer >= 0, got 1.5
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive(value: Any, name: str) -> float:
    """A finite positive number (a target, a tolerance); returned as a float.

    Example:
        >>> check_positive(0.01, "target_rse")
        0.01
        >>> check_positive(0, "target_rse")
        Traceback (most recent call last):
        ...
        ValueError: target_rse: expected a finite positive number, got 0
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.floating | np.integer)
        or not 0 < value < math.inf
    ):
        raise ValueError(f"{name}: expected a finite positive number, got {value!r}")
    return float(value)


def check_choice(value: Any, choices: Sequence[str], name: str) -> str:
    """One of a fixed set of names; returns it. An enum member (neural-tangents'
    ``stax.Padding.SAME``) stands for its value.

    Example:
        >>> check_choice("SOFTMAX", ("SOFTMAX", "IDENTITY"), "attention_mechanism")
        'SOFTMAX'
        >>> from infattn.stax import AttentionMechanism
        >>> check_choice(AttentionMechanism.IDENTITY, ("SOFTMAX", "IDENTITY"), "mechanism")
        'IDENTITY'
    """
    if isinstance(value, enum.Enum):
        value = value.value
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_axes(layer: str, **axes: Any) -> None:
    """Axis arguments (``batch_axis``, ``channel_axis``, ...): integers, negative from the end.

    Example:
        >>> check_axes("Dense", batch_axis=0, channel_axis=3)
        >>> check_axes("Dense", batch_axis=0.5)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: batch_axis: Dense expects an integer axis, got 0.5
    """
    for name, value in axes.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"{name}: {layer} expects an integer axis, got {value!r}")


def as_array(x: Any, name: str, min_ndim: int = 0, what: str = "an array") -> Array:
    """``x`` as a real JAX array: non-arrays (``TypeError``) and complex arrays are refused.

    Integer and boolean arrays become floats. ``min_ndim``: the fewest axes
    accepted (a ``ValueError`` names ``what`` was expected otherwise).

    Example:
        >>> as_array(np.ones((2, 3)), "x1", 2).shape
        (2, 3)
        >>> as_array([[1.0]], "x1")
        Traceback (most recent call last):
        ...
        TypeError: x1: expected an array, got list
    """
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{name}: expected {what}, got {type(x).__name__}")
    check_real(x, name)
    if len(x.shape) < min_ndim:
        raise ValueError(f"{name}: expected {what}, got shape {tuple(x.shape)}")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def check_real(x: Any, name: str) -> None:
    """Refuse arrays that do not hold real numbers (complex, strings, objects).

    Example:
        >>> check_real(np.ones(2, np.complex64), "samples")
        Traceback (most recent call last):
        ...
        ValueError: samples: expected real numbers, got dtype complex64
    """
    real = (jnp.floating, jnp.integer, jnp.bool_)  # bfloat16 included, complex not
    if not any(jnp.issubdtype(x.dtype, kind) for kind in real):
        raise ValueError(f"{name}: expected real numbers, got dtype {x.dtype}")


def as_float64(x: Any, name: str) -> np.ndarray:
    """``x`` (any array-like) as a float64 NumPy array; complex values are refused.

    Example:
        >>> as_float64([1, 2], "y").dtype
        dtype('float64')
    """
    a = np.asarray(x)
    check_real(a, name)
    return a.astype(np.float64)


def check_finite(
    x: Any, name: str, mask_constant: float | None = None, *, padding: bool = True
) -> None:
    """Refuse NaN/inf entries that are not the mask constant.

    Runs on concrete values only: under ``jit`` (a traced ``x`` or ``mask_constant``)
    it is skipped.

    ``padding``: ``x`` is a batch of inputs, which may mark padding with
    ``mask_constant`` (the message says so).

    Example:
        >>> check_finite(np.array([1.0, np.nan]), "x1", mask_constant=np.nan)
        >>> check_finite(np.array([1.0, np.inf]), "x1")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: x1: 1 entries are NaN or infinite; finite values were expected ...
    """
    if isinstance(x, jax.core.Tracer) or isinstance(mask_constant, jax.core.Tracer):
        return
    if np.size(x) == 0:
        return
    xn = np.asarray(x)
    bad = ~np.isfinite(xn)
    if mask_constant is not None:
        mc = float(mask_constant)
        bad &= ~(np.isnan(xn) if np.isnan(mc) else xn == mc)
    if bad.any():
        hint = " (pass mask_constant=... if they mark padding)" if padding else ""
        raise ValueError(
            f"{name}: {int(bad.sum())} entries are NaN or infinite; finite values were "
            f"expected{hint}"
        )


def check_key(key: Any, name: str = "key") -> Array:
    """A JAX PRNG key (``jax.random.PRNGKey(0)`` or ``jax.random.key(0)``); returns it.

    Example:
        >>> check_key(jax.random.PRNGKey(0)).shape
        (2,)
        >>> check_key(0)
        Traceback (most recent call last):
        ...
        TypeError: key: expected a JAX PRNG key such as jax.random.PRNGKey(0), got int
    """
    expected = "a JAX PRNG key such as jax.random.PRNGKey(0)"
    if not hasattr(key, "dtype") or not hasattr(key, "shape"):
        raise TypeError(f"{name}: expected {expected}, got {type(key).__name__}")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"{name}: expected one key, got an array of keys of shape {key.shape}")
        return key
    if key.dtype != jnp.uint32 or tuple(key.shape) != (2,):
        raise TypeError(
            f"{name}: expected {expected}, got an array of dtype {key.dtype}, shape {key.shape}"
        )
    return key


def canonical_get(get: Any, fields: Sequence[str]) -> tuple[bool, tuple[str, ...]]:
    """``(single, names)`` for a ``get`` argument (a name or a tuple of distinct names).

    Names are lower-cased (as neural-tangents does) and checked against
    ``fields`` before any work is done.

    Example:
        >>> canonical_get("NNGP", ("nngp", "ntk"))
        (True, ('nngp',))
        >>> canonical_get(("nngp", "nngpp"), ("nngp", "ntk"))
        Traceback (most recent call last):
        ...
        ValueError: get: unknown kernel field 'nngpp'; expected one of 'nngp', 'ntk'
    """
    single = isinstance(get, str)
    names = (get,) if single else get
    if not isinstance(names, tuple | list) or not names:
        raise ValueError(f"get: expected a field name or a non-empty tuple of them, got {get!r}")
    names = tuple(n.lower() if isinstance(n, str) else n for n in names)
    for n in names:
        if n not in fields:
            raise ValueError(
                f"get: unknown kernel field {n!r}; expected one of {', '.join(map(repr, fields))}"
            )
    if len(set(names)) < len(names):
        raise ValueError(f"get: expected distinct field names, got {get!r}")
    return single, names
