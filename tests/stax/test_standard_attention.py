"""Standard-scaling attention (``linear_scaling=False``) against finite networks.

``kernel_fn`` of ``GlobalSelfAttention(..., linear_scaling=False)`` (SOFTMAX, ABS,
RELU; Monte Carlo over the Gaussian logits, :mod:`infattn.logits`) is compared with
brute-force simulations of finite networks built from the same layer's
``init_fn``/``apply_fn``: key and value width 1024, 64 heads.

* Empirical NNGP of one draw: ``f(x) f(x')^T`` averaged over the output channels.
* Empirical NTK of one draw: ``J J^T / n_out`` with ``J = df/dparams`` over all the
  layer's parameters (``W^Q, W^K, W^V, W^O``, bias, positional embedding), formed as
  ``J (J^T e_m)`` with one VJP and one JVP per output (equal to ``jax.jacrev``'s
  ``J J^T``, without storing ``J``).

Each comparison is a z-test per entry with both standard errors combined (the
analytic side's SE is recomputed by calling :func:`infattn.logits.standard_attention_mc`
on the same inputs, after checking that ``kernel_fn`` equals ``ov^2 * estimate + b^2``),
at the 3-sigma family-wise level (Bonferroni over the entries compared); entries
touching masked positions are zero in the kernel by convention and are skipped.

Finite-width allowances (why these networks, see ``docs/standard-scaling.md``):

* The attention is the first layer, so the values' covariance ``V = x x^T / C`` is
  exact, and the NNGP is exact in expectation for any number of heads and any value
  width. The key width ``d`` enters only through the non-Gaussianity of
  ``G = Q K^T / sqrt(d)`` (fourth cumulant ``6 / d``): an ``O(1/d)`` bias, about 1e-3
  relative at ``d = 1024``, below the standard errors here (about 1e-2).
* The NTK of one finite draw fluctuates by ``O(d^-1/2)`` and ``O(H^-1/2)``; averaging
  draws handles that, and its mean has the same ``O(1/d)`` bias.
* With a SUM positional embedding ``P`` (a parameter with ``C`` channels) the keys see
  the realised ``(x + P)(x + P)^T / C``, which scatters around ``S = x x^T / C + R`` by
  ``O(C^-1/2)``; through the nonlinear attention this is an ``O(1/C)`` bias. Those
  cases use ``C = 16`` channels (4 otherwise) and ``W_pos_emb_std = 0.5``, and the
  comparison adds an allowance of ``w_pe / C = 0.25 / 16`` (1.6%) of each entry's
  natural scale ``sqrt(K_aa(x,x) K_bb(x',x'))`` to the 3-SE tolerance. Measured
  without it the SUM cases also pass (max |z| 1.6-3.2 against a threshold of 4.0).

Standard errors of the empirical means (relative to that scale, worst entry):
about 2-4% for the NNGP (256 draws x 8 output channels) and 2-6% for the NTK (48
draws); those of ``kernel_fn``'s Monte Carlo (8192 draws) are about 0.3-0.7%. The
assertion message states both for the worst entry. One case per test runs by
default, the others are marked slow.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from infattn import logits, stax

PAD = -1e3
KEY_WIDTH = VALUE_WIDTH = 1024
HEADS = 64
QK_STD = (1.1, 0.9)  # W_query_std, W_key_std
OV_STD = (1.2, 0.8)  # W_value_std, W_out_std
B_STD = 0.2
MC_SAMPLES = 8192
P_3SIGMA = 2 * stats.norm.sf(3.0)


def layer(mech: str, pos: str, n_out: int, pos_std: float = 0.5):
    return stax.GlobalSelfAttention(
        n_out,
        KEY_WIDTH,
        VALUE_WIDTH,
        HEADS,
        linear_scaling=False,
        W_query_std=QK_STD[0],
        W_key_std=QK_STD[1],
        W_value_std=OV_STD[0],
        W_out_std=OV_STD[1],
        b_std=B_STD,
        attention_mechanism=mech,
        pos_emb_type=pos,
        W_pos_emb_std=pos_std,
        mc_samples=MC_SAMPLES,
        mc_seed=3,
    )


def inputs(channels: int, seed: int = 0) -> np.ndarray:
    """(2, 4, C): input 1 has its last two positions masked."""
    x = np.random.default_rng(seed).standard_normal((2, 4, channels))
    x[1, 2:] = PAD
    return x


def position_mask(x: np.ndarray) -> np.ndarray:
    return np.all(x == PAD, axis=-1)


# --------------------------------------------------------------------------
# finite networks


def finite_draws(init_fn, apply_fn, x, n_draws, key, ntk: bool, batch: int = 4):
    """Per-draw empirical NNGP (and NTK): ``(n_draws, N, N, L, L)`` arrays."""
    x = jnp.asarray(x)

    def one(k):
        _, params = init_fn(k, x.shape)

        def f(p):
            out = apply_fn(p, x, mask_constant=PAD)
            return getattr(out, "masked_value", out)

        y = f(params)
        n_out = y.shape[-1]
        nngp = jnp.einsum("iao,jbo->ijab", y, y) / n_out
        if not ntk:
            return nngp, None
        flat = lambda p: f(p).reshape(-1)  # noqa: E731
        _, vjp = jax.vjp(flat, params)

        def column(m):
            (g,) = vjp(jax.nn.one_hot(m, y.size, dtype=y.dtype))
            return jax.jvp(flat, (params,), (g,))[1]

        theta = jax.lax.map(column, jnp.arange(y.size))  # (M, M) = J J^T
        theta = theta.reshape(y.shape + y.shape)
        return nngp, jnp.einsum("iaojbo->ijab", theta) / n_out

    keys = jax.random.split(key, n_draws)
    return jax.lax.map(jax.jit(one), keys, batch_size=batch)


def mean_se(draws):
    d = np.asarray(draws)
    return d.mean(0), d.std(0, ddof=1) / math.sqrt(d.shape[0])


# --------------------------------------------------------------------------
# the analytic side, and its standard error


def analytic(mech, pos, x, pos_std, ntk: bool):
    """``kernel_fn``'s nngp/ntk and the standard errors of its Monte Carlo part.

    Rebuilds the layer's inputs for a first layer (``S = x x^T / C + w_pe R``,
    ``T = w_pe R`` from the trainable embedding, ``V = x x^T / C``, ``T_v = 0``),
    calls :func:`logits.standard_attention_mc` with the layer's seed and samples and
    checks that ``kernel_fn`` is ``ov^2 * estimate + b^2`` before returning.
    """
    _, _, kernel_fn = layer(mech, pos, 1, pos_std)
    get = ("nngp", "ntk") if ntk else ("nngp",)
    k = kernel_fn(x, None, get, mask_constant=PAD)
    m = position_mask(x)
    xz = np.where(m[..., None], 0.0, x)
    v = np.einsum("iac,jbc->ijab", xz, xz) / x.shape[-1]
    pm = m[:, None, :, None] | m[None, :, None, :]
    r = np.where(pm, 0.0, np.eye(x.shape[1]) * pos_std**2) if pos == "SUM" else 0.0 * v
    s, t = v + r, r
    d = lambda a: np.einsum("iiab->iab", a)  # noqa: E731
    est = logits.standard_attention_mc(
        (jnp.asarray(s), jnp.asarray(d(s)), None),
        (jnp.asarray(v), jnp.asarray(d(v)), None),
        jnp.asarray(t) if ntk else None,
        jnp.zeros_like(jnp.asarray(v)) if ntk else None,
        jnp.asarray(m),
        None,
        mech,
        QK_STD[0] * QK_STD[1],
        n_samples=MC_SAMPLES,
        seed=3,
    )
    ov2 = (OV_STD[0] * OV_STD[1]) ** 2
    keep = ~pm
    np.testing.assert_allclose(
        np.asarray(k.nngp)[keep],
        (ov2 * np.asarray(est.nngp) + B_STD**2)[keep],
        rtol=1e-9,
        atol=1e-12,
    )
    out = {"nngp": (np.asarray(k.nngp), ov2 * np.asarray(est.nngp_se))}
    if ntk:
        np.testing.assert_allclose(
            np.asarray(k.ntk)[keep],
            (ov2 * np.asarray(est.ntk) + B_STD**2)[keep],
            rtol=1e-9,
            atol=1e-12,
        )
        out["ntk"] = (np.asarray(k.ntk), ov2 * np.asarray(est.ntk_se))
    return out, keep


def compare(label, emp, emp_se, ana, ana_se, keep, allowance=0.0):
    """z-test over the unmasked entries; ``allowance`` (fraction of the entry's
    natural scale ``sqrt(K_aa(x,x) K_bb(x',x'))``) is added to the 3-SE tolerance."""
    d = np.einsum("iiaa->ia", ana)
    scale = np.sqrt(np.abs(d[:, None, :, None] * d[None, :, None, :]))
    diff, se = (emp - ana)[keep], np.hypot(emp_se, ana_se)[keep]
    slack = allowance * scale[keep]
    z = np.maximum(np.abs(diff) - slack, 0.0) / se
    thr = stats.norm.isf(P_3SIGMA / (2 * z.size))
    worst = int(np.argmax(z))
    assert z.max() < thr, (
        f"{label}: max |z| {z.max():.2f} >= {thr:.2f} (finite-width allowance {allowance:.3f} "
        f"of the scale); worst entry: empirical {emp[keep][worst]:.5f} +/- "
        f"{emp_se[keep][worst]:.5f}, kernel_fn {ana[keep][worst]:.5f} +/- "
        f"{ana_se[keep][worst]:.5f}"
    )
    return z


# --------------------------------------------------------------------------
# tests

POS_STD = 0.5
NNGP_DRAWS, NNGP_OUT = 256, 8  # NNGP: forward passes only (drawing the weights dominates)
NTK_DRAWS = 48  # NTK: one VJP and one JVP per output; one output channel
SLOW = pytest.mark.slow
COMBOS = [(m, p) for m in ("SOFTMAX", "ABS", "RELU") for p in ("NONE", "SUM")]


def cases(fast: tuple[str, str]) -> list:
    """All mechanism x embedding combinations; all but ``fast`` are marked slow."""
    return [
        pytest.param(m, p, id=f"{m.lower()}-{p.lower()}", marks=() if (m, p) == fast else SLOW)
        for m, p in COMBOS
    ]


def channels(pos: str) -> int:
    """Input channels: 4 without embedding (the input covariance is exact at any C);
    16 with a SUM embedding, whose realised covariance converges like 1/sqrt(C)."""
    return 16 if pos == "SUM" else 4


_ANALYTIC: dict = {}


def analytic_cached(mech, pos):
    if (mech, pos) not in _ANALYTIC:
        x = inputs(channels(pos))
        _ANALYTIC[mech, pos] = analytic(mech, pos, x, POS_STD, ntk=True)
    return _ANALYTIC[mech, pos]


def allowance(pos: str) -> float:
    """Finite-width allowance: the embedding's O(1/C) bias, ``w_pe / C`` of the scale."""
    return POS_STD**2 / channels(pos) if pos == "SUM" else 0.0


@pytest.mark.parametrize(("mech", "pos"), cases(fast=("SOFTMAX", "NONE")))
def test_nngp_matches_finite_networks(mech, pos):
    ana, keep = analytic_cached(mech, pos)
    init_fn, apply_fn, _ = layer(mech, pos, NNGP_OUT, POS_STD)
    draws, _ = finite_draws(
        init_fn,
        apply_fn,
        inputs(channels(pos)),
        NNGP_DRAWS,
        jax.random.key(11),
        ntk=False,
        batch=16,
    )
    emp, emp_se = mean_se(draws)
    compare(f"{mech}/{pos} nngp", emp, emp_se, *ana["nngp"], keep, allowance(pos))


@pytest.mark.parametrize(("mech", "pos"), cases(fast=("SOFTMAX", "SUM")))
def test_ntk_matches_finite_networks(mech, pos):
    ana, keep = analytic_cached(mech, pos)
    init_fn, apply_fn, _ = layer(mech, pos, 1, POS_STD)
    _, draws = finite_draws(
        init_fn, apply_fn, inputs(channels(pos)), NTK_DRAWS, jax.random.key(12), ntk=True
    )
    emp, emp_se = mean_se(draws)
    compare(f"{mech}/{pos} ntk", emp, emp_se, *ana["ntk"], keep, allowance(pos))


@pytest.mark.parametrize("mech", ["SOFTMAX", "RELU"])
def test_two_layer_stack_is_consistent(mech):
    """Two standard-scaled attention layers (the second factors the first's
    full-rank Monte Carlo kernel): x2=None gives a symmetric PSD nngp whose batch
    diagonal is cov1, a symmetric NTK, zeros at masked positions, and no NaN."""
    x = inputs(4)
    kwargs = dict(linear_scaling=False, attention_mechanism=mech, b_std=0.1, mc_samples=1024)
    _, _, kernel_fn = stax.serial(
        stax.GlobalSelfAttention(8, 64, 64, 4, mc_seed=1, pos_emb_type="SUM", **kwargs),
        stax.GlobalSelfAttention(8, 64, 64, 4, mc_seed=2, **kwargs),
    )
    k = kernel_fn(x, None, ("nngp", "ntk", "cov1"), mask_constant=PAD)
    nngp, ntk, cov1 = (np.asarray(a) for a in k)
    assert np.all(np.isfinite(nngp)) and np.all(np.isfinite(ntk))
    np.testing.assert_array_equal(cov1, np.einsum("iiab->iab", nngp))
    np.testing.assert_allclose(nngp, nngp.transpose(1, 0, 3, 2), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ntk, ntk.transpose(1, 0, 3, 2), rtol=0, atol=1e-12)
    n, _, l, _ = nngp.shape
    lam = np.linalg.eigvalsh(nngp.transpose(0, 2, 1, 3).reshape(n * l, n * l))
    assert lam.min() >= -1e-9 * lam.max()
    m = position_mask(x)
    pm = m[:, None, :, None] | m[None, :, None, :]
    assert np.all(nngp[pm] == 0) and np.all(ntk[pm] == 0)
