"""``infattn figures``: files per figure, an index, and unknown names refused."""

import json

from infattn.cli import main
from infattn.figures.positional import PositionalSettings


def test_writes_png_pdf_json_and_index(tmp_path, monkeypatch):
    monkeypatch.setattr(PositionalSettings, "QUICK", PositionalSettings.TINY)
    rc = main(["figures", "--out", str(tmp_path), "--quick", "--only", "positional", "--quiet"])
    assert rc == 0
    for suffix in ("png", "pdf", "json"):
        assert (tmp_path / f"positional.{suffix}").stat().st_size > 0
    sidecar = json.loads((tmp_path / "positional.json").read_text())
    assert sidecar["seed"] == 0 and sidecar["preset"] == "quick"
    assert {"jax", "numpy", "infattn"} <= set(sidecar["versions"])
    assert sidecar["settings"]["depths"] == list(PositionalSettings.TINY["depths"])
    assert sidecar["numbers"]["effective_rank"]
    index = (tmp_path / "index.md").read_text()
    assert "## positional" in index and sidecar["caption"] in index
    assert "## kurtosis" not in index


def test_unknown_figure_lists_the_known_ones(tmp_path, capsys):
    assert main(["figures", "--out", str(tmp_path), "--only", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown figure 'nope'" in err and "histograms" in err and "training" in err
    assert not any(tmp_path.iterdir())


def test_ctrl_c_keeps_the_finished_figures(tmp_path, monkeypatch, capsys):
    import infattn.figures.training

    def interrupted(settings, *, progress=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(PositionalSettings, "QUICK", PositionalSettings.TINY)
    monkeypatch.setattr(infattn.figures.training, "training", interrupted)
    argv = ["figures", "--out", str(tmp_path), "--quick", "--quiet"]
    rc = main([*argv, "--only", "positional", "--only", "training"])
    assert rc == 130 and "interrupted during training" in capsys.readouterr().err
    assert (tmp_path / "positional.png").is_file() and not (tmp_path / "training.png").exists()
    assert "## positional" in (tmp_path / "index.md").read_text()
