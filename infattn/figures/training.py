"""Figure: the NTK predicts how wide finite attention networks train.

Ensembles of finite attention networks (read-in, softmax attention with positional
embeddings, ReLU, pooling, read-out) trained by full-batch gradient descent on a 1-D
regression task over sequences (:func:`infattn.data.phase_sequences`), next to the
NTK's prediction of the ensemble mean (:func:`infattn.train.ntk_comparison`): test
loss curves, and the largest gap between ensemble mean and prediction per width.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import numpy as np

from infattn import plots, stax, train
from infattn.architectures import decay
from infattn.data import phase_sequences
from infattn.figures.common import FigureResult, Presets, new_figure, progress_bar


@dataclasses.dataclass(frozen=True)
class TrainingSettings(Presets):
    """Widths, networks per width, gradient-descent steps and recorded points."""

    widths: tuple[int, ...] = (32, 128, 512, 2048)
    n_models: int = 16
    steps: int = 400
    records: int = 20
    n_train: int = 24
    n_test: int = 24
    heads: int = 2
    seed: int = 0

    TINY: ClassVar[dict] = {
        "widths": (32, 512),
        "n_models": 4,
        "steps": 20,
        "records": 2,
        "n_train": 8,
    }
    QUICK: ClassVar[dict] = {"widths": (16, 64, 256), "n_models": 8, "steps": 100, "records": 10}
    FULL: ClassVar[dict] = {}


def model(width: int, heads: int = 2) -> tuple:
    """The attention network trained here, at ``width``."""
    return stax.serial(
        stax.Dense(width, b_std=0.1),
        stax.GlobalSelfAttention(
            width, width, width, n_heads=heads, pos_emb_type="SUM", pos_emb_decay_fn=decay
        ),
        stax.Relu(),
        stax.GlobalAvgPool(),
        stax.Dense(1),
    )


def task(n_train: int, n_test: int) -> tuple[np.ndarray, ...]:
    """``(x_train, y_train, x_test, y_test)``: ``sin(2 s)`` of sequences ``phase_sequences(s)``."""
    s_train = np.linspace(0, 2 * np.pi, n_train, endpoint=False)
    s_test = s_train + np.pi / n_train
    return (
        phase_sequences(s_train),
        np.sin(2 * s_train)[:, None],
        phase_sequences(s_test),
        np.sin(2 * s_test)[:, None],
    )


def training(settings: TrainingSettings, *, progress: bool = False) -> FigureResult:
    """Test loss of finite ensembles against the NTK's prediction, and the gap per width.

    Numbers: steps, the NTK's test loss, each width's mean test loss per recorded step,
    the largest |ensemble mean - NTK| of the test outputs per width, the step size.

    Example (skipped by the doctest run: it trains networks):
        >>> fig, numbers = training(TrainingSettings.tiny())  # doctest: +SKIP
    """
    s = settings
    if s.steps % s.records:
        raise ValueError(f"steps: expected a multiple of records={s.records}, got {s.steps}")
    with progress_bar(1, "training", progress) as bar:
        c = train.ntk_comparison(
            lambda w: model(w, s.heads),
            s.widths,
            jax.random.PRNGKey(s.seed),
            *task(s.n_train, s.n_test),
            steps=s.steps,
            n_models=s.n_models,
            record_every=s.steps // s.records,
            progress=progress,
        )
        bar.update()
    gaps = c.gaps()
    fig, axes = new_figure(1, 2, (4.6, 3.6))
    ax, ax_gap = axes[0]
    losses = {}
    for w, run in c.runs.items():
        losses[w] = np.asarray(run.test_loss).mean(axis=1)
        ax.plot(c.steps, losses[w], "o-", ms=3, label=f"width {w} ({s.n_models} nets)")
    ax.plot(c.steps, c.ntk_test_loss, "k--", label="NTK prediction (infinite width)")
    ax.set(xlabel="gradient-descent step", ylabel="test loss (mean over networks)", yscale="log")
    ax.set_title("training curves against the NTK", fontsize=9)
    ax.legend(fontsize=7)
    ax_gap.loglog(list(gaps), list(gaps.values()), "o-")
    plots.size_ticks(ax_gap, list(gaps))
    ax_gap.set(xlabel="width", ylabel="max |ensemble mean − NTK| (test outputs)")
    ax_gap.set_title("the gap closes with width", fontsize=9)
    fig.tight_layout()
    numbers = {
        "steps": c.steps,
        "learning_rate": c.learning_rate,
        "ntk_test_loss": c.ntk_test_loss,
        "test_loss": {str(w): v for w, v in losses.items()},
        "max_gap": {str(w): v for w, v in gaps.items()},
    }
    return fig, numbers
