"""Explorer configuration: validation, the model it builds, and the code it prints."""

import numpy as np
import pytest

from infattn.explore import code, model
from infattn.explore.model import Config

TINY = {"width": 8, "n_inputs": 3, "seq_len": 4}


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"scaling": "1/d untied", "pos_emb": "CONCAT", "decay": "gaussian", "val_pos_emb": True},
        {"depth": 2, "layernorm": False, "residual": False, "nonlinearity": "erf"},
        {"pos_emb": "NONE", "mechanism": "RELU", "nonlinearity": "none", "dtype": "float64"},
        {"scaling": "1/sqrt(d)", "mechanism": "IDENTITY", "pos_std": 0.5, "decay_length": 4.0},
    ],
)
def test_shown_code_builds_the_same_model_and_inputs(changes):
    cfg = Config(**TINY, **changes)
    namespace = {}
    exec(model.model_code(cfg), namespace)
    x = model.make_inputs(cfg)
    np.testing.assert_array_equal(namespace["x"], x)
    expected = model.build_model(cfg)[2](x, None, ("nngp", "ntk"))
    got = namespace["kernel_fn"](x, None, ("nngp", "ntk"))
    for kind in ("nngp", "ntk"):
        np.testing.assert_array_equal(getattr(got, kind), getattr(expected, kind))


def test_factory_code_follows_heads_and_width():
    cfg = Config(**TINY)
    namespace = {}
    exec(model.model_code(cfg) + code.factory_code(cfg), namespace)
    init_fn = namespace["factory"](2, 16)[0]
    _, params = init_fn(__import__("jax").random.PRNGKey(0), (3, 4, 4))
    shapes = {p.shape for p in __import__("jax").tree_util.tree_leaves(params)}
    assert (2, 16, 16) in shapes  # attention weights: (heads, width, width)


@pytest.mark.parametrize(
    ("field", "value"),
    [("heads", 0), ("scaling", "1/d^2"), ("draws", 2), ("decay_length", 0.0), ("inputs", "x")],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        Config(**{field: value})


def test_decay_families_are_correlations_that_decay():
    d2 = np.arange(6.0) ** 2
    for family in model.DECAY_FAMILIES[:-1]:
        r = model.Decay(family, 2.0)(d2)
        assert r[0] == 1.0 and np.all(np.diff(r) < 0), family


def test_digit_patches_reassemble_the_images():
    pytest.importorskip("sklearn")
    rows = model.make_inputs(Config(inputs="digits rows", n_inputs=2))
    patches = model.make_inputs(Config(inputs="digits patches", n_inputs=2))
    assert rows.shape == (2, 8, 8) and patches.shape == (2, 16, 4)
    # patch (i, j) holds pixels 2i..2i+1, 2j..2j+1
    np.testing.assert_array_equal(patches[0, 4 * 1 + 2].reshape(2, 2), rows[0, 2:4, 4:6])


def test_fast_mode_shrinks_the_defaults(monkeypatch):
    monkeypatch.setenv("INFATTN_FAST", "1")
    small = Config.default()
    monkeypatch.setenv("INFATTN_FAST", "0")
    assert small.draws < Config.default().draws and small.width < Config.default().width
