"""The kernel rules of :func:`~infattn.stax.attention.GlobalSelfAttention`.

Pure functions over the layer's frozen
:class:`~infattn.stax.attention.AttentionConfig`: :func:`flat_inputs` turns the
input Kernel into the covariances queries/keys (``S``, positions mixed in) and
values see, positions flattened (:class:`Flat`, ``(N1, N2, P, P)``); each rule
maps them to the output's:

* :func:`tied_rule`: ``1/d`` scaling; tied ``W^Q = W^K`` gives fixed weights
  ``zeta(qk_std S(x, x))``, untied weights ``zeta(0)`` (uniform averaging);
* :func:`identity_rule`: standard scaling with IDENTITY, in closed form;
* :func:`monte_carlo_rule`: standard scaling with SOFTMAX/ABS/RELU, by Monte
  Carlo over the Gaussian logits (:mod:`infattn.logits`), fixed or automatic
  sample size;
* :func:`finite_head_rule`: one draw of the finite-head law.

:func:`closed_form_kernel` and :func:`monte_carlo_kernel` (replicates included,
``docs/standard-errors.md``) are the layer's kernel functions.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp

from infattn import logits
from infattn.kernel import N_REPLICATES, Kernel
from infattn.linalg import zip_square
from infattn.logits.mechanisms import attention_weights
from infattn.stax import positional
from infattn.stax.linear import affine
from infattn.stax.replicates import REPLICATED, strip

if TYPE_CHECKING:
    from infattn.stax.attention import AttentionConfig

Array = jax.Array


class Flat(NamedTuple):
    """Kernel arrays with positions flattened: ``nngp``/``ntk`` ``(N1, N2, P, P)``,
    ``cov1`` ``(N1, P, P)``, ``cov2`` ``(N2, P, P)`` (``ntk``, ``cov2`` may be ``None``)."""

    nngp: Array
    ntk: Array | None
    cov1: Array
    cov2: Array | None


def to_positions(m: Array | None, batch_ndim: int) -> Array | None:
    """Interleaved ``(*B, s1, s1, s2, s2)`` -> ``(*B, P, P)``.

    Example:
        >>> to_positions(jnp.zeros((2, 3, 3, 4, 4)), 1).shape
        (2, 12, 12)
    """
    if m is None:
        return None
    order = (*range(batch_ndim), *range(batch_ndim, m.ndim, 2), *range(batch_ndim + 1, m.ndim, 2))
    size = 1
    for s in m.shape[batch_ndim::2]:
        size *= s
    return jnp.transpose(m, order).reshape((*m.shape[:batch_ndim], size, size))


def from_positions(m: Array | None, batch_ndim: int, spatial: tuple[int, ...]) -> Array | None:
    """``(*B, P, P)`` -> interleaved ``(*B, s1, s1, s2, s2)``.

    Example:
        >>> from_positions(jnp.zeros((2, 12, 12)), 1, (3, 4)).shape
        (2, 3, 3, 4, 4)
    """
    return None if m is None else zip_square(m, spatial, lead=batch_ndim)


def sandwich(G1: Array, M: Array, G2: Array) -> Array:
    """``out[i, j] = G1[i] @ M[i, j] @ G2[j]^T`` for every pair: ``O(N1 N2 P^3)`` flops.

    ``G1``: ``(N1, P, P)``, ``G2``: ``(N2, P, P)``, ``M``: ``(N1, N2, P, P)``.
    """
    return jnp.einsum("iab,ijbc,jdc->ijad", G1, M, G2, optimize=True)


def _self_sandwich(G: Array, M: Array) -> Array:
    """``G[i] @ M[i] @ G[i]^T``: ``(N, P, P)``."""
    return jnp.einsum("iab,ibc,idc->iad", G, M, G)


# --------------------------------------------------------------------------- kernel rules


def _mix(mat, R, w_in, w_pe, mask_a, mask_b, batch_ndim):
    """``w_in * mat + w_pe * R`` with ``R`` zeroed at masked positions."""
    if mat is None or R is None:
        return mat
    r = R
    if mask_a is not None:
        a = mask_a[:, None, :, None] if batch_ndim == 2 else mask_a[:, :, None]
        b = mask_b[None, :, None, :] if batch_ndim == 2 else mask_b[:, None, :]
        r = jnp.where(a | b, 0.0, r)
    return w_in * mat + w_pe * r


def flat_inputs(cfg: AttentionConfig, k: Kernel) -> tuple[Flat, Flat, Array | None, Array | None]:
    """``(s, v, m1, m2)``: what queries/keys see (``S``, positions mixed in) and what
    values see, flattened, and the key masks ``(N1, P)``, ``(N2, P)`` (or ``None``)."""
    cfg.check_input(k.shape1)
    w_in, w_pe = positional.mixing_weights(
        cfg.emb, k.shape1[-1], cfg.n_chan_pos_emb, cfg.W_pos_emb_std
    )
    m1 = None if k.mask1 is None else k.mask1.reshape(k.mask1.shape[0], -1)
    m2 = None if k.mask1 is None else k.mask2_or_mask1().reshape(-1, m1.shape[1])
    flat = Flat(
        *(to_positions(getattr(k, f), 1 if f.startswith("cov") else 2) for f in Flat._fields)
    )
    R = None
    if cfg.emb != "NONE":
        decay = positional.covariance(k.spatial_shape, cfg.pos_emb_p_norm, cfg.pos_emb_decay_fn)
        R = jnp.asarray(decay, k.nngp.dtype)
    mix = functools.partial(_mix, R=R, w_in=w_in, w_pe=w_pe)
    s = Flat(
        nngp=mix(flat.nngp, mask_a=m1, mask_b=m2, batch_ndim=2),
        ntk=mix(flat.ntk, mask_a=m1, mask_b=m2, batch_ndim=2),
        cov1=mix(flat.cov1, mask_a=m1, mask_b=m1, batch_ndim=1),
        cov2=mix(flat.cov2, mask_a=m2, mask_b=m2, batch_ndim=1),
    )
    return s, s if cfg.val_pos_emb else flat, m1, m2


def tied_rule(cfg: AttentionConfig, s: Flat, v: Flat, m1: Array | None, m2: Array | None) -> Flat:
    """``1/d`` scaling: fixed weights ``G(x) = zeta(qk_std S(x, x))`` (tied ``W^Q = W^K``)
    or ``zeta(0)`` (untied: the logits vanish, attention averages uniformly)."""
    qk = cfg.qk_std if cfg.tied else 0.0
    same = s.cov2 is None

    def weights(cov, mask):
        return attention_weights(
            qk * cov, None if mask is None else mask[:, None, :], cfg.mechanism
        )

    G1 = weights(s.cov1, m1)
    G2 = G1 if same else weights(s.cov2, m2)
    nngp = sandwich(G1, v.nngp, G2)
    ntk = (
        None if v.ntk is None else affine(sandwich(G1, v.ntk, G2) + 2 * nngp, cfg.ov_std, cfg.b_std)
    )
    return Flat(
        nngp=affine(nngp, cfg.ov_std, cfg.b_std),
        ntk=ntk,
        cov1=affine(_self_sandwich(G1, v.cov1), cfg.ov_std, cfg.b_std),
        cov2=None if same else affine(_self_sandwich(G2, v.cov2), cfg.ov_std, cfg.b_std),
    )


def identity_rule(cfg: AttentionConfig, s: Flat, v: Flat) -> Flat:
    """Standard scaling with IDENTITY: the Gaussian expectation in closed form,
    ``E[G V G'^T]_ab = qk_std^2 <S, V> S_ab`` (and its NTK bracket)."""

    def dot(a, b):
        return jnp.sum(a * b, axis=(-2, -1), keepdims=True)

    std = cfg.qk_std * cfg.ov_std
    ntk = None
    if s.ntk is not None:
        cross = dot(s.nngp, v.ntk) + dot(v.nngp, s.ntk)
        inner = cross * s.nngp + dot(s.nngp, v.nngp) * (s.ntk + 4 * s.nngp)
        ntk = affine(inner, std, cfg.b_std)
    return Flat(
        nngp=affine(dot(s.nngp, v.nngp) * s.nngp, std, cfg.b_std),
        ntk=ntk,
        cov1=affine(dot(s.cov1, v.cov1) * s.cov1, std, cfg.b_std),
        cov2=None if s.cov2 is None else affine(dot(s.cov2, v.cov2) * s.cov2, std, cfg.b_std),
    )


def monte_carlo_rule(
    cfg: AttentionConfig,
    s: Flat,
    v: Flat,
    m1: Array | None,
    m2: Array | None,
    n_samples: int | None,
    seed: int,
    n_replicates: int,
) -> tuple[Flat, Flat | None, Any]:
    """Standard scaling, SOFTMAX/ABS/RELU: ``(estimate, R replicate estimates stacked
    on a leading axis or None, draws used)`` by :func:`infattn.logits.standard_attention_mc`
    (``n_samples=None``: automatic, to ``cfg.mc_target_rse`` or ``cfg.mc_max_samples``)."""
    est = logits.standard_attention_mc(
        (s.nngp, s.cov1, s.cov2),
        (v.nngp, v.cov1, v.cov2),
        s.ntk,
        v.ntk,
        m1,
        None if s.cov2 is None else m2,
        mechanism=cfg.mechanism,
        qk_std=cfg.qk_std,
        n_samples="auto" if n_samples is None else n_samples,
        seed=seed,
        target_rse=cfg.mc_target_rse,
        max_samples=cfg.mc_max_samples,
        n_replicates=n_replicates,
        progress=cfg.progress,
    )

    def scaled(e):
        """``ov_std**2 * e + b_std**2``, each field."""
        return Flat(*(affine(getattr(e, f), cfg.ov_std, cfg.b_std) for f in Flat._fields))

    reps = est.replicates
    return scaled(est), None if reps is None else scaled(reps), est.n_samples


def finite_head_rule(cfg: AttentionConfig, s: Flat, v: Flat, m1: Array | None, key: Array) -> Flat:
    """One draw of the finite-head law: the covariance given ``n_heads`` drawn heads."""
    if s.cov2 is not None:
        raise ValueError("law_key: the finite-head law is drawn for x2=None only")
    nngp = logits.finite_head_covariance(
        s.nngp,
        v.nngp,
        key,
        n_heads=cfg.n_heads,
        mechanism=cfg.mechanism,
        qk_std=cfg.qk_std,
        ov_std=cfg.ov_std,
        b_std=0.0 if cfg.b_std is None else cfg.b_std,
        key_mask=m1,
    )
    cov1 = jnp.diagonal(nngp, axis1=0, axis2=1).transpose(2, 0, 1)
    return Flat(nngp=nngp, ntk=None, cov1=cov1, cov2=None)


# --------------------------------------------------------------------------- kernel functions


def _finish(cfg: AttentionConfig, k: Kernel, out: Flat) -> Kernel:
    """The output Kernel: ``out`` back to interleaved positions, remasked."""
    spatial = k.spatial_shape
    new = k.replace(
        nngp=from_positions(out.nngp, 2, spatial),
        ntk=from_positions(out.ntk, 2, spatial),
        cov1=from_positions(out.cov1, 1, spatial),
        cov2=from_positions(out.cov2, 1, spatial),
        shape1=(*k.shape1[:-1], cfg.n_chan_out),
        shape2=(*k.shape2[:-1], cfg.n_chan_out),
        is_gaussian=True,
    )
    return new.remask()


def closed_form_kernel(cfg: AttentionConfig, k: Kernel) -> Kernel:
    """The kernel rule of ``1/d`` scaling and of standard scaling with IDENTITY."""
    s, v, m1, m2 = flat_inputs(cfg, k)
    out = tied_rule(cfg, s, v, m1, m2) if cfg.linear_scaling else identity_rule(cfg, s, v)
    return _finish(cfg, k, out)


def _estimate(
    cfg: AttentionConfig, k: Kernel, n_samples: int | None, seed: int, n_replicates: int
) -> tuple[Kernel, dict[str, Any] | None, Any]:
    """:func:`monte_carlo_rule` on ``k``: ``(kernel, its R replicates' fields
    (``replicates.REPLICATED``, leading axis R) or None, draws used)``; the replicates are
    finished in one ``vmap``."""
    s, v, m1, m2 = flat_inputs(cfg, k)
    out, reps, n_used = monte_carlo_rule(cfg, s, v, m1, m2, n_samples, seed, n_replicates)
    if reps is None:
        return _finish(cfg, k, out), None, n_used
    finished = jax.vmap(lambda o: _finish(cfg, k, o))(reps)
    return _finish(cfg, k, out), {n: getattr(finished, n) for n in REPLICATED}, n_used


def _replicate_seed(seed: int, r: int) -> int:
    """The seed of replicate ``r``'s independent draws: ``(seed, r)`` folded (a Python
    int, computed at once also while a ``jit`` traces the kernel)."""
    with jax.ensure_compile_time_eval():
        key = jax.random.fold_in(jax.random.PRNGKey(seed), r)
        return int(jax.random.randint(key, (), 0, 2**31 - 1))


def _replicate_kernels(cfg: AttentionConfig, k: Kernel, n_used: Any) -> dict[str, Any]:
    """Replicate ``r`` from input replicate ``r`` with its own ``n_used // R`` draws:
    their fields (``replicates.REPLICATED``) stacked."""
    rep = k.replicates
    n_rep = rep.nngp.shape[0]
    if cfg.mc_samples is None and isinstance(n_used, jax.core.Tracer):
        raise ValueError(
            "mc_samples: 'auto' cannot size the replicates of a Monte Carlo attention layer "
            "that follows another one under a jax transformation; pass an integer mc_samples"
        )
    n = max(2, (cfg.mc_samples or int(n_used)) // n_rep)
    base = strip(k)
    out = []
    for r in range(n_rep):
        k_r = base.replace(
            nngp=rep.nngp[r],
            ntk=None if rep.ntk is None else rep.ntk[r],
            cov1=rep.cov1[r],
            cov2=None if rep.cov2 is None else rep.cov2[r],
        )
        out.append(_estimate(cfg, k_r, n, _replicate_seed(cfg.mc_seed, r), 0)[0])
    return {
        n: None if getattr(out[0], n) is None else jnp.stack([getattr(q, n) for q in out])
        for n in REPLICATED
    }


def monte_carlo_kernel(cfg: AttentionConfig, k: Kernel) -> Kernel:
    """The Monte Carlo rule with replicates (``docs/standard-errors.md``).

    Input without replicates: the ``R`` sub-stream estimates of the same draws.
    With replicates: replicate ``r`` from input replicate ``r`` with its own
    independent draws (``mc_samples // R`` of them, with ``"auto"`` the main
    estimate's number of draws ``// R``; seed ``(mc_seed, r)``). With a
    ``law_key``: one draw of the finite-head law (:func:`finite_head_rule`).
    """
    if k.law_key is not None:  # one draw of the finite-head law: no replicates
        k = strip(k)
        s, v, m1, _ = flat_inputs(cfg, k)
        use, rest = jax.random.split(k.law_key)
        out = finite_head_rule(cfg, s, v, m1, jax.random.fold_in(use, cfg.mc_seed))
        return _finish(cfg, k.replace(law_key=rest), out)
    given = k.replicates is not None
    main, reps, n_used = _estimate(
        cfg, strip(k), cfg.mc_samples, cfg.mc_seed, 0 if given else N_REPLICATES
    )
    if given:
        reps = _replicate_kernels(cfg, k, n_used)
    return main.replace(replicates=main.replace(**reps))
