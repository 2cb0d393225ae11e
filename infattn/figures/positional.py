"""Figure: positional embeddings and LayerNorm shape the kernel over positions with depth.

For one input sequence, the analytic NNGP between its positions ``(L, L)`` after
``depth`` tied ``1/d`` attention blocks (attention, optional LayerNorm, ReLU MLP, as
the explorer builds them, without pooling), for positional embeddings NONE, SUM and
CONCAT (decaying covariance ``R``) and LayerNorm off/on: heatmaps at the first depth
and the normalised eigenvalue spectra at every depth. The effective rank
``exp(entropy of the normalised eigenvalues)`` summarises each spectrum.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from infattn import plots
from infattn.explore.model import Config, block_spec, layer, make_inputs
from infattn.figures.common import FigureResult, Presets, new_figure, progress_bar


@dataclasses.dataclass(frozen=True)
class PositionalSettings(Presets):
    """Positional embeddings x LayerNorm x depths, on one random sequence of ``seq_len``."""

    pos_embs: tuple[str, ...] = ("NONE", "SUM", "CONCAT")
    layernorms: tuple[bool, ...] = (False, True)
    depths: tuple[int, ...] = (1, 2, 3, 4, 6)
    decay: str = "inverse-square"
    decay_length: float = 2.0
    residual: bool = False
    seq_len: int = 12
    seed: int = 0

    TINY: ClassVar[dict] = {"depths": (1, 2), "seq_len": 6}
    QUICK: ClassVar[dict] = {"depths": (1, 2, 4), "seq_len": 8}
    FULL: ClassVar[dict] = {}


def effective_rank(k: np.ndarray) -> float:
    """``exp`` of the entropy of the normalised eigenvalues of the PSD matrix ``k``.

    Example:
      >>> round(effective_rank(np.eye(3)), 6), round(effective_rank(np.ones((3, 3))), 6)
      (3.0, 1.0)
    """
    lam = np.clip(np.linalg.eigvalsh(np.asarray(k, np.float64)), 0.0, None)
    p = lam[lam > 0] / lam.sum()
    return float(np.exp(-np.sum(p * np.log(p))))


def position_kernel(cfg: Config, depth: int, x: np.ndarray) -> np.ndarray:
    """The ``(L, L)`` NNGP between the positions of ``x[0]`` after ``depth`` blocks of ``cfg``."""
    blocks = [b for _ in range(depth) for b in block_spec(cfg)]
    spec = layer("serial", layer("Dense", cfg.width, b_std=0.1), *blocks)
    return np.asarray(spec.build()[2](x[:1], None, "nngp"))[0, 0]


def positional(settings: PositionalSettings, *, progress: bool = False) -> FigureResult:
    """Kernel heatmaps at the first depth and eigenvalue spectra at every depth.

    Numbers: the effective rank per LayerNorm, positional embedding and depth.

    Example:
        >>> fig, numbers = positional(PositionalSettings.tiny(pos_embs=("SUM",), depths=(1,)))
        >>> numbers["effective_rank"]["layernorm"]["SUM"][0] > 1
        True
    """
    s = settings
    n = len(s.pos_embs)
    fig, axes = new_figure(len(s.layernorms), 2 * n, (2.6, 2.6))
    ranks: dict[str, dict[str, list[float]]] = {}
    total = len(s.layernorms) * n * len(s.depths)
    with progress_bar(total, "positional", progress) as bar:
        for row, ln in zip(axes, s.layernorms, strict=True):
            which = "layernorm" if ln else "no layernorm"
            for j, pe in enumerate(s.pos_embs):
                cfg = Config(
                    pos_emb=pe,
                    layernorm=ln,
                    residual=s.residual,
                    decay=s.decay,
                    decay_length=s.decay_length,
                    seq_len=s.seq_len,
                    n_inputs=2,
                    seed=s.seed,
                )
                x = make_inputs(cfg)
                ax = row[n + j]
                for i, depth in enumerate(s.depths):
                    k = position_kernel(cfg, depth, x)
                    if i == 0:
                        title = f"{pe}, {which}, depth {depth}"
                        plots.kernel_heatmap(row[j], k / np.max(np.abs(k)), title=title)
                    ranks.setdefault(which, {}).setdefault(pe, []).append(effective_rank(k))
                    lam = np.sort(np.clip(np.linalg.eigvalsh(k), 1e-12 * np.trace(k), None))
                    ax.semilogy(lam[::-1] / np.trace(k), ".-", label=f"depth {depth}")
                    bar.update()
                ax.set(xlabel="eigenvalue index", title=f"spectrum: {pe}, {which}")
                ax.title.set_fontsize(9)
                ax.set_ylim(1e-8, 1.5)
    axes[0, n].legend(fontsize=7)
    fig.tight_layout()
    return fig, {"depths": list(s.depths), "effective_rank": ranks}
