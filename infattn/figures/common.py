"""What every figure shares: settings presets, figures, progress, outputs of finite networks.

A figure function takes its settings (a frozen dataclass with ``tiny()``, ``quick()``
and ``full()`` constructors and a ``seed``) and returns ``(figure, numbers)``: a
matplotlib :class:`~matplotlib.figure.Figure` (created without ``pyplot``, so no
global state) and a JSON-able dict of the numbers it plots.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, ClassVar

import jax
import numpy as np

from infattn.explore.model import MECHANISMS, Config

FigureResult = tuple[Any, dict[str, Any]]


class Presets:
    """Mixin of the three presets: ``tiny()`` (tests, ``INFATTN_FAST=1``), ``quick()``
    (``infattn figures --quick``) and ``full()`` (the paper-sized run), each the
    defaults with the preset's overrides ``TINY``, ``QUICK`` or ``FULL``."""

    TINY: ClassVar[dict[str, Any]] = {}
    QUICK: ClassVar[dict[str, Any]] = {}
    FULL: ClassVar[dict[str, Any]] = {}

    @classmethod
    def tiny(cls, **changes: Any) -> Any:
        return cls(**{**cls.TINY, **changes})

    @classmethod
    def quick(cls, **changes: Any) -> Any:
        return cls(**{**cls.QUICK, **changes})

    @classmethod
    def full(cls, **changes: Any) -> Any:
        return cls(**{**cls.FULL, **changes})

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-able values."""
        return jsonable(dataclasses.asdict(self))


def new_figure(nrows: int, ncols: int, size: tuple[float, float]) -> tuple[Any, np.ndarray]:
    """A figure of ``nrows x ncols`` axes (a 2-D array), ``size`` inches per panel."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows))
    return fig, np.asarray(fig.subplots(nrows, ncols, squeeze=False))


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A ``tqdm.auto`` bar over a figure's ``total`` steps (disabled: a silent one)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays, tuples and dataclasses as JSON types
    (non-finite floats, e.g. an unresolved slope, as ``None``).

    Example:
      >>> jsonable({"a": np.float32(0.5), "b": (np.arange(2), 3), "c": float("nan")})
      {'a': 0.5, 'b': [[0, 1], 3], 'c': None}
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray | jax.Array):
        return jsonable(np.asarray(value).tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON: an unresolved fit or estimate is null
    return value


def standard_config(mechanism: str, heads: int, width: int, seq_len: int, seed: int) -> Config:
    """One standard-scaling (``1/sqrt(d)``) attention layer between a read-in and a
    pooled scalar read-out, as the explorer builds it (no residual, LayerNorm or MLP)."""
    return Config(
        scaling="1/sqrt(d)",
        mechanism=mechanism,
        heads=heads,
        width=width,
        pos_emb="NONE",
        layernorm=False,
        residual=False,
        nonlinearity="none",
        seq_len=seq_len,
        n_inputs=2,
        seed=seed,
    )


def _key(cfg: Config, tag: int) -> jax.Array:
    """A key determined by the configuration, so that figures drawing the same
    networks (same settings and seed) share their samples."""
    key = jax.random.PRNGKey(cfg.seed)
    for v in (tag, MECHANISMS.index(cfg.mechanism), cfg.heads, cfg.width, cfg.seq_len):
        key = jax.random.fold_in(key, v)
    return key


@functools.lru_cache(maxsize=64)
def finite_outputs(cfg: Config, n: int) -> np.ndarray:
    """``(n,)`` outputs at the first input of ``n`` finite networks of ``cfg``."""
    from infattn.explore import compute
    from infattn.explore.model import make_inputs

    x = make_inputs(cfg)
    return compute.finite_outputs(cfg, x, cfg.heads, n, _key(cfg, 0))[:, 0]


@functools.lru_cache(maxsize=64)
def law_outputs(cfg: Config, n: int) -> np.ndarray:
    """``(n,)`` draws at the first input of the infinite-width law with ``cfg.heads`` heads."""
    from infattn import limits
    from infattn.explore import compute
    from infattn.explore.model import make_inputs

    x = make_inputs(cfg)
    law = limits.sample_finite_head_outputs(
        compute.model(cfg)[2], x, n, _key(cfg, 1), batch_size=min(n, 1024)
    )
    return np.asarray(law).reshape(n, -1)[:, 0]


@functools.lru_cache(maxsize=64)
def gp_variance(cfg: Config) -> float:
    """The NNGP variance of the first input's output (infinite width and heads)."""
    from infattn.explore import compute
    from infattn.explore.model import make_inputs

    return float(compute.model(cfg)[2](make_inputs(cfg), None, "nngp")[0, 0])
