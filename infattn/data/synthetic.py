"""Synthetic sequence tasks: variable lengths with padding, and a 1-D family for plots.

:func:`trend_sequences` is a two-class task on variable-length sequences: in each
sequence the tokens drift along a fixed direction ``u``, towards ``+u`` ("rising")
or ``-u`` ("falling"), under Gaussian noise. Reversing a sequence swaps its class,
so the *set* of tokens carries no information: a model that ignores positions
(attention without positional embeddings, then pooling) is at chance, one with
positional embeddings is not. Shorter sequences are padded at the end with
``mask_constant`` in every channel.

:func:`phase_sequences` maps a scalar ``s`` to a short sequence of points on a
circle, a one-dimensional family of inputs on which a GP posterior with error
bands can be drawn against ``s``.
"""

from __future__ import annotations

import numpy as np

from infattn.data.dataset import Dataset


def trend_sequences(
    n_train: int = 200,
    n_test: int = 200,
    min_length: int = 4,
    max_length: int = 12,
    channels: int = 4,
    noise: float = 1.0,
    seed: int = 0,
    mask_constant: float = 0.0,
) -> Dataset:
    """Rising/falling sequences of random lengths in ``[min_length, max_length]``.

    Token ``a`` of a sequence of length ``n``: ``s (2a / (n - 1) - 1) u + noise z``
    with ``s = +1`` (rising, class 1) or ``-1`` (falling, class 0), ``u`` a fixed
    random unit vector, ``z ~ N(0, I)``. ``x``: ``(N, max_length, channels)``.

    Example:
      >>> d = trend_sequences(n_train=4, n_test=2, min_length=2, max_length=5)
      >>> d.x_train.shape, d.mask_constant, d.classes
      ((4, 5, 4), 0.0, ('falling', 'rising'))
    """
    if not 2 <= min_length <= max_length:
        raise ValueError(f"lengths: expected 2 <= min_length <= max_length, got "
                         f"{min_length}, {max_length}")  # fmt: skip
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(channels)
    u /= np.linalg.norm(u)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 2, n)
        lengths = rng.integers(min_length, max_length + 1, n)
        x = np.full((n, max_length, channels), mask_constant, dtype=np.float64)
        for i, (label, length) in enumerate(zip(labels, lengths, strict=True)):
            ramp = (2 * label - 1) * np.linspace(-1.0, 1.0, length)
            x[i, :length] = ramp[:, None] * u + noise * rng.standard_normal((length, channels))
        return x, labels

    return Dataset.from_labels(
        "synthetic-trend",
        (draw(n_train), draw(n_test)),
        ("falling", "rising"),
        mask_constant=mask_constant,
        description=f"rising vs falling drift, lengths {min_length}..{max_length}, padded",
    )


def phase_sequences(s: np.ndarray, length: int = 6) -> np.ndarray:
    """``(N,)`` scalars -> ``(N, length, 2)``: points ``(cos, sin)(s + pi a / length)``.

    Example:
      >>> phase_sequences(np.array([0.0]), length=2).round(3).tolist()
      [[[1.0, 0.0], [0.0, 1.0]]]
    """
    s = np.asarray(s, dtype=np.float64)
    angle = s[:, None] + np.pi * np.arange(length) / length
    return np.stack([np.cos(angle), np.sin(angle)], axis=-1)
