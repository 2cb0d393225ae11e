"""The attention mechanisms ``zeta``: one definition for layers, estimators and limits.

``zeta`` acts on the key axis of a ``(..., P_query, P_key)`` array of logits:
SOFTMAX normalises each row over the keys, ABS, RELU and IDENTITY act entry by
entry. Masked keys (``key_mask`` ``True``) get weight 0: softmax excludes them (a
row whose keys are all masked is all zeros, never NaN) and the elementwise
mechanisms give their logit the value 0, so ``zeta(0) = 0``.
"""

from __future__ import annotations

import enum

import jax
import jax.numpy as jnp

from infattn.validation import check_choice

Array = jax.Array


class AttentionMechanism(enum.Enum):
    """The attention mechanisms (module docstring); neural-tangents'
    ``stax.AttentionMechanism``. Layers take a member or its value."""

    SOFTMAX = "SOFTMAX"
    IDENTITY = "IDENTITY"
    ABS = "ABS"
    RELU = "RELU"


MECHANISMS = tuple(m.value for m in AttentionMechanism)
"""The attention mechanisms' values (upper case, as neural-tangents spells them)."""


def check_mechanism(value: object, name: str = "mechanism") -> str:
    """``value`` if it is one of :data:`MECHANISMS` (upper case); a ``ValueError`` otherwise.

    Example:
        >>> check_mechanism("RELU")
        'RELU'
        >>> check_mechanism("relu")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: mechanism: expected one of 'SOFTMAX', 'IDENTITY', 'ABS', 'RELU', got 'relu'
    """
    return check_choice(value, MECHANISMS, name)


def attention_weights(logits: Array, key_mask: Array | None, mechanism: str) -> Array:
    """``zeta(logits)`` over the last (key) axis; masked keys get zero weight.

    ``logits``: ``(..., P_query, P_key)``; ``key_mask``: booleans broadcastable to
    ``logits`` (``(..., 1, P_key)``), ``True`` at padding keys, or ``None``.
    ``mechanism``: one of :data:`MECHANISMS`.

    Example:
        >>> g = jnp.array([[0.0, 0.0, 5.0]])
        >>> attention_weights(g, jnp.array([[False, False, True]]), "SOFTMAX").tolist()
        [[0.5, 0.5, 0.0]]
        >>> attention_weights(-g, None, "RELU").tolist()
        [[0.0, 0.0, 0.0]]
    """
    if mechanism == "SOFTMAX":
        if key_mask is None:
            return jax.nn.softmax(logits, axis=-1)
        top = jnp.max(jnp.where(key_mask, -jnp.inf, logits), axis=-1, keepdims=True)
        top = jnp.where(jnp.isfinite(top), top, 0.0)
        e = jnp.where(key_mask, 0.0, jnp.exp(logits - top))
        return e / jnp.maximum(jnp.sum(e, axis=-1, keepdims=True), jnp.finfo(e.dtype).tiny)
    if key_mask is not None:
        logits = jnp.where(key_mask, 0.0, logits)
    if mechanism == "IDENTITY":
        return logits
    if mechanism == "ABS":
        return jnp.abs(logits)
    return jax.nn.relu(logits)


def elementwise_derivative(logits: Array, mechanism: str) -> Array:
    """``zeta'(logits)`` entry by entry for ABS, RELU and IDENTITY (``zeta'(0) := 0``
    for ABS and RELU).

    Example:
        >>> elementwise_derivative(jnp.array([-1.0, 0.0, 2.0]), "ABS").tolist()
        [-1.0, 0.0, 1.0]
    """
    if mechanism == "ABS":
        return jnp.sign(logits)
    if mechanism == "RELU":
        return (logits > 0).astype(logits.dtype)
    return jnp.ones_like(logits)


def masked_softmax(logits: Array, key_valid: Array | bool) -> Array:
    """Softmax over the last axis restricted to valid keys (``key_valid`` ``True``).

    The SOFTMAX case of :func:`attention_weights` with the mask given as its
    complement; a row with no valid key is all zeros.

    Example:
        >>> masked_softmax(jnp.array([1.0, 5.0]), jnp.array([True, False])).tolist()
        [1.0, 0.0]
    """
    return attention_weights(logits, jnp.logical_not(key_valid), "SOFTMAX")
