"""``infattn kernels`` and ``infattn experiment --store``: the data sets and architectures of
``infattn experiment``, kernels through the resumable store."""

from __future__ import annotations

import jax
import numpy as np

from infattn import architectures, cli, experiments
from infattn.commands.experiment import load
from infattn.scale import KernelStore

SYNTHETIC = ["synthetic", "--n-train", "12", "--n-test", "6", "--quiet"]


def test_kernels_command_writes_resumes_and_refuses(tmp_path, capsys):
    out = tmp_path / "k"
    argv = ["kernels", *SYNTHETIC, "--out", str(out), "--tile-size", "5"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "attn-pe" in printed and "ntk/train_train" in printed  # the sequences' default
    store = KernelStore.open(out)
    assert store.manifest["description"].startswith(
        "infattn kernels synthetic-trend --arch attn-pe"
    )
    args = cli.build_parser().parse_args(argv)
    data = load(args)
    _, _, kernel_fn = architectures.get("attn-pe").build(1, data.y_train.shape[-1])
    x_train = np.asarray(data.x_train, np.float32)
    direct = jax.jit(lambda a: kernel_fn(a, None, "ntk", mask_constant=data.mask_constant))
    np.testing.assert_allclose(
        store.load("ntk", "train_train"), direct(x_train), rtol=2e-5, atol=1e-6
    )

    assert cli.main(argv) == 0  # finished: nothing left to do
    assert cli.main([*argv, "--arch", "attn"]) == 1
    assert "model fingerprint" in capsys.readouterr().err
    assert cli.main([*argv[:-1], "7"]) == 1  # another tile size
    assert "tile size: store 5, this call 7" in capsys.readouterr().err


def test_kernels_command_reports_bad_options(tmp_path, capsys):
    out = str(tmp_path / "k")
    assert cli.main(["kernels", *SYNTHETIC, "--out", out, "--memory-budget", "lots"]) == 2
    assert "memory size 'lots'" in capsys.readouterr().err
    assert cli.main(["kernels", *SYNTHETIC, "--out", out, "--arch", "nope"]) == 2
    assert "unknown architecture 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "k").exists()


def test_experiment_reads_its_kernels_from_a_store(tmp_path):
    args = cli.build_parser().parse_args(["experiment", *SYNTHETIC])
    data = load(args)
    direct = experiments.run(data, "attn", progress=False)
    stored = experiments.run(data, "attn", progress=False, store=tmp_path)
    (path,) = tmp_path.iterdir()
    assert path.name == "synthetic-trend-attn-float32-n12-m6"
    assert not KernelStore.open(path).pending()
    again = experiments.run(data, "attn", progress=False, store=tmp_path)  # read back
    for result in (stored, again):
        assert result.nngp.test_accuracy == direct.nngp.test_accuracy
        assert result.ntk.test_accuracy == direct.ntk.test_accuracy
        np.testing.assert_allclose(result.nngp.test_mse, direct.nngp.test_mse, rtol=1e-3)
