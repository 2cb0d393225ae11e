"""Figures of the outputs' law under standard ``1/sqrt(d)`` scaling.

* :func:`histograms`: outputs of finite single- and multi-head networks against the
  Gaussian (the GP of infinite width and heads) and the exact infinite-width law with
  the same heads, for SOFTMAX, ABS and RELU;
* :func:`kurtosis`: excess kurtosis against heads (log-log, fitted slope, ``1/H``)
  and against width at fixed heads (which does not make the outputs Gaussian).

Both draw one output (the first input's) of :func:`~infattn.figures.common.standard_config`
networks; the same settings and seed draw the same networks in both.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from infattn import diagnostics, plots
from infattn.figures.common import (
    FigureResult,
    Presets,
    finite_outputs,
    gp_variance,
    law_outputs,
    new_figure,
    progress_bar,
    standard_config,
)


@dataclasses.dataclass(frozen=True)
class HistogramSettings(Presets):
    """``mechanisms`` x ``heads`` panels; ``draws`` networks (and law draws) each."""

    mechanisms: tuple[str, ...] = ("SOFTMAX", "ABS", "RELU")
    heads: tuple[int, ...] = (1, 16)
    width: int = 256
    draws: int = 10000
    seq_len: int = 4
    seed: int = 0

    TINY: ClassVar[dict] = {"mechanisms": ("RELU",), "heads": (1, 8), "width": 16, "draws": 400}
    QUICK: ClassVar[dict] = {"heads": (1, 8), "width": 32, "draws": 1000}
    FULL: ClassVar[dict] = {}


def _moments(samples: np.ndarray) -> dict[str, float]:
    m = diagnostics.skew_kurtosis(samples[:, None], se="bootstrap")
    return {
        "excess_kurtosis": float(m.excess_kurtosis[0]),
        "excess_kurtosis_se": float(m.excess_kurtosis_se[0]),
        "variance": float(np.var(samples, ddof=1)),
    }


def histograms(settings: HistogramSettings, *, progress: bool = False) -> FigureResult:
    """Histograms of one output: finite networks, the finite-head law and the GP.

    Numbers: per mechanism and heads, the excess kurtosis (bootstrap SE) and variance
    of the finite networks' and the law's draws, and the GP variance. Claim: one head
    is far from Gaussian (large excess kurtosis), many heads approach the GP.

    Example (skipped by the doctest run: it draws thousands of networks):
        >>> fig, numbers = histograms(HistogramSettings.tiny())  # doctest: +SKIP
    """
    s = settings
    fig, axes = new_figure(len(s.mechanisms), len(s.heads), (3.6, 2.8))
    numbers: dict[str, dict] = {}
    with progress_bar(len(s.mechanisms) * len(s.heads), "histograms", progress) as bar:
        for row, mech in zip(axes, s.mechanisms, strict=True):
            for ax, h in zip(row, s.heads, strict=True):
                cfg = standard_config(mech, h, s.width, s.seq_len, s.seed)
                finite, law = finite_outputs(cfg, s.draws), law_outputs(cfg, s.draws)
                gp = gp_variance(cfg)
                entry = {"finite": _moments(finite), "law": _moments(law), "gp_variance": gp}
                numbers.setdefault(mech, {})[str(h)] = entry
                plots.histogram_with_laws(
                    ax,
                    finite,
                    label=f"finite, width {s.width}",
                    gaussian_var=gp,
                    others={"infinite width, same heads": law},
                )
                k = entry["finite"]["excess_kurtosis"]
                ax.set_title(f"{mech}, {h} head{'s' * (h > 1)}: kurtosis {k:.2f}", fontsize=9)
                ax.set_xlabel("output f(x₀)")
                bar.update()
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig, {"outputs": numbers}


@dataclasses.dataclass(frozen=True)
class KurtosisSettings(Presets):
    """Kurtosis against ``heads`` at ``width``, and against ``widths`` at ``width_heads``."""

    mechanism: str = "SOFTMAX"
    heads: tuple[int, ...] = (1, 2, 4, 8, 16)
    width: int = 256
    widths: tuple[int, ...] = (16, 64, 256, 1024)
    width_heads: int = 1
    draws: int = 10000
    seq_len: int = 4
    n_boot: int = 200
    seed: int = 0

    TINY: ClassVar[dict] = {
        "mechanism": "RELU",
        "heads": (1, 8),
        "width": 16,
        "widths": (16, 64),
        "draws": 400,
    }
    QUICK: ClassVar[dict] = {
        "heads": (1, 2, 4, 8),
        "width": 32,
        "widths": (16, 32, 128),
        "draws": 1000,
    }
    FULL: ClassVar[dict] = {}


def kurtosis(settings: KurtosisSettings, *, progress: bool = False) -> FigureResult:
    """Excess kurtosis of one output against heads (log-log) and against width.

    Numbers: the kurtosis and its bootstrap SE per heads, the fitted log-log slope
    (theory: ``-1``), the kurtosis per width at ``width_heads`` heads and that of the
    infinite-width law with ``width_heads`` heads (where the widths lead instead of 0).

    Example (skipped by the doctest run: it draws thousands of networks):
        >>> fig, numbers = kurtosis(KurtosisSettings.tiny())  # doctest: +SKIP
    """
    s = settings
    fig, axes = new_figure(1, 2, (4.6, 3.6))
    ax_h, ax_w = axes[0]
    with progress_bar(len(s.heads) + len(s.widths) + 1, "kurtosis", progress) as bar:
        by_heads = {}
        for h in s.heads:
            cfg = standard_config(s.mechanism, h, s.width, s.seq_len, s.seed)
            by_heads[h] = finite_outputs(cfg, s.draws)[:, None]
            bar.update()
        scaling = diagnostics.kurtosis_vs_heads(by_heads, n_boot=s.n_boot, seed=s.seed)
        by_width = {}
        for w in s.widths:
            cfg = standard_config(s.mechanism, s.width_heads, w, s.seq_len, s.seed)
            by_width[w] = _moments(finite_outputs(cfg, s.draws))
            bar.update()
        cfg = standard_config(s.mechanism, s.width_heads, s.width, s.seq_len, s.seed)
        law = _moments(law_outputs(cfg, s.draws))
        bar.update()
    diagnostics.plot_kurtosis_vs_heads(scaling, ax=ax_h)
    plots.size_ticks(ax_h, s.heads)
    ax_h.set_title(f"{s.mechanism}, width {s.width}: kurtosis falls like 1/H", fontsize=9)
    k = [by_width[w]["excess_kurtosis"] for w in s.widths]
    se = [by_width[w]["excess_kurtosis_se"] for w in s.widths]
    ax_w.errorbar(s.widths, k, yerr=2 * np.asarray(se), fmt="o", capsize=3, label="finite ± 2 SE")
    lo, hi = law["excess_kurtosis"] - 2 * law["excess_kurtosis_se"], law["excess_kurtosis"]
    ax_w.axhspan(lo, hi + 2 * law["excess_kurtosis_se"], color="C1", alpha=0.3)
    ax_w.axhline(hi, color="C1", label="infinite width (law) ± 2 SE")
    ax_w.axhline(0.0, color="k", lw=0.8, label="Gaussian")
    plots.size_ticks(ax_w, s.widths)
    ax_w.set(xlabel="width (keys, values, outputs)", ylabel="excess kurtosis")
    ax_w.set_title(f"{s.width_heads} head(s): width does not make it Gaussian", fontsize=9)
    ax_w.legend(fontsize=7)
    fig.tight_layout()
    numbers = {
        "heads": list(s.heads),
        "kurtosis": scaling.kurtosis,
        "kurtosis_se": scaling.kurtosis_se,
        "slope": scaling.slope,
        "slope_se": scaling.slope_se,
        "widths": list(s.widths),
        "kurtosis_by_width": [by_width[w] for w in s.widths],
        "law_kurtosis": law,
    }
    return fig, numbers
