"""``kernel_fn(..., diagonal_batch=..., diagonal_spatial=...)``: the diagonals of the full
kernel, computed without it where the model allows (parity with neural-tangents:
``tests/reference/empirical_grid.py``)."""

from __future__ import annotations

import math

import jax
import jax.extend
import numpy as np
import pytest

from infattn import stax

RNG = np.random.default_rng(0)
X1, X2 = RNG.standard_normal((4, 5, 3)), RNG.standard_normal((2, 5, 3))
X1M, X2M = X1.copy(), X2.copy()
X1M[1, 3:], X2M[0, 4:] = -2.5, -2.5
FIELDS = ("nngp", "ntk", "cov1", "cov2")


def residual():
    branch = stax.serial(stax.Erf(), stax.Dense(4))
    return stax.serial(
        stax.Dense(4),
        stax.FanOut(2),
        stax.parallel(stax.Identity(), branch),
        stax.FanInSum(),
        stax.LayerNorm(),
        stax.Gelu(),
        stax.Dense(2),
    )


NETS = {
    "mlp_dropout": lambda: stax.serial(
        stax.Dense(4, b_std=0.1), stax.Relu(), stax.Dropout(0.6), stax.Dense(2)
    ),
    "residual_layernorm": residual,
    "concat_prod": lambda: stax.serial(
        stax.Dense(4),
        stax.FanOut(3),
        stax.parallel(stax.Sin(), stax.Dense(3), stax.Identity()),
        stax.FanInConcat(),
        stax.Dense(3),
        stax.FanOut(2),
        stax.parallel(stax.Dense(3), stax.Dense(3)),
        stax.FanInProd(),
    ),
    "repeat": lambda: stax.serial(
        stax.Dense(3), stax.repeat(stax.serial(stax.Dense(3), stax.Relu()), 2)
    ),
    "attention": lambda: stax.serial(
        stax.Dense(4), stax.GlobalSelfAttention(4, 4, 4, 2), stax.Dense(2)
    ),
    "conv": lambda: stax.serial(stax.Conv(4, (2,), padding="SAME"), stax.Relu()),
}


def full_diagonals(k, diagonal_batch: bool) -> dict[str, np.ndarray | None]:
    """The spatial diagonals of a full kernel's fields."""
    out = {}
    for f in FIELDS:
        v = getattr(k, f)
        lead = 1 if f.startswith("cov") and diagonal_batch else 2
        out[f] = None if v is None else np.diagonal(v, axis1=lead, axis2=lead + 1)
    return out


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("masked", [False, True])
def test_diagonal_spatial_is_the_full_kernels_diagonal(net: str, masked: bool) -> None:
    # 1e-7: Relu's arc-cosine turns a rounding error eps of a correlation near 1 (an
    # example with itself) into sqrt(eps); the two summation orders differ by that much
    _, _, kernel_fn = NETS[net]()
    mc = -2.5 if masked else None
    x1, x2 = (X1M, X2M) if masked else (X1, X2)
    jitted = jax.jit(kernel_fn, static_argnames=("get", "diagonal_batch", "diagonal_spatial"))
    for b in (None, x2):
        for batch in (True, False):
            full = full_diagonals(
                kernel_fn(x1, b, FIELDS, mask_constant=mc, diagonal_batch=batch), batch
            )
            for fn in (kernel_fn, jitted):
                k = fn(x1, b, FIELDS, mask_constant=mc, diagonal_batch=batch, diagonal_spatial=True)
                for f in FIELDS:
                    if full[f] is None:
                        assert getattr(k, f) is None
                    else:
                        np.testing.assert_allclose(getattr(k, f), full[f], rtol=1e-7, atol=1e-12)


def test_positionwise_flags() -> None:
    for net in ("mlp_dropout", "residual_layernorm", "concat_prod", "repeat"):
        assert NETS[net]()[2].layer.positionwise, net
    not_positionwise = [
        NETS["attention"](),
        NETS["conv"](),
        stax.AvgPool((2,)),
        stax.GlobalAvgPool(),
        stax.Flatten(),
        stax.LayerNorm(axis=(1, 2)),
        stax.FanInConcat(axis=1),
        stax.serial(stax.Dense(2), stax.Flatten()),
    ]
    assert not any(layer[2].layer.positionwise for layer in not_positionwise)


def _shapes(jaxpr: jax.extend.core.Jaxpr) -> list[tuple[int, ...]]:
    """Shapes of every array a jaxpr (and its sub-jaxprs) creates."""
    out = [tuple(v.aval.shape) for e in jaxpr.eqns for v in e.outvars]
    for e in jaxpr.eqns:
        for p in e.params.values():
            inner = getattr(p, "jaxpr", p)
            if isinstance(inner, jax.extend.core.Jaxpr):
                out += _shapes(inner)
    return out


def test_diagonal_spatial_never_forms_location_pairs() -> None:
    """Position-wise models: O(N1 N2 L) memory, not O(N1 N2 L^2)."""
    length = 64
    x1 = RNG.standard_normal((3, length, 2))
    x2 = RNG.standard_normal((2, length, 2))
    _, _, kernel_fn = residual()

    def largest(**kw):
        fn = lambda a, b: kernel_fn(a, b, FIELDS, **kw)  # noqa: E731
        return max(math.prod(s) for s in _shapes(jax.make_jaxpr(fn)(x1, x2).jaxpr))

    assert largest(diagonal_spatial=True) <= 3 * 3 * length * 4  # (N1, N1, L) and widths
    assert largest(diagonal_spatial=False) >= 3 * 2 * length**2


def test_diagonal_batch_keeps_examples_apart() -> None:
    """``cov1`` pairs each example with itself only: no ``(N1, N1, ...)`` array with x2."""
    n1, n2, length = 7, 3, 5
    x1 = RNG.standard_normal((n1, length, 2))
    x2 = RNG.standard_normal((n2, length, 2))
    _, _, kernel_fn = residual()
    jaxpr = jax.make_jaxpr(lambda a, b: kernel_fn(a, b, FIELDS))(x1, x2).jaxpr

    assert not [s for s in _shapes(jaxpr) if s[:2] == (n1, n1)]
    k = kernel_fn(x1, x2, FIELDS)
    assert k.cov1.shape == (n1, length, length) and k.nngp.shape == (n1, n2, length, length)


@pytest.mark.parametrize(
    ("after", "diagonal"),
    [
        (lambda: stax.DotGeneral(), False),  # NT's requirement; NT's own kernel is NaN here
        (lambda: stax.DotGeneral(rhs=2.0), False),
        (lambda: stax.Relu(), False),
        (lambda: stax.Identity(), True),
        (lambda: stax.Aggregate(), False),
    ],
)
def test_spatially_diagonal_outputs_follow_the_layer_rules(after, diagonal: bool) -> None:
    """A network ending in ConvLocal then ``after``: diagonal outputs as neural-tangents decides."""
    _, _, kernel_fn = stax.serial(stax.Dense(3), stax.ConvLocal(2, (2,)), after())
    nngp = kernel_fn(X1, X2, "nngp")
    assert nngp.shape == ((4, 2, 4) if diagonal else (4, 2, 4, 4))


@pytest.mark.parametrize(
    "net",
    [
        lambda: stax.serial(
            stax.Conv(4, (3,), padding="SAME"),
            stax.Relu(),
            stax.Conv(3, (2,), strides=(2,), padding="CIRCULAR", b_std=0.1),
            stax.LayerNorm(),
            stax.Flatten(),
            stax.Dense(2),
        ),
        lambda: stax.serial(  # spatially diagonal outputs by default (neural-tangents' rule)
            stax.Dense(3), stax.Conv(3, (2,), padding="SAME"), stax.Erf(), stax.ConvLocal(2, (3,))
        ),
    ],
)
def test_convolutions_keep_only_diagonals(net) -> None:
    """Conv, ConvLocal and Flatten on diagonals: no (N1, N2, L, L) array, same values."""
    length = 48
    x1, x2 = RNG.standard_normal((3, length, 2)), RNG.standard_normal((2, length, 2))
    _, _, kernel_fn = net()

    def largest(**kw):
        fn = lambda a, b: kernel_fn(a, b, FIELDS, **kw)  # noqa: E731
        return max(math.prod(s) for s in _shapes(jax.make_jaxpr(fn)(x1, x2).jaxpr))

    assert largest(diagonal_spatial=True) <= 3 * 3 * length * 4
    assert largest(diagonal_spatial=False) >= 3 * 2 * length**2
    diag = kernel_fn(x1, x2, FIELDS, diagonal_spatial=True)
    full = kernel_fn(x1, x2, FIELDS, diagonal_spatial=False)
    spatial = full.nngp.ndim > 2
    for f in FIELDS:
        lead = 1 if f.startswith("cov") else 2
        expected = np.diagonal(getattr(full, f), 0, lead, lead + 1) if spatial else getattr(full, f)
        np.testing.assert_allclose(getattr(diag, f), expected, rtol=1e-6, atol=1e-9)
