"""Aggregate: the finite layer by its definition, SPARSE against DENSE, jit, a wide network, errors.

Parity with neural-tangents lives in ``tests/reference`` (cases ``aggregate_*``).
"""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest

import infattn
from infattn import stax
from infattn.empirical import monte_carlo_kernel_fn
from infattn.stax.aggregate import edges_to_dense
from infattn.stax.layer import parts_of
from tests.reference import grid

RNG = np.random.default_rng(0)
KEY = jax.random.PRNGKey(0)
IMAGES = RNG.standard_normal((2, 3, 4, 2))
EDGES = np.stack([RNG.integers(0, s, size=(2, 20, 2)) for s in (3, 4)], axis=2)  # (N, E, K, 2)
EDGES[:, -2:, 1, 1] = -1  # padding edges: dropped


def sparse(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return stax.Aggregate(implementation="SPARSE", **kwargs)


def test_apply_sums_predecessors():
    """``y[n, head] = sum over edges (tail -> head) of x[n, tail]``, as a segment sum."""
    y = sparse()[1]((), IMAGES, pattern=EDGES)
    expected = np.zeros_like(IMAGES)
    for n in range(2):
        for tail, head in zip(EDGES[n, :, :, 0], EDGES[n, :, :, 1], strict=True):
            if np.all(head >= 0):
                expected[n, head[0], head[1]] += IMAGES[n, tail[0], tail[1]]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    dense = edges_to_dense(EDGES, (3, 4))
    np.testing.assert_allclose(stax.Aggregate()[1]((), IMAGES, pattern=dense), y, rtol=1e-5)
    # a graph on the width only: each row separately
    rows = stax.Aggregate(aggregate_axis=2)[1]((), IMAGES, pattern=dense[:, 0, :, 0, :])
    np.testing.assert_allclose(rows, np.einsum("nhwc,nwv->nhvc", IMAGES, dense[:, 0, :, 0]))
    np.testing.assert_array_equal(stax.Aggregate()[1]((), IMAGES), IMAGES)  # pattern=None


def test_sparse_kernel_equals_dense_kernel_after_conv():
    def model(agg):
        return stax.serial(stax.Conv(3, (2, 2), padding="SAME"), stax.Relu(), agg, stax.Flatten())

    dense = np.asarray(edges_to_dense(EDGES, (3, 4)))
    x2, e2 = IMAGES[:1] + 0.5, EDGES[:1]
    ks = model(sparse())[2](IMAGES, x2, ("nngp", "ntk"), pattern=(EDGES, e2))
    kd = model(stax.Aggregate())[2](IMAGES, x2, ("nngp", "ntk"), pattern=(dense, dense[:1]))
    for a, b in zip(ks, kd, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_jit_kernel_equals_eager():
    case = grid.get_case("aggregate_dense_img__x12_masked")
    x1, x2 = case.inputs()
    _, _, kernel_fn = case.build(stax)
    kw = case.kernel_kwargs()
    get = ("nngp", "ntk", "cov1")
    eager = kernel_fn(x1, x2, get, mask_constant=case.mask_constant, **kw)
    traced = jax.jit(kernel_fn, static_argnames="get")(
        x1, x2, get, mask_constant=case.mask_constant, **kw
    )
    for a, b in zip(eager, traced, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_wide_network_matches_kernel():
    x = RNG.standard_normal((3, 4, 3))
    pattern = RNG.standard_normal((3, 4, 4)) * (RNG.uniform(size=(3, 4, 4)) < 0.6)
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Dense(256, b_std=0.2), stax.Relu(), stax.Aggregate(), stax.Dense(256)
    )
    exact = np.asarray(kernel_fn(x, None, "nngp", pattern=(pattern, pattern)))
    mc = monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(3), 32)
    est = mc(x, None, "nngp", return_se=True, pattern=pattern)
    err = np.linalg.norm(np.asarray(est.mean("nngp")) - exact) / np.linalg.norm(exact)
    assert err < 0.1, f"relative error {err:.3f}"


def test_never_tiled_and_errors():
    assert not parts_of(stax.Aggregate()).pairwise
    _, _, kernel_fn = stax.Aggregate()
    x = IMAGES[..., :1]
    np.testing.assert_array_equal(kernel_fn(x, get="nngp"), stax.Identity()[2](x, get="nngp"))
    dense = np.ones((2, 3, 4, 3, 4))
    with pytest.raises(ValueError, match="pattern=\\(pattern1, pattern2\\)"):
        kernel_fn(IMAGES, pattern=dense)
    with pytest.raises(NotImplementedError, match="exactly one"):
        kernel_fn(IMAGES, pattern=(dense, None))
    with pytest.raises(ValueError, match="aggregate_axis"):
        stax.Aggregate(aggregate_axis=0)[2](IMAGES, pattern=(dense, dense))
    with pytest.raises(ValueError, match="n_edges, 2, 2"):
        sparse()[2](IMAGES, pattern=(EDGES[..., 0], EDGES[..., 0]))
    with pytest.raises(ValueError, match="implementation"):
        stax.Aggregate(implementation="SPARSEST")
    with pytest.raises(NotImplementedError, match="diagonal_batch"):
        kernel_fn(IMAGES, pattern=(dense, dense), diagonal_batch=False)


def test_batch_cuts_patterns_with_the_inputs():
    x = RNG.standard_normal((4, 3, 2))
    p = RNG.standard_normal((4, 3, 3))
    _, _, kernel_fn = stax.serial(stax.Dense(3), stax.Relu(), stax.Aggregate(), stax.Dense(2))
    whole = kernel_fn(x, None, ("nngp", "ntk"), pattern=(p, p))
    blocks = infattn.batch(kernel_fn, 2)(x, None, ("nngp", "ntk"), pattern=(p, p))
    for a, b in zip(whole, blocks, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
