"""Index/Slice, DotGeneral and unmask_fn: finite layers, masks, jit, wide networks, errors.

Parity with neural-tangents lives in ``tests/reference`` (cases ``index_*`` and
``dotgen_*``); here: ``apply_fn`` against numpy indexing and ``lax.dot_general``
(neural-tangents' definitions), ``jit`` against eager kernels on those cases, Monte
Carlo of a wide network against the kernel, masks and errors.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infattn import stax
from infattn.empirical import monte_carlo_kernel_fn
from infattn.stax.layer import parts_of
from tests.reference import grid

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4, 3))
IMAGES = RNG.standard_normal((2, 3, 4, 5))
KEY = jax.random.PRNGKey(0)

DOT_CASES = [
    ({"rhs": 2.0}, None),
    ({"rhs": RNG.standard_normal(3)}, (((1,), (0,)), ((), ()))),
    ({"lhs": RNG.standard_normal((2, 3))}, (((1,), (1,)), ((), ()))),
    ({"rhs": RNG.standard_normal((4, 2))}, (((-2,), (0,)), ((), ()))),
    ({"rhs": RNG.standard_normal((3, 2))}, (((), ()), ((1,), (0,)))),
    ({"lhs": RNG.standard_normal(2)}, (((), ()), ((), ()))),
    ({"rhs": RNG.standard_normal((2, 3))}, (((), ()), ((0,), (0,)))),  # one slice per example
    ({"lhs": RNG.standard_normal((4, 2, 3))}, (((2,), (1,)), ((1,), (0,)))),
]


@pytest.mark.parametrize(
    ("idx", "axes"),
    [
        (stax.Slice[::2, 1:], (0, -1)),
        (stax.Slice[:, 0, ...], (0, -1)),
        (stax.Slice[..., ::-1, :], (0, -1)),
        (stax.Slice[:, 1:3, :, 2], (0, 1)),  # NCHW: channels 1:3, height all, width 2
        (stax.Slice[1, ::2], (3, 1)),  # HCWN
    ],
)
def test_index_apply_is_numpy_indexing(idx, axes):
    init_fn, apply_fn, _ = stax.Index(idx, batch_axis=axes[0], channel_axis=axes[1])
    out_shape, params = init_fn(KEY, IMAGES.shape)
    y = apply_fn(params, IMAGES)
    np.testing.assert_array_equal(y, IMAGES[idx])
    assert out_shape == IMAGES[idx].shape


@pytest.mark.parametrize(("kwargs", "dims"), DOT_CASES)
def test_dot_general_apply_is_lax_dot_general(kwargs, dims):
    dims = (((), ()), ((), ())) if dims is None else dims
    init_fn, apply_fn, _ = stax.DotGeneral(**kwargs, dimension_numbers=dims)
    out_shape, params = init_fn(KEY, IMAGES.shape)
    x = jnp.asarray(IMAGES)
    lax_dims = jax.tree_util.tree_map(lambda d: d % x.ndim, dims)  # lax takes no negative axes
    if "rhs" in kwargs:
        expected = jax.lax.dot_general(x, jnp.asarray(kwargs["rhs"], x.dtype), lax_dims)
    else:
        expected = jax.lax.dot_general(jnp.asarray(kwargs["lhs"], x.dtype), x, lax_dims)
    np.testing.assert_allclose(apply_fn(params, IMAGES), expected, rtol=1e-5, atol=1e-6)
    assert out_shape == expected.shape


@pytest.mark.parametrize(
    "name",
    ["index_img_batch_row__x12_masked", "index_nchw__x12", "dotgen_lhs_mix_h__x12_masked"],
)
def test_jit_kernel_equals_eager(name):
    case = grid.get_case(name)
    x1, x2 = case.inputs()
    _, _, kernel_fn = case.build(stax)
    get = ("nngp", "ntk", "cov1")
    eager = kernel_fn(x1, x2, get, mask_constant=case.mask_constant)
    traced = jax.jit(kernel_fn, static_argnames="get")(
        x1, x2, get, mask_constant=case.mask_constant
    )
    for a, b in zip(eager, traced, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["nngp", "ntk"])
def test_wide_network_matches_kernel(kind):
    layers = stax.serial(
        stax.Dense(256, b_std=0.2),
        stax.Relu(),
        stax.Index(stax.Slice[:, 1:]),
        stax.Dense(256),
        stax.DotGeneral(rhs=np.array([1.0, -0.5, 2.0]), dimension_numbers=(((1,), (0,)), ((), ()))),
        stax.Relu(),
        stax.Dense(256),
    )
    init_fn, apply_fn, kernel_fn = layers
    exact = np.asarray(kernel_fn(X, None, kind))
    est = monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(3), 32)(
        X, None, kind, return_se=True
    )
    err = np.linalg.norm(np.asarray(est.mean(kind)) - exact) / np.linalg.norm(exact)
    se = np.linalg.norm(est.se(kind)) / np.linalg.norm(exact)
    assert err < 0.1, f"{kind}: relative error {err:.3f} (MC SE {se:.3f})"


def test_masks_follow_the_index_and_the_contraction():
    x = RNG.standard_normal((2, 3, 4, 2))
    x[0, 2] = 9.0  # the last row of example 0 is padding
    x[1, :, 3] = 9.0  # the last column of example 1
    _, apply_fn, kernel_fn = stax.Index(stax.Slice[:, 1:, ::-1])
    out = apply_fn((), x, mask_constant=9.0)
    np.testing.assert_array_equal(out.mask, (np.all(x == 9.0, axis=-1))[:, 1:, ::-1])
    np.testing.assert_array_equal(kernel_fn(x, get="mask1", mask_constant=9.0), out.mask)
    # summing the rows: a column is padding only where all its rows are
    rows = stax.DotGeneral(rhs=np.ones(3), dimension_numbers=(((1,), (0,)), ((), ())))
    out = rows[1]((), x, mask_constant=9.0)
    np.testing.assert_array_equal(out.mask, [[False] * 4, [False, False, False, True]])
    # a zero weight on the only unpadded row pads the column
    first_zero = stax.DotGeneral(
        rhs=np.array([0.0, 1.0, 1.0]), dimension_numbers=(((1,), (0,)), ((), ()))
    )
    x[0, 1] = 9.0
    assert first_zero[1]((), x, mask_constant=9.0).mask[0].all()


def test_batch_index_is_never_tiled():
    assert not parts_of(stax.Index(stax.Slice[::2])).pairwise
    assert not parts_of(stax.Index(stax.Slice[..., 1:, :], batch_axis=1)).pairwise
    assert parts_of(stax.Index(stax.Slice[:, 1:])).pairwise
    assert parts_of(stax.Index(stax.Slice[:, ..., 1:, :])).pairwise
    # with 2-D inputs `...` is empty and 1: would select examples
    assert not parts_of(stax.Index(stax.Slice[..., 1:, :])).pairwise


def test_unmask_fn_zeroes_padding():
    init_fn, apply_fn, _ = stax.serial(stax.Dense(3, b_std=1.0), stax.Relu())
    _, params = init_fn(KEY, X.shape)
    x = X.copy()
    x[1, 2:] = np.nan
    out = apply_fn(params, x, mask_constant=np.nan)
    y = stax.unmask_fn(apply_fn)(params, x, mask_constant=np.nan)
    np.testing.assert_array_equal(y[1, 2:], 0.0)
    np.testing.assert_array_equal(y[0], out.masked_value[0])
    np.testing.assert_array_equal(stax.unmask_fn(apply_fn)(params, X), apply_fn(params, X))
    pair = stax.unmask_fn(lambda: [out, stax.MaskedArray(out.masked_value, out.mask[..., None])])()
    np.testing.assert_array_equal(pair[0], pair[1])
    with pytest.raises(ValueError, match="does not fit"):
        stax.unmask_fn(lambda: stax.MaskedArray(jnp.ones((2, 3)), jnp.ones((3,), bool)))()


def test_batch_pairing_maps_each_example_by_its_slice():
    """Each example's kernel entries are those of its own constant slice; never tiled."""
    c = RNG.standard_normal((3, 2))
    pair = stax.DotGeneral(rhs=c, dimension_numbers=(((), ()), ((0,), (0,))))
    assert not parts_of(pair).pairwise
    dense = stax.Dense(3)
    nngp = stax.serial(dense, pair)[2](X, None, "nngp")  # (N, N, L, L, 2, 2)
    base = dense[2](X, None, "nngp")  # (N, N, L, L)
    np.testing.assert_allclose(nngp, np.einsum("ijab,ip,jq->ijabpq", base, c, c), rtol=1e-6)
    with pytest.raises(ValueError, match="as many examples"):
        pair[2](X, X[:2])


def test_errors():
    with pytest.raises(ValueError, match="idx: Index expects integers"):
        stax.Index((slice(None), None))
    with pytest.raises(ValueError, match="does not fit"):
        stax.Index(stax.Slice[:, :, :, 0])[0](KEY, X.shape)
    for idx, axis in ((stax.Slice[0], "batch"), (stax.Slice[..., 0], "channel")):
        with pytest.raises(NotImplementedError, match=f"the {axis} axis"):
            stax.Index(idx)[2](X)
    # channels can be sliced in a finite network, not in the kernel
    _, apply_fn, kernel_fn = stax.Index(stax.Slice[..., :2])
    assert apply_fn((), X).shape == (3, 4, 2)
    with pytest.raises(NotImplementedError, match="channel axis"):
        kernel_fn(X)
    with pytest.raises(ValueError, match="at most one constant"):
        stax.DotGeneral(lhs=1.0, rhs=1.0)
    for dims, axis in (
        (((((2,), (0,)), ((), ()))), "channel_axis"),
        ((((0,), (0,)), ((), ())), "contract the inputs' batch_axis"),
        ((((), ()), ((2,), (0,))), "channel_axis"),
    ):
        with pytest.raises(NotImplementedError, match=axis):
            stax.DotGeneral(rhs=np.ones(3), dimension_numbers=dims)[2](X)
    with pytest.raises(ValueError, match="does not fit inputs"):
        stax.DotGeneral(rhs=np.ones(5), dimension_numbers=(((1,), (0,)), ((), ())))[2](X)
    with pytest.raises(ValueError, match="pair up"):
        stax.DotGeneral(rhs=np.ones(4), dimension_numbers=(((1,), ()), ((), ())))[2](X)


def test_unmask_fn_refuses_channels_first_masked_outputs():
    """Masks are (N, *spatial): a channels-first output could be zeroed on the wrong
    axis when sizes coincide, so it raises instead (unmasked outputs pass)."""
    _, apply_fn, _ = stax.Dense(3, batch_axis=0, channel_axis=1)
    init_fn = stax.Dense(3, batch_axis=0, channel_axis=1)[0]
    _, params = init_fn(jax.random.PRNGKey(0), (3, 3, 3))
    x = np.ones((3, 3, 3))
    x[0, :, 2] = 7.0  # example 0, last position padded (channels on axis 1)
    with pytest.raises(NotImplementedError, match="channel_axis=1"):
        stax.unmask_fn(apply_fn)(params, x, mask_constant=7.0)
    assert stax.unmask_fn(apply_fn)(params, x).shape == (3, 3, 3)
