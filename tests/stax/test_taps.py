"""Parameter taps: the NTK from Grams of inputs and cotangents equals the Jacobian NTK.

Three levels: the two tapped operations against explicit per-example gradients;
whole ``infattn.stax`` models, where ``monte_carlo_kernel_fn`` with taps
(``implementation=3``) must equal the Jacobian contraction (``implementation=1``)
draw by draw in float64; and the rule deciding when taps apply.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infattn import stax
from infattn.empirical import Strategy, monte_carlo_kernel_fn, ntk_strategy
from infattn.stax import taps

KEY = jax.random.PRNGKey(3)


def _x(shape: tuple[int, ...], seed: int = 0) -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(seed), shape)


def _explicit_gram(op, w: jax.Array, split: int | None) -> np.ndarray:
    """``<d sum(op(w)[a]) / dw, d sum(op(w)[b]) / dw>`` from per-example gradients."""
    n = op(w).shape[0]
    grads = jnp.stack([jax.grad(lambda v, a=a: jnp.sum(op(v)[a]))(w).ravel() for a in range(n)])
    a, b = (grads, grads) if split is None else (grads[:split], grads[split:])
    return np.asarray(a @ b.T)


def _tapped_gram(op, w: jax.Array, shape: tuple[int, int], split: int | None) -> np.ndarray:
    def f(acc):
        return op(taps.Tap(w, acc, split))

    out, pullback = jax.vjp(f, jnp.zeros(shape, w.dtype))
    return np.asarray(pullback(jnp.ones_like(out))[0])


@pytest.mark.parametrize("split", [None, 2])
@pytest.mark.parametrize(
    ("x_shape", "w_shape", "axes"),
    [
        ((5, 4, 3), (3, 6), 0),
        ((5, 2, 3, 3), (2, 3, 4), 1),
        ((5, 7, 24), (3, 8), (1, 0)),
        # few positions and wide weights: the per-example-gradient branch
        ((5, 1, 40), (40, 30), 0),
    ],
)
def test_tokenwise_gram_equals_per_example_gradients(x_shape, w_shape, axes, split) -> None:
    x, w = _x(x_shape), _x(w_shape, 1)
    plain = taps.tokenwise(x, w, axes)
    np.testing.assert_allclose(
        taps.tokenwise(x, taps.Tap(w, jnp.zeros((5, 5)), None), axes), plain, rtol=1e-12
    )
    # an elementwise nonlinearity after the op makes the cotangents position-dependent
    op = lambda v: jnp.tanh(taps.tokenwise(x, v, axes))  # noqa: E731
    n = x_shape[0]
    shape = (n, n) if split is None else (split, n - split)
    np.testing.assert_allclose(
        _tapped_gram(op, w, shape, split), _explicit_gram(op, w, split), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("split", [None, 1])
def test_per_example_gram_equals_per_example_gradients(split) -> None:
    x, b = _x((4, 3, 5)), _x((1, 3, 5), 1)
    assert taps.per_example(b, 4) is b
    op = lambda v: jnp.sin(x * taps.per_example(v, 4)) ** 2  # noqa: E731
    shape = (4, 4) if split is None else (split, 4 - split)
    np.testing.assert_allclose(
        _tapped_gram(op, b, shape, split), _explicit_gram(op, b, split), rtol=1e-10, atol=1e-12
    )


def _attention(**kw):
    base = dict(n_chan_out=6, n_chan_key=5, n_chan_val=4, n_heads=2)
    return stax.GlobalSelfAttention(**{**base, **kw})


MODELS = {
    "dense_ntk_and_standard": stax.serial(
        stax.Dense(7, W_std=1.3, b_std=0.4),
        stax.Erf(),
        stax.Dense(5, b_std=0.2, parameterization="standard", s=(2, 3)),
        stax.GlobalAvgPool(),
        stax.Dense(3),
    ),
    "conv": stax.serial(
        stax.Conv(5, (3,), padding="SAME", b_std=0.2),
        stax.Relu(),
        stax.Conv(4, (2,), strides=(2,), parameterization="standard"),
        stax.Flatten(),
        stax.Dense(2, b_std=0.1),
    ),
    "conv_transpose_local_resize": stax.serial(
        stax.ConvTranspose(4, (3,), strides=(2,), padding="SAME", b_std=0.2),
        stax.Relu(),
        stax.ConvLocal(3, (2,), strides=(2,), b_std=0.1, parameterization="standard"),
        stax.ImageResize((-1, 4, -1), "linear"),
        stax.Erf(),
        stax.ConvTranspose(3, (2,), strides=(3,), padding="CIRCULAR"),
        stax.ConvLocal(2, (3,), padding="CIRCULAR", b_std=0.3),
        stax.Flatten(),
        stax.Dense(2),
    ),
    "attention_variants": stax.serial(
        stax.Dense(6),
        _attention(pos_emb_type="CONCAT", val_pos_emb=True, b_std=0.3, n_chan_pos_emb=3),
        stax.LayerNorm(),
        stax.Gelu(),
        _attention(
            pos_emb_type="SUM",
            pos_emb_decay_fn=lambda d: 1 / (1 + d**2),
            linear_scaling=False,
            attention_mechanism="RELU",
        ),
        _attention(tie_query_key=True, attention_mechanism="IDENTITY"),
        stax.GlobalAvgPool(),
        stax.Dense(2),
    ),
    "residual_transformer": stax.serial(
        stax.Dense(6),
        stax.FanOut(2),
        stax.parallel(stax.Identity(), _attention(pos_emb_type="SUM")),
        stax.FanInSum(),
        stax.LayerNorm(),
        stax.FanOut(2),
        stax.parallel(stax.Identity(), stax.serial(stax.Dense(6), stax.Relu())),
        stax.FanInSum(),
        stax.GlobalAvgPool(),
        stax.Dense(1),
    ),
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("with_x2", [False, True])
def test_tapped_ntk_equals_jacobian_ntk(name: str, with_x2: bool) -> None:
    init_fn, apply_fn, _ = MODELS[name]
    x1 = _x((3, 6, 4))
    x2 = _x((2, 6, 4), 1) if with_x2 else None
    assert ntk_strategy(init_fn, apply_fn, x1, x2, implementation=3) is Strategy.TAPS
    est = {
        impl: monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 3, implementation=impl)(
            x1, x2, None, return_se=True
        )
        for impl in (1, 3)
    }
    for kind in ("nngp", "ntk"):
        np.testing.assert_allclose(est[3].mean(kind), est[1].mean(kind), rtol=1e-11)
        # equal means and standard errors: the draws agree one by one
        np.testing.assert_allclose(est[3].se(kind), est[1].se(kind), rtol=1e-8)


def test_tapped_ntk_of_2d_convolutions() -> None:
    init_fn, apply_fn, _ = stax.serial(
        stax.Conv(4, (3, 2), strides=(1, 2), padding="SAME", b_std=0.3),
        stax.Relu(),
        stax.Conv(3, (2, 2), parameterization="standard"),
        stax.GlobalAvgPool(),
        stax.Dense(2),
    )
    x1, x2 = _x((3, 5, 6, 2)), _x((2, 5, 6, 2), 1)
    out = {
        impl: monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 2, implementation=impl)(x1, x2)
        for impl in (1, 3)
    }
    np.testing.assert_allclose(out[3].ntk, out[1].ntk, rtol=1e-11)


def test_tapped_ntk_of_2d_transposed_and_local_convolutions() -> None:
    init_fn, apply_fn, _ = stax.serial(
        stax.ConvTranspose(3, (2, 3), strides=(2, 1), dimension_numbers=("NHWC", "OHWI", "NHWC")),
        stax.Relu(),
        stax.ConvLocal(
            3, (2, 2), padding="SAME", b_std=0.2, dimension_numbers=("NHWC", "IWHO", "NHWC")
        ),
        stax.GlobalAvgPool(),
        stax.Dense(2),
    )
    x1, x2 = _x((3, 3, 4, 2)), _x((2, 3, 4, 2), 1)
    out = {
        impl: monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 2, implementation=impl)(x1, x2)
        for impl in (1, 3)
    }
    np.testing.assert_allclose(out[3].ntk, out[1].ntk, rtol=1e-11)


def test_tapped_ntk_with_padding_and_diagonal() -> None:
    init_fn, apply_fn, _ = MODELS["attention_variants"]
    x = np.array(_x((3, 6, 4)))
    x[0, 4:] = x[2, 1:] = np.nan
    for kw in ({}, {"diagonal_axes": 0}):
        out = {
            impl: monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 2, implementation=impl, **kw)(
                x, None, "ntk", mask_constant=np.nan
            )
            for impl in (1, 0)
        }
        assert np.all(np.isfinite(out[0]))
        np.testing.assert_allclose(out[0], out[1], rtol=1e-11, err_msg=str(kw))


def test_taps_apply_only_where_exact() -> None:
    init_fn, apply_fn, _ = MODELS["dense_ntk_and_standard"]
    x1, get = _x((3, 6, 4)), ("nngp", "ntk")

    def tappable(x2=None, kw=None, trace=(-1,), impl=0, apply=apply_fn, diag=()):
        strategy = ntk_strategy(
            init_fn,
            apply,
            x1,
            x2,
            get,
            trace_axes=trace,
            diagonal_axes=diag,
            implementation=impl,
            **(kw or {}),
        )
        return strategy is Strategy.TAPS

    assert tappable() and tappable(impl=3) and tappable(diag=(0,))
    assert not tappable(impl=1) and not tappable(impl=2)
    assert not tappable(x2=_x((2, 5, 4)))  # other sequence length
    assert not tappable(x2=_x((2, 6, 4)), diag=(0,))  # a batch diagonal needs N1 == N2
    assert not tappable(x2=_x((2, 6, 4)), kw={"mask_constant": (0.0, 1.0)})
    assert not tappable(apply=lambda p, x, **k: apply_fn(p, x, **k))  # not an infattn model
    seq_init, seq_apply, _ = stax.serial(stax.Dense(4), _attention())
    # (N, L, C) outputs keep L
    assert ntk_strategy(seq_init, seq_apply, x1, None, get) is not Strategy.TAPS


def test_structured_falls_back_to_jacobians_for_sequence_outputs() -> None:
    init_fn, apply_fn, _ = stax.serial(stax.Dense(4), _attention())
    x = _x((2, 5, 4))
    out = {
        impl: monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 2, implementation=impl)(x)
        for impl in (1, 3)
    }
    assert out[3].ntk.shape == (2, 2, 5, 5)
    np.testing.assert_allclose(out[3].ntk, out[1].ntk, rtol=1e-12)


def test_tapped_estimates_do_not_depend_on_tiles_chunks_or_storage() -> None:
    init_fn, apply_fn, _ = MODELS["residual_transformer"]
    x1, x2 = _x((4, 6, 4)), _x((2, 6, 4), 1)
    ref = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 5, implementation=1)(
        x1, x2, None, return_se=True
    )
    for kw in (
        {"batch_size": 2},
        {"chunk_size": 2, "store_on_device": False},
        {"draws_in_parallel": 3},
    ):
        est = monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 5, **kw)(x1, x2, None, return_se=True)
        for kind in ("nngp", "ntk"):
            np.testing.assert_allclose(est.mean(kind), ref.mean(kind), rtol=1e-10, err_msg=str(kw))
            np.testing.assert_allclose(est.se(kind), ref.se(kind), rtol=1e-7, err_msg=str(kw))
