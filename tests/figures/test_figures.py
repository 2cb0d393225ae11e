"""Each figure at tiny settings: its numbers show the claim the figure supports."""

import math

import numpy as np
import pytest

from infattn.figures import FIGURES
from infattn.figures.accuracy import AccuracySettings, accuracy
from infattn.figures.convergence import ConvergenceSettings, convergence
from infattn.figures.outputs import HistogramSettings, KurtosisSettings, histograms, kurtosis
from infattn.figures.positional import PositionalSettings, positional
from infattn.figures.training import TrainingSettings, training


def test_every_figure_has_presets_a_function_and_a_caption():
    for name, spec in FIGURES.items():
        cls = spec.settings()
        assert cls.quick() != cls.full(), name
        assert callable(spec.function()) and len(spec.caption) > 80, name


def test_one_head_is_heavy_tailed_many_heads_are_nearly_gaussian():
    s = HistogramSettings.tiny()
    fig, numbers = histograms(s)
    out = numbers["outputs"]["RELU"]
    one, many = out[str(s.heads[0])], out[str(s.heads[-1])]
    for law in ("finite", "law"):
        assert one[law]["excess_kurtosis"] - 2 * one[law]["excess_kurtosis_se"] > 0
        assert one[law]["excess_kurtosis"] > many[law]["excess_kurtosis"]
    for entry in (one, many):  # the finite-head law's variance is the GP's for every H
        var, gp = entry["law"]["variance"], entry["gp_variance"]
        se = gp * math.sqrt((2 + max(entry["law"]["excess_kurtosis"], 0)) / (s.draws - 1))
        assert abs(var - gp) < 4 * se
    assert len(fig.axes) == len(s.mechanisms) * len(s.heads)


def test_kurtosis_falls_with_heads_but_not_with_width():
    s = KurtosisSettings.tiny()
    _, numbers = kurtosis(s)
    assert numbers["slope"] < 0
    for m in [*numbers["kurtosis_by_width"], numbers["law_kurtosis"]]:
        assert m["excess_kurtosis"] - 2 * m["excess_kurtosis_se"] > 0


def test_kernels_converge_with_width_and_untied_attention_collapses():
    s = ConvergenceSettings.tiny()
    _, numbers = convergence(s)
    width = numbers["width"]
    assert width[-1]["rel_fro"] < width[0]["rel_fro"] / 2  # closer at the larger key width
    heads = numbers["heads"]
    assert heads[-1]["rel_noise"] < heads[0]["rel_noise"]  # one network is closer with heads
    c = numbers["collapse"]
    assert c["distance"][-1] < c["distance"][0] / 2
    assert abs(c["slope"] + 0.5) < 0.15


def test_positional_embeddings_and_depth_shape_the_spectrum():
    _, numbers = positional(PositionalSettings.tiny())
    for ranks in numbers["effective_rank"].values():
        assert ranks["SUM"][0] > ranks["NONE"][0]  # positions add structure
        for r in ranks.values():
            assert r[-1] < r[0]  # depth drives the kernel towards rank one


def test_positional_same_seed_same_numbers():
    s = PositionalSettings.tiny(pos_embs=("SUM",), layernorms=(True,), depths=(1,))
    a, b = positional(s)[1], positional(s)[1]
    c = positional(
        PositionalSettings.tiny(pos_embs=("SUM",), layernorms=(True,), depths=(1,), seed=1)
    )[1]
    assert a == b and a != c


def test_accuracy_in_range_and_attention_learns():
    s = AccuracySettings.tiny()
    _, numbers = accuracy(s)
    chance = numbers["chance"]["digits"]
    for arch, acc in numbers["accuracy"]["digits"].items():
        for kind in ("nngp", "ntk"):
            assert all(0.0 <= a <= 1.0 for a in acc[kind]), arch
            assert acc[kind][-1] >= acc[kind][0], arch  # more data, no worse
    assert numbers["accuracy"]["digits"]["attn-pe"]["ntk"][-1] > chance + 0.4


def test_accuracy_refuses_a_folder_without_archives(tmp_path):
    with pytest.raises(FileNotFoundError, match="data: expected"):
        accuracy(AccuracySettings.tiny(data=str(tmp_path)))


def test_ntk_predicts_training_and_the_gap_closes_with_width():
    s = TrainingSettings.tiny()
    _, numbers = training(s)
    gaps = [numbers["max_gap"][str(w)] for w in s.widths]
    assert gaps[-1] < gaps[0]
    ntk = np.asarray(numbers["ntk_test_loss"])
    wide = np.asarray(numbers["test_loss"][str(s.widths[-1])])
    assert ntk[-1] < ntk[0] and wide[-1] < wide[0]
    assert abs(wide[-1] - ntk[-1]) < 0.5 * (ntk[0] - ntk[-1])
