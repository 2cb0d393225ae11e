"""Figure: empirical kernels of finite networks converge to the analytic ones.

One attention layer on random sequences (``out_width`` output channels, traced in
the empirical NNGP). Three panels: the relative NNGP bias of tied ``1/d`` attention
against key width (theory slope ``-1``), of standard ``1/sqrt(d)`` attention against
heads at fixed key width (one layer: the bias is flat, the noise of one network falls
like ``H^-1/2``), and the collapse of untied ``1/d`` attention matrices to uniform
averaging (slope ``-1/2``).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import numpy as np

from infattn import limits, stax
from infattn.explore import compute
from infattn.figures.common import FigureResult, Presets, new_figure, progress_bar
from infattn.limits.plots import plot_collapse, sweep_panel


@dataclasses.dataclass(frozen=True)
class ConvergenceSettings(Presets):
    """Key-width sweep (tied ``1/d``, ``width_heads`` heads), heads sweep (``1/sqrt(d)``,
    key width ``heads_width``), collapse key widths (untied ``1/d``); ``draws`` networks
    per point; ``key_std``: ``W_key_std`` (and the collapse's ``qk_std``)."""

    widths: tuple[int, ...] = (8, 16, 32, 64, 128)
    width_heads: int = 4
    heads: tuple[int, ...] = (1, 4, 16, 64)
    heads_width: int = 32
    collapse_widths: tuple[int, ...] = (8, 32, 128, 512, 2048)
    out_width: int = 512
    value_width: int = 64
    key_std: float = 2.0
    draws: int = 256
    seq_len: int = 4
    seed: int = 0

    TINY: ClassVar[dict] = {
        "widths": (4, 32),
        "heads": (1, 8),
        "heads_width": 8,
        "collapse_widths": (8, 128),
        "out_width": 64,
        "draws": 16,
    }
    QUICK: ClassVar[dict] = {
        "widths": (8, 16, 32, 64),
        "heads": (1, 4, 16),
        "heads_width": 16,
        "collapse_widths": (8, 32, 128, 512),
        "out_width": 256,
        "draws": 128,
    }
    FULL: ClassVar[dict] = {}


def attention(s: ConvergenceSettings, scaling: str, heads: int, key_width: int) -> tuple:
    """One attention layer on the inputs, ``s.out_width`` output channels (no pooling)."""
    layer = stax.GlobalSelfAttention(
        s.out_width,
        key_width,
        s.value_width,
        n_heads=heads,
        linear_scaling=scaling != "1/sqrt(d)",
        tie_query_key=None if scaling != "1/d untied" else False,
        W_key_std=s.key_std,
    )
    init_fn, apply_fn, kernel_fn = layer
    return compute.normal_init(init_fn), apply_fn, kernel_fn


def convergence(settings: ConvergenceSettings, *, progress: bool = False) -> FigureResult:
    """Relative NNGP bias against width and heads, and the untied collapse.

    Numbers: per point the relative bias, its confidence interval, the noise level and
    whether the bias is resolved; the width slope (theory ``-1``); the collapse
    distances with their SEs and slope (theory ``-1/2``).

    Example (skipped by the doctest run: it draws many networks):
        >>> fig, numbers = convergence(ConvergenceSettings.tiny())  # doctest: +SKIP
    """
    s = settings
    key = jax.random.PRNGKey(s.seed)
    fig, axes = new_figure(1, 3, (4.2, 3.6))
    x = np.random.default_rng(s.seed).standard_normal((2, s.seq_len, 4))
    grids = {
        "width": ("1/d tied", (s.width_heads,), s.widths),
        "heads": ("1/sqrt(d)", s.heads, (s.heads_width,)),
    }
    sweeps = {}
    with progress_bar(3, "convergence", progress) as bar:
        for i, (against, (scaling, heads, widths)) in enumerate(grids.items()):
            sweeps[against] = limits.convergence_sweep(
                lambda h, w, scaling=scaling: attention(s, scaling, h, w),
                x,
                heads=heads,
                widths=widths,
                n_samples=s.draws,
                key=jax.random.fold_in(key, i),
                get="nngp",
                check_heads=False,
            )
            bar.update()
        collapse = limits.uniform_collapse(
            x,
            s.collapse_widths,
            key=jax.random.fold_in(key, 2),
            n_samples=s.draws,
            qk_std=s.key_std,
        )
        bar.update()
    sweep_panel(axes[0, 0], sweeps["width"], "nngp", "width")
    axes[0, 0].set_title(f"tied 1/d, {s.width_heads} heads: bias ∝ 1/width", fontsize=9)
    sweep_panel(axes[0, 1], sweeps["heads"], "nngp", "heads")
    axes[0, 1].set_title(f"1/√d, width {s.heads_width}: flat bias, noise ∝ H^-1/2", fontsize=9)
    plot_collapse(collapse, axes[0, 2])
    axes[0, 2].set_title("untied 1/d: attention -> uniform averaging", fontsize=9)
    fig.tight_layout()
    numbers = {against: _rows(sw) for against, sw in sweeps.items()}
    numbers["width_slope"] = _fit(sweeps["width"].fit("nngp", "width", s.width_heads))
    numbers["collapse"] = {
        "widths": collapse.widths,
        "distance": collapse.attention_distance,
        "distance_se": collapse.attention_distance_se,
        **_fit(collapse.attention_fit),
    }
    return fig, numbers


def _rows(sweep: limits.ConvergenceSweep) -> list[dict]:
    return [
        {
            "heads": r.n_heads,
            "width": r.width,
            "rel_bias": r.rel_bias,
            "rel_bias_ci": r.rel_bias_ci,
            "rel_noise": r.rel_noise,
            "rel_fro": r.rel_fro,
            "resolved": r.resolved,
        }
        for r in sweep.rows
    ]


def _fit(fit: limits.SlopeFit) -> dict[str, float]:
    return {"slope": fit.slope, "slope_se": fit.slope_se}
