"""The paper's figures: one function per figure, each returning ``(figure, numbers)``.

Every figure has a settings dataclass with ``tiny()``, ``quick()`` and ``full()``
presets (and a ``seed``: the same seed gives the same numbers). :data:`FIGURES`
lists them by name with the claim each supports; ``infattn figures`` writes them
all (``docs/figures.md``) and ``notebooks/04_paper_figures.ipynb`` draws them.

Example:
  >>> sorted(FIGURES)[:2]
  ['accuracy', 'convergence']
  >>> FIGURES["kurtosis"].settings().quick().heads
  (1, 2, 4, 8)
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """A figure: its module, function and settings class (imported on use), its caption."""

    name: str
    module: str
    function_name: str
    settings_name: str
    caption: str

    def function(self) -> Any:
        """The figure function ``f(settings, *, progress=False) -> (figure, numbers)``."""
        return getattr(importlib.import_module(self.module), self.function_name)

    def settings(self) -> Any:
        """The settings class (``.tiny()``, ``.quick()``, ``.full()``)."""
        return getattr(importlib.import_module(self.module), self.settings_name)


def _spec(name: str, module: str, function: str, settings: str, caption: str) -> FigureSpec:
    return FigureSpec(
        name, f"infattn.figures.{module}", function, settings, " ".join(caption.split())
    )


FIGURES: dict[str, FigureSpec] = {
    s.name: s
    for s in (
        _spec(
            "histograms",
            "outputs",
            "histograms",
            "HistogramSettings",
            """Outputs of finite single- and multi-head attention networks under standard
            1/sqrt(d) scaling (SOFTMAX, ABS, RELU) against the Gaussian of infinite width and
            heads and the exact infinite-width law with the same heads. Claim: with standard
            scaling a single head is not Gaussian even at infinite width (a Gaussian scale
            mixture); Gaussianity needs many heads, and the finite-head law describes the
            finite networks.""",
        ),
        _spec(
            "kurtosis",
            "outputs",
            "kurtosis",
            "KurtosisSettings",
            """Excess kurtosis of one output against heads (log-log, fitted slope, 1/H line)
            and against width at one head. Claim: under standard scaling the distance from
            Gaussianity falls like 1/H with heads, while more width alone tends to the
            non-Gaussian finite-head law, not to the GP.""",
        ),
        _spec(
            "convergence",
            "convergence",
            "convergence",
            "ConvergenceSettings",
            """Relative bias of finite networks' empirical NNGP against the analytic kernel:
            against width for tied 1/d attention (theory slope -1), against heads at fixed
            width for 1/sqrt(d) attention (one layer: flat bias, noise falling like H^-1/2),
            with confidence bands; and untied 1/d attention matrices collapsing to uniform
            averaging (slope -1/2). Claim: the infinite-width/infinite-head kernels are the
            limits of finite networks, and untied 1/d scaling degenerates.""",
        ),
        _spec(
            "positional",
            "positional",
            "positional",
            "PositionalSettings",
            """Analytic NNGP between the positions of one sequence after deeper stacks of
            attention blocks, for positional embeddings NONE, SUM and CONCAT (decaying
            covariance) and LayerNorm off/on: heatmaps at the first depth and eigenvalue
            spectra at every depth. Claim: positional embeddings add positional structure to
            the kernel and LayerNorm keeps it normalised, while depth drives attention
            kernels towards rank one (the effective ranks are in the sidecar).""",
        ),
        _spec(
            "accuracy",
            "accuracy",
            "accuracy",
            "AccuracySettings",
            """Test accuracy of NNGP (dashed) and NTK (solid) inference against training-set
            size for attention and attention-free architectures on digits (rows as tokens),
            and on CIFAR-10 and IMDb when their archives are given. Claim: infinite attention
            kernels are usable predictors, compared here with attention-free kernels.""",
        ),
        _spec(
            "training",
            "training",
            "training",
            "TrainingSettings",
            """Test loss of ensembles of finite attention networks trained by gradient
            descent against the NTK's prediction, and the largest gap between ensemble mean
            and prediction per width. Claim: wide attention networks train as the NTK
            predicts, more closely as the width grows.""",
        ),
    )
}

__all__ = ["FIGURES", "FigureSpec"]
