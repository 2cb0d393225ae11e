"""Figure: test accuracy against training-set size for attention and attention-free kernels.

For each data set and architecture (:mod:`infattn.architectures`) the NNGP and NTK
are computed once on the largest training set and the test set
(:func:`infattn.experiments.kernel_blocks`); every smaller training set is scored
from their leading blocks (:func:`infattn.experiments.evaluate`: the NNGP posterior
mean and the converged NTK ensemble mean, argmax accuracy). Digits are bundled with
scikit-learn (offline); CIFAR-10 and IMDb are added when their archives are given.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from infattn import architectures, experiments, plots
from infattn.figures.common import FigureResult, Presets, new_figure, progress_bar

ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "imdb": "aclImdb_v1.tar.gz"}
"""The archives looked for in ``data`` (a directory, or one of these files)."""


@dataclasses.dataclass(frozen=True)
class AccuracySettings(Presets):
    """Architectures, training-set sizes, test size; ``data``: a directory holding the
    CIFAR-10/IMDb archives (or one archive), ``None`` for digits only. The kernels and
    splits are deterministic: ``seed`` changes nothing here."""

    architectures: tuple[str, ...] = ("fc3", "cnn-gap", "attn", "attn-pe", "transformer")
    n_trains: tuple[int, ...] = (50, 100, 200, 500, 1000)
    n_test: int = 797
    imdb_length: int = 100
    diag_reg: float = 1e-4
    data: str | None = None
    seed: int = 0

    TINY: ClassVar[dict] = {
        "architectures": ("fc3", "attn-pe"),
        "n_trains": (20, 80),
        "n_test": 100,
    }
    QUICK: ClassVar[dict] = {
        "architectures": ("fc3", "attn-pe"),
        "n_trains": (25, 50, 100, 200),
        "n_test": 200,
    }
    FULL: ClassVar[dict] = {}


def datasets(s: AccuracySettings) -> dict[str, Any]:
    """``{name: Dataset}``: digits as sequences of rows, and any archive found in ``s.data``."""
    from infattn import data

    n_train, n_test = max(s.n_trains), s.n_test
    out = {"digits": data.load_digits("rows", n_train, n_test)}
    if s.data is None:
        return out
    root = Path(s.data)
    for name, archive in ARCHIVES.items():
        path = root / archive if root.is_dir() else root
        if path.name != archive or not path.is_file():
            continue
        if name == "cifar10":
            out[name] = data.load_cifar10(path, n_train, n_test)
        else:
            out[name] = data.load_imdb(path, n_train, n_test, length=s.imdb_length)
    if len(out) == 1:
        raise FileNotFoundError(
            f"data: expected a directory holding {' or '.join(ARCHIVES.values())}, or one of "
            f"those archives, got {s.data!r}"
        )
    return out


def _scores(arch: str, d: Any, s: AccuracySettings) -> dict[str, list[float]]:
    """NNGP/NTK test accuracy of ``arch`` on ``d`` for every training-set size."""
    x_train, x_test = (np.asarray(x, np.float32) for x in (d.x_train, d.x_test))
    _, _, kernel_fn = architectures.get(arch).build(x_train.ndim - 2, d.y_train.shape[-1])
    kw = {"mask_constant": d.mask_constant, "progress": False}
    k_dd = experiments.kernel_blocks(kernel_fn, x_train, **kw)
    k_td = experiments.kernel_blocks(kernel_fn, x_test, x_train, **kw)
    out: dict[str, list[float]] = {"nngp": [], "ntk": []}
    for n in s.n_trains:
        sub_dd = {g: v[:n, :n] for g, v in k_dd.items()}
        sub_td = {g: v[:, :n] for g, v in k_td.items()}
        nngp, ntk = experiments.evaluate(sub_dd, sub_td, d, s.diag_reg)
        out["nngp"].append(nngp.test_accuracy)
        out["ntk"].append(ntk.test_accuracy)
    return out


def accuracy(settings: AccuracySettings, *, progress: bool = False) -> FigureResult:
    """Test accuracy (NNGP dashed, NTK solid) against training-set size, one panel per data set.

    Numbers: ``{dataset: {architecture: {"nngp": [...], "ntk": [...]}}}`` per size, the
    sizes, the chance level per data set and which architectures use attention.

    Example (skipped by the doctest run: kernels of hundreds of digits):
        >>> fig, numbers = accuracy(AccuracySettings.tiny())  # doctest: +SKIP
    """
    s = settings
    sets = datasets(s)
    fig, axes = new_figure(1, len(sets), (4.6, 3.6))
    numbers: dict[str, Any] = {"n_trains": list(s.n_trains), "accuracy": {}, "chance": {}}
    with progress_bar(len(sets) * len(s.architectures), "accuracy", progress) as bar:
        for ax, (name, d) in zip(axes[0], sets.items(), strict=True):
            numbers["chance"][name] = 1.0 / len(d.classes)
            for i, arch in enumerate(s.architectures):
                acc = _scores(arch, d, s)
                numbers["accuracy"].setdefault(name, {})[arch] = acc
                style = "o-" if architectures.get(arch).uses_attention else "s-"
                ax.plot(s.n_trains, acc["ntk"], style, color=f"C{i}", label=f"{arch} NTK")
                ax.plot(s.n_trains, acc["nngp"], "--", color=f"C{i}", alpha=0.7)
                bar.update()
            ax.axhline(numbers["chance"][name], color="gray", lw=0.8, label="chance")
            plots.size_ticks(ax, s.n_trains)
            ax.set(xlabel="training examples", ylabel="test accuracy", ylim=(0, 1))
            ax.set_title(f"{name} ({len(d.x_test)} test; dashed: NNGP)", fontsize=9)
            ax.legend(fontsize=7)
    numbers["uses_attention"] = {a: architectures.get(a).uses_attention for a in s.architectures}
    fig.tight_layout()
    return fig, numbers
