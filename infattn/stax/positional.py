"""Positional embeddings of attention layers: their covariance ``R`` and finite draws.

A positional embedding is a random (trainable) tensor ``P`` of shape
``(*spatial, C_pe)`` with i.i.d. standard normal channels and covariance
``R_ab = decay(sum_axes |i_a - i_b|^p)`` between positions ``a`` and ``b``
(``R = I`` when ``decay`` is ``None``). Queries and keys see
``w_in * Sigma + w_pe * R`` (:func:`mixing_weights`).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable

import numpy as np


class PositionalEmbedding(enum.Enum):
    """How an attention layer uses its positional embedding; neural-tangents'
    ``stax.PositionalEmbedding``. ``NONE``: none; ``SUM``: added to the inputs of the
    queries and keys; ``CONCAT``: concatenated to them as extra channels."""

    NONE = "NONE"
    SUM = "SUM"
    CONCAT = "CONCAT"


EMBEDDING_TYPES = tuple(e.value for e in PositionalEmbedding)


@functools.lru_cache(maxsize=32)
def _covariance(
    spatial_shape: tuple[int, ...], p_norm: float, decay_fn: Callable | None
) -> np.ndarray:
    size = int(np.prod(spatial_shape))
    if decay_fn is None:
        return np.eye(size)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in spatial_shape], indexing="ij"), -1)
    grid = grid.reshape(size, len(spatial_shape))
    dist = np.sum(np.abs(grid[:, None, :] - grid[None, :, :]) ** p_norm, axis=-1)
    return np.asarray(decay_fn(dist), dtype=np.float64)


def covariance(
    spatial_shape: tuple[int, ...], p_norm: float, decay_fn: Callable | None
) -> np.ndarray:
    """``R``: ``(P, P)`` over flattened (row-major) positions, ``P = prod(spatial_shape)``."""
    return _covariance(tuple(spatial_shape), float(p_norm), decay_fn)


@functools.lru_cache(maxsize=32)
def _cholesky(
    spatial_shape: tuple[int, ...], p_norm: float, decay_fn: Callable | None
) -> np.ndarray:
    R = _covariance(spatial_shape, p_norm, decay_fn)
    eigmin = float(np.linalg.eigvalsh(R).min()) if R.size else 1.0
    if not np.allclose(R, R.T) or eigmin <= 1e-10 * max(1.0, float(np.abs(R).max())):
        raise ValueError(
            "pos_emb_decay_fn: the positional covariance it gives for spatial shape "
            f"{spatial_shape} is not positive definite (smallest eigenvalue {eigmin:.3g}); "
            "a finite network cannot draw such embeddings"
        )
    return np.linalg.cholesky(R)


def cholesky_factor(
    spatial_shape: tuple[int, ...], p_norm: float, decay_fn: Callable | None
) -> np.ndarray:
    """Lower-triangular ``C`` with ``C C^T = R``; raises if ``R`` is not positive definite."""
    return _cholesky(tuple(spatial_shape), float(p_norm), decay_fn)


def mixing_weights(
    pos_emb_type: str, n_chan_in: int, n_chan_pos_emb: int | None, W_pos_emb_std: float
) -> tuple[float, float]:
    """``(w_in, w_pe)``: queries/keys see ``w_in * Sigma + w_pe * R``.

    SUM adds the embedding to the inputs; CONCAT appends its channels, so each
    part is weighted by its share of the channels (the layer's weights scale
    with ``1 / fan_in``).
    """
    w_in, w_pe = 1.0, W_pos_emb_std**2
    if pos_emb_type == "CONCAT":
        n_pe = n_chan_in if n_chan_pos_emb is None else n_chan_pos_emb
        w_in *= n_chan_in / (n_chan_in + n_pe)
        w_pe *= n_pe / (n_chan_in + n_pe)
    return w_in, w_pe
