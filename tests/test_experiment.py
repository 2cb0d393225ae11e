"""``infattn experiment``: table, JSON keys, errors that say what to do; the runner's kernels."""

import json

import jax
import numpy as np
import pytest

from infattn import architectures, cli, experiments
from infattn.data import trend_sequences


def test_list_names_every_architecture(capsys):
    assert cli.main(["experiment", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in architectures.ARCHITECTURES)


def test_unknown_architecture_lists_the_known_ones(capsys):
    assert cli.main(["experiment", "synthetic", "--arch", "nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "fc3" in err and "transformer" in err


def test_missing_archive_names_the_path(tmp_path, capsys):
    path = tmp_path / "cifar-10-python.tar.gz"
    assert cli.main(["experiment", "cifar10", "--arch", "fc3", "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err


def test_synthetic_table_and_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    argv = ["experiment", "synthetic", "--arch", "attn", "--n-train", "24", "--n-test", "16",
            "--json", str(out), "--quiet"]  # fmt: skip
    assert cli.main(argv) == 0
    table = capsys.readouterr().out
    assert "attn" in table and "NTK acc" in table
    written = json.loads(out.read_text())
    assert written["dataset"] == "synthetic" and written["complete"] is True
    (row,) = written["results"]
    assert row["architecture"] == "attn" and row["n_train"] == 24 and row["n_test"] == 16
    for kernel in ("nngp", "ntk"):
        assert 0.0 <= row[kernel]["test_accuracy"] <= 1.0 and row[kernel]["test_mse"] > 0
    assert row["dtype"] == "float32" and row["kernel_seconds"] > 0


def test_blocks_match_the_whole_kernel_with_masking():
    d = trend_sequences(n_train=7, n_test=5, min_length=2, max_length=5)
    _, _, kernel_fn = architectures.get("attn-pe").build(1, 2, 8)
    whole = kernel_fn(d.x_test, d.x_train, ("nngp", "ntk"), mask_constant=d.mask_constant)
    blocks = experiments.kernel_blocks(
        kernel_fn, d.x_test, d.x_train, mask_constant=d.mask_constant, block=2, progress=False
    )
    for g in ("nngp", "ntk"):
        np.testing.assert_allclose(blocks[g], getattr(whole, g), rtol=1e-5, atol=1e-6)


def test_blocks_of_monte_carlo_models_run_untraced_so_ctrl_c_reaches_the_sampler():
    _, _, kernel_fn = architectures.get("attn-sqrt").build(1, 2, 8)
    seen = []

    def spy(a, c, get, mask_constant=None):
        seen.append(isinstance(a, jax.core.Tracer))
        return kernel_fn(a, c, get, mask_constant=mask_constant)

    spy.layer = kernel_fn.layer
    x = np.random.default_rng(0).standard_normal((3, 4, 2)).astype(np.float32)
    experiments.kernel_blocks(spy, x, block=2, progress=False)
    assert seen == [False, False, False]  # three blocks of the upper triangle, all concrete


@pytest.mark.parametrize("name", list(architectures.ARCHITECTURES))
def test_every_architecture_builds_for_images_and_sequences(name):
    for x in (np.ones((2, 3, 3, 1)), np.ones((2, 4, 3))):
        _, _, kernel_fn = architectures.get(name).build(x.ndim - 2, 2)
        k = kernel_fn(x, None, "nngp")
        assert k.shape == (2, 2) and np.all(np.isfinite(k))
