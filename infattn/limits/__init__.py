"""Convergence of finite attention networks to their infinite-width / infinite-head limits.

* :mod:`~infattn.limits.samples`: outputs of finite networks across initialisations
  (:func:`sample_outputs`).
* :mod:`~infattn.limits.finite_heads`: draws from the infinite-width limit of a
  model with its heads kept finite (:func:`sample_finite_head_outputs`).
* :mod:`~infattn.limits.distance`: one empirical kernel estimate against its
  analytic kernel, noise and bias apart (:func:`distance`).
* :mod:`~infattn.limits.slopes`: power-law fits (:func:`fit_loglog_slope`).
* :mod:`~infattn.limits.sweep`: distances over a grid of heads and widths, with
  slopes (:func:`convergence_sweep`).
* :mod:`~infattn.limits.collapse`: untied ``1/d`` attention collapsing to uniform
  averaging (:func:`uniform_collapse`).
* :mod:`~infattn.limits.plots`: their figures (matplotlib is imported only there).

See ``docs/limits.md`` for the rates the theory predicts.
"""

from infattn.limits.collapse import CollapseResult, attention_collapse, uniform_collapse
from infattn.limits.distance import Distance, distance
from infattn.limits.finite_heads import sample_finite_head_outputs
from infattn.limits.samples import sample_outputs
from infattn.limits.slopes import SlopeFit, fit_loglog_slope
from infattn.limits.sweep import ConvergenceSweep, convergence_sweep

__all__ = [
    "CollapseResult",
    "ConvergenceSweep",
    "Distance",
    "SlopeFit",
    "attention_collapse",
    "convergence_sweep",
    "distance",
    "fit_loglog_slope",
    "sample_finite_head_outputs",
    "sample_outputs",
    "uniform_collapse",
]
