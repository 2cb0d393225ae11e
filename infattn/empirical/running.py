"""Running means and standard errors of per-draw kernels, kept on the device or the host.

Each chunk's draws are reduced on the device to their :class:`~infattn.statistics.Moments`
(count, mean, centred sum of squares) and merged into the running state of every tile
with Chan's update (:func:`infattn.statistics.combine`). With
``store_on_device=False`` the state lives in host memory as float64 NumPy arrays, so a
large kernel needs no device memory between chunks.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infattn.statistics import Moments, combine, moments

Array = jax.Array
State = list[dict[str, Moments]]
"""Per tile, per kernel kind: the moments of the draws so far."""


@jax.jit
def _chunk_moments(draws: dict[str, Array], weights: Array) -> dict[str, tuple[Moments, Array]]:
    """Per kind: the moments of the weighted draws and whether every counted draw is finite."""
    out = {}
    for kind, d in draws.items():
        finite = jnp.all(jnp.isfinite(d).reshape(d.shape[0], -1), axis=1)
        out[kind] = (moments(d, weights), jnp.all(finite | (weights == 0)))
    return out


def empty(n_tiles: int, get: tuple[str, ...]) -> State:
    """The state before any draw.

    Example:
        >>> empty(1, ("nngp",))[0]["nngp"].count
        0
    """
    return [{kind: Moments(0, 0.0, 0.0) for kind in get} for _ in range(n_tiles)]


def update(
    state: State, draws: list[dict[str, Array]], weights: Array, on_device: bool, where: str
) -> State:
    """``state`` with the draws of weight 1 in ``weights`` ``(size,)`` merged in.

    ``draws``: per tile ``{kind: (size, *kernel)}``. Returns a new state (the old
    one stays valid, so an interruption never leaves tiles with different counts).
    ``where`` names the draws in the error raised for non-finite kernels.

    Example:
        >>> s = update(empty(1, ("nngp",)), [{"nngp": jnp.arange(3.0)}], jnp.ones(3), True, "")
        >>> int(s[0]["nngp"].count), float(s[0]["nngp"].mean)
        (3, 1.0)
    """
    new = []
    for t, (tile_draws, tile_state) in enumerate(zip(draws, state, strict=True)):
        reduced = _chunk_moments(tile_draws, weights)
        merged = {}
        for kind, (m, finite) in reduced.items():
            if not bool(finite):
                raise ValueError(
                    f"apply_fn: produced non-finite (NaN/inf) {kind} for {where} (tile {t}); "
                    "expected finite outputs: check x1/x2, mask_constant and the model"
                )
            m = Moments(int(m.count), *(_store(a, on_device) for a in m[1:]))
            merged[kind] = combine(tile_state[kind], m)
        new.append(merged)
    return new


def _store(a: Array, on_device: bool) -> Any:
    return a if on_device else np.asarray(a, np.float64)
