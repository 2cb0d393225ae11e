"""Multi-head self-attention: the finite forward pass and its infinite-width kernels.

Finite network (NTK parameterisation, one head ``h`` of ``n_heads``)::

    Q_h = X~ W^Q_h,  K_h = X~ W^K_h,  V_h = X_v W^V_h          (X~: inputs + positions)
    G_h = sigma_QK * Q_h K_h^T / (C~ * d_k^alpha)                (alpha = 1 or 1/2)
    out = sigma_OV * [zeta(G_1) V_1, ..., zeta(G_H) V_H] W^O / sqrt(C_v d_v H) + b_std * b

Kernels (shared brief, section 3), with ``S = w_in Sigma + w_pe R`` the
covariance that queries and keys see and ``V`` the one values see:

* ``linear_scaling=True`` (``alpha = 1``) with tied ``W^Q = W^K``: the logits
  converge to ``sigma_QK * S(x, x)``, so ``G(x) = zeta(sigma_QK S(x, x))`` is fixed
  and ``nngp' = sigma_OV^2 G(x) V(x, x') G(x')^T + b^2``,
  ``ntk' = sigma_OV^2 G(x) [Theta_v + 2 V] G(x')^T + b^2``. Untied weights
  (``tie_query_key=False``) send the logits to 0: uniform averaging.
* ``linear_scaling=False`` (``alpha = 1/2``): the logits stay Gaussian; the
  infinite-head kernel is an expectation over them, closed-form for IDENTITY
  and estimated by Monte Carlo otherwise (:mod:`infattn.logits`).

Internally positions are flattened to ``P = prod(spatial)``: kernels become
``(N1, N2, P, P)``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from infattn import logits
from infattn.kernel import N_REPLICATES, Kernel
from infattn.linalg import zip_square
from infattn.stax import layout, positional, taps
from infattn.stax.layer import make_layer
from infattn.stax.linear import affine
from infattn.stax.replicates import strip
from infattn.validation import check_axes, check_choice, check_std, check_width

Array = jax.Array

MECHANISMS = logits.MECHANISMS
attention_weights = logits.attention_weights


def to_positions(m: Array | None, batch_ndim: int) -> Array | None:
    """Interleaved ``(*B, s1, s1, s2, s2)`` -> ``(*B, P, P)``."""
    if m is None:
        return None
    order = (*range(batch_ndim), *range(batch_ndim, m.ndim, 2), *range(batch_ndim + 1, m.ndim, 2))
    size = 1
    for s in m.shape[batch_ndim::2]:
        size *= s
    return jnp.transpose(m, order).reshape((*m.shape[:batch_ndim], size, size))


def from_positions(m: Array | None, batch_ndim: int, spatial: tuple[int, ...]) -> Array | None:
    """``(*B, P, P)`` -> interleaved ``(*B, s1, s1, s2, s2)``."""
    return None if m is None else zip_square(m, spatial, lead=batch_ndim)


def heads_first(y: Array) -> Array:
    """Per-head projections ``(N, P, H, K)`` as ``(H, N, P, K)``."""
    return jnp.moveaxis(y, 2, 0)


def sandwich(G1: Array, M: Array, G2: Array) -> Array:
    """``out[i, j] = G1[i] @ M[i, j] @ G2[j]^T`` for every pair: ``O(N1 N2 P^3)`` flops.

    ``G1``: ``(N1, P, P)``, ``G2``: ``(N2, P, P)``, ``M``: ``(N1, N2, P, P)``.
    """
    return jnp.einsum("iab,ijbc,jdc->ijad", G1, M, G2, optimize=True)


def GlobalSelfAttention(
    n_chan_out: int,
    n_chan_key: int,
    n_chan_val: int,
    n_heads: int,
    linear_scaling: bool = True,
    W_key_std: float = 1.0,
    W_value_std: float = 1.0,
    W_query_std: float = 1.0,
    W_out_std: float = 1.0,
    b_std: float | None = None,
    attention_mechanism: str = "SOFTMAX",
    pos_emb_type: str = "NONE",
    pos_emb_p_norm: float = 2,
    pos_emb_decay_fn: Callable | None = None,
    n_chan_pos_emb: int | None = None,
    W_pos_emb_std: float = 1.0,
    val_pos_emb: bool = False,
    batch_axis: int = 0,
    channel_axis: int = -1,
    *,
    tie_query_key: bool | None = None,
    mc_samples: int = logits.DEFAULT_MC_SAMPLES,
    mc_seed: int = 0,
):
    """Global multi-head self-attention over all spatial positions of ``(N, *spatial, C)``.

    Arguments match ``neural_tangents.stax.GlobalSelfAttention``. Beyond them:

    * ``tie_query_key``: share ``W^Q = W^K``; ``None`` means tied iff
      ``linear_scaling`` (neural-tangents' behaviour).
    * ``mc_samples``, ``mc_seed``: Monte Carlo budget and seed of the
      infinite-head kernel under standard scaling (``linear_scaling=False``)
      with SOFTMAX, ABS or RELU; results are deterministic given them.
    """
    for value, name in (
        (n_chan_out, "n_chan_out"),
        (n_chan_key, "n_chan_key"),
        (n_chan_val, "n_chan_val"),
        (n_heads, "n_heads"),
    ):
        check_width(value, name)
    for value, name in (
        (W_key_std, "W_key_std"),
        (W_value_std, "W_value_std"),
        (W_query_std, "W_query_std"),
        (W_out_std, "W_out_std"),
        (W_pos_emb_std, "W_pos_emb_std"),
    ):
        check_std(value, name)
    check_std(b_std, "b_std", optional=True)
    mechanism = check_choice(attention_mechanism, MECHANISMS, "attention_mechanism")
    emb = check_choice(pos_emb_type, positional.EMBEDDING_TYPES, "pos_emb_type")
    if n_chan_pos_emb is not None:
        check_width(n_chan_pos_emb, "n_chan_pos_emb")
    if pos_emb_decay_fn is not None and not callable(pos_emb_decay_fn):
        raise ValueError(f"pos_emb_decay_fn: expected a callable or None, got {pos_emb_decay_fn!r}")
    check_axes("GlobalSelfAttention", batch_axis=batch_axis, channel_axis=channel_axis)
    if isinstance(mc_samples, bool) or not isinstance(mc_samples, int) or mc_samples < 2:
        raise ValueError(f"mc_samples: expected an integer >= 2, got {mc_samples!r}")
    if isinstance(mc_seed, bool) or not isinstance(mc_seed, int):
        raise TypeError(f"mc_seed: expected an integer, got {mc_seed!r}")
    tied = linear_scaling if tie_query_key is None else bool(tie_query_key)
    qk_std = W_query_std * W_key_std
    ov_std = W_out_std * W_value_std

    def n_pe(n_in):
        return n_in if n_chan_pos_emb is None else n_chan_pos_emb

    def check_input(shape):
        if len(shape) < 3:
            raise ValueError(
                "inputs: GlobalSelfAttention needs (N, *spatial, C) inputs with at least one "
                f"spatial axis; got shape {tuple(shape)}"
            )
        if emb == "SUM" and n_chan_pos_emb is not None and n_chan_pos_emb != shape[-1]:
            raise ValueError(
                f"n_chan_pos_emb: with pos_emb_type='SUM' it must equal the input channels "
                f"({shape[-1]}) or be None; got {n_chan_pos_emb}"
            )

    # ---------------------------------------------------------------- finite network
    def init(rng, input_shape):
        check_input(input_shape)
        kq, kk, kv, ko, kb, kp = jax.random.split(rng, 6)
        n_in = input_shape[-1]
        n_qk = n_in + (n_pe(n_in) if emb == "CONCAT" else 0)
        n_v = n_in + (n_pe(n_in) if emb == "CONCAT" and val_pos_emb else 0)
        pos = None
        if emb != "NONE":
            pos = jax.random.normal(kp, (1, *input_shape[1:-1], n_pe(n_in)))
            if pos_emb_decay_fn is not None:
                positional.cholesky_factor(
                    tuple(input_shape[1:-1]), pos_emb_p_norm, pos_emb_decay_fn
                )
        params = {
            "query": None if tied else jax.random.normal(kq, (n_heads, n_qk, n_chan_key)),
            "key": jax.random.normal(kk, (n_heads, n_qk, n_chan_key)),
            "value": jax.random.normal(kv, (n_heads, n_v, n_chan_val)),
            "out": jax.random.normal(ko, (n_heads * n_chan_val, n_chan_out)),
            "bias": None
            if b_std is None
            else jax.random.normal(kb, (1,) * (len(input_shape) - 1) + (n_chan_out,)),
            "pos_emb": pos,
        }
        return (*input_shape[:-1], n_chan_out), params

    def embeddings(pos, spatial, mask, dtype):
        if pos_emb_decay_fn is not None:
            chol = positional.cholesky_factor(spatial, pos_emb_p_norm, pos_emb_decay_fn)
            flat = pos.reshape(pos.shape[0], -1, pos.shape[-1])
            pos = jnp.einsum("ab,nbc->nac", jnp.asarray(chol, dtype), flat).reshape(pos.shape)
        if mask is not None:
            pos = jnp.where(mask[..., None], 0.0, pos)
        return W_pos_emb_std * pos

    def apply(params, x, mask, **kwargs):
        check_input(x.shape)
        n, spatial, n_in = x.shape[0], tuple(x.shape[1:-1]), x.shape[-1]
        if params["key"].shape[1] != n_in + (n_pe(n_in) if emb == "CONCAT" else 0):
            raise ValueError(
                f"inputs: GlobalSelfAttention was initialised for other input channels; "
                f"got inputs of shape {tuple(x.shape)}"
            )
        x_qk = x_v = x
        if emb != "NONE":
            pos = embeddings(taps.per_example(params["pos_emb"], n), spatial, mask, x.dtype)
            if emb == "SUM":
                x_qk = x + pos
            else:
                x_qk = jnp.concatenate([x, jnp.broadcast_to(pos, (n, *spatial, pos.shape[-1]))], -1)
            x_v = x_qk if val_pos_emb else x
        x_qk = x_qk.reshape(n, -1, x_qk.shape[-1])
        x_v = x_v.reshape(n, -1, x_v.shape[-1])
        keys = heads_first(taps.tokenwise(x_qk, params["key"], 1))
        queries = keys if tied else heads_first(taps.tokenwise(x_qk, params["query"], 1))
        values = heads_first(taps.tokenwise(x_v, params["value"], 1))
        scale = qk_std / (x_qk.shape[-1] * n_chan_key ** (1.0 if linear_scaling else 0.5))
        logits = scale * jnp.einsum("hnak,hnbk->hnab", queries, keys)
        key_mask = None if mask is None else mask.reshape(1, n, 1, -1)
        heads = jnp.einsum(
            "hnab,hnbv->navh", attention_weights(logits, key_mask, mechanism), values
        )
        out = taps.tokenwise(heads.reshape(n, heads.shape[1], -1), params["out"])
        out = out * (ov_std / (n_chan_val * n_heads * x_v.shape[-1]) ** 0.5)
        out = out.reshape(n, *spatial, n_chan_out)
        if params["bias"] is not None:
            out = out + b_std * taps.per_example(params["bias"], n)
        return out, mask

    # ---------------------------------------------------------------- kernel
    def kernel(k: Kernel) -> Kernel:
        return _kernel(k, mc_samples, mc_seed, 0)[0]

    def monte_carlo_kernel(k: Kernel) -> Kernel:
        """The MC rule with replicates (``docs/standard-errors.md``).

        Input without replicates: the ``R`` sub-stream estimates of the same draws.
        With replicates: replicate ``r`` from input replicate ``r`` with its own
        independent draws (``mc_samples // R`` of them, seed ``(mc_seed, r)``).
        """
        if k.law_key is not None:  # one draw of the finite-head law: no replicates
            return _kernel(strip(k), mc_samples, mc_seed, 0)[0]
        rep = k.replicates
        main, reps = _kernel(strip(k), mc_samples, mc_seed, 0 if rep is not None else N_REPLICATES)
        if rep is not None:
            n_rep = rep.nngp.shape[0]
            reps = [
                _kernel(
                    strip(k).replace(
                        nngp=rep.nngp[r],
                        ntk=None if rep.ntk is None else rep.ntk[r],
                        cov1=rep.cov1[r],
                        cov2=None if rep.cov2 is None else rep.cov2[r],
                    ),
                    max(2, mc_samples // n_rep),
                    int(
                        jax.random.randint(
                            jax.random.fold_in(jax.random.PRNGKey(mc_seed), r), (), 0, 2**31 - 1
                        )
                    ),
                    0,
                )[0]
                for r in range(n_rep)
            ]

        def stacked(name):
            return (
                None if getattr(main, name) is None else jnp.stack([getattr(q, name) for q in reps])
            )

        replicates = main.replace(**{n: stacked(n) for n in ("nngp", "ntk", "cov1", "cov2")})
        return main.replace(replicates=replicates)

    def _kernel(k: Kernel, n_samples: int, seed: int, n_replicates: int):
        """``(kernel, [R replicate kernels])`` (the list empty unless ``n_replicates``)."""
        check_input(k.shape1)
        spatial = k.spatial_shape
        w_in, w_pe = positional.mixing_weights(emb, k.shape1[-1], n_chan_pos_emb, W_pos_emb_std)
        m1 = None if k.mask1 is None else k.mask1.reshape(k.mask1.shape[0], -1)
        m2 = None if k.mask1 is None else k.mask2_or_mask1().reshape(-1, m1.shape[1])
        flat = {
            name: to_positions(getattr(k, name), 1 if name.startswith("cov") else 2)
            for name in ("nngp", "ntk", "cov1", "cov2")
        }
        R = (
            None
            if emb == "NONE"
            else jnp.asarray(
                positional.covariance(spatial, pos_emb_p_norm, pos_emb_decay_fn), k.nngp.dtype
            )
        )

        def mix(mat, mask_a, mask_b, batch_ndim):
            """``w_in * mat + w_pe * R`` with R zeroed at masked positions."""
            if mat is None or R is None:
                return mat
            r = R
            if mask_a is not None:
                a = mask_a[:, None, :, None] if batch_ndim == 2 else mask_a[:, :, None]
                b = mask_b[None, :, None, :] if batch_ndim == 2 else mask_b[:, None, :]
                r = jnp.where(a | b, 0.0, r)
            return w_in * mat + w_pe * r

        s = {
            "nngp": mix(flat["nngp"], m1, m2, 2),
            "ntk": mix(flat["ntk"], m1, m2, 2),
            "cov1": mix(flat["cov1"], m1, m1, 1),
            "cov2": mix(flat["cov2"], m2, m2, 1),
        }
        v = s if val_pos_emb else flat
        if linear_scaling:
            out = _linear_kernel(s, v, m1, m2, k.cov2 is None)
        elif mechanism == "IDENTITY":
            out = _identity_kernel(s, v)
        elif k.law_key is not None:
            use, rest = jax.random.split(k.law_key)
            out = _finite_head_kernel(s, v, m1, jax.random.fold_in(use, mc_seed))
            k = k.replace(law_key=rest)
        else:
            out = _monte_carlo_kernel(s, v, m1, m2, n_samples, seed, n_replicates)
        reps = out.pop("replicates", [])
        return _finish(k, out, spatial), [_finish(k, o, spatial) for o in reps]

    def _finish(k, out, spatial):
        new = k.replace(
            nngp=from_positions(out["nngp"], 2, spatial),
            ntk=from_positions(out["ntk"], 2, spatial),
            cov1=from_positions(out["cov1"], 1, spatial),
            cov2=from_positions(out["cov2"], 1, spatial),
            shape1=(*k.shape1[:-1], n_chan_out),
            shape2=(*k.shape2[:-1], n_chan_out),
            is_gaussian=True,
        )
        return new.remask()

    def _linear_kernel(s, v, m1, m2, same):
        qk = qk_std if tied else 0.0
        G1 = attention_weights(qk * s["cov1"], None if m1 is None else m1[:, None, :], mechanism)
        G2 = (
            G1
            if same
            else attention_weights(
                qk * s["cov2"], None if m2 is None else m2[:, None, :], mechanism
            )
        )
        nngp = sandwich(G1, v["nngp"], G2)
        ntk = (
            None
            if v["ntk"] is None
            else affine(sandwich(G1, v["ntk"], G2) + 2 * nngp, ov_std, b_std)
        )
        nngp = affine(nngp, ov_std, b_std)
        cov1 = affine(_self_sandwich(G1, v["cov1"]), ov_std, b_std)
        cov2 = None if same else affine(_self_sandwich(G2, v["cov2"]), ov_std, b_std)
        return {"nngp": nngp, "ntk": ntk, "cov1": cov1, "cov2": cov2}

    def _identity_kernel(s, v):
        def dot(a, b):
            return jnp.sum(a * b, axis=(-2, -1), keepdims=True)

        std = qk_std * ov_std
        out = {
            "nngp": affine(dot(s["nngp"], v["nngp"]) * s["nngp"], std, b_std),
            "cov1": affine(dot(s["cov1"], v["cov1"]) * s["cov1"], std, b_std),
            "cov2": None
            if s["cov2"] is None
            else affine(dot(s["cov2"], v["cov2"]) * s["cov2"], std, b_std),
            "ntk": None,
        }
        if s["ntk"] is not None:
            cross = dot(s["nngp"], v["ntk"]) + dot(v["nngp"], s["ntk"])
            inner = cross * s["nngp"] + dot(s["nngp"], v["nngp"]) * (s["ntk"] + 4 * s["nngp"])
            out["ntk"] = affine(inner, std, b_std)
        return out

    def _finite_head_kernel(s, v, m1, key):
        """One draw of the finite-head law: the covariance given ``n_heads`` drawn heads."""
        if s["cov2"] is not None:
            raise ValueError("law_key: the finite-head law is drawn for x2=None only")
        nngp = logits.finite_head_covariance(
            s["nngp"],
            v["nngp"],
            key,
            n_heads=n_heads,
            mechanism=mechanism,
            qk_std=qk_std,
            ov_std=ov_std,
            b_std=0.0 if b_std is None else b_std,
            key_mask=m1,
        )
        cov1 = jnp.diagonal(nngp, axis1=0, axis2=1).transpose(2, 0, 1)
        return {"nngp": nngp, "ntk": None, "cov1": cov1, "cov2": None}

    def _monte_carlo_kernel(s, v, m1, m2, n_samples, seed, n_replicates):
        est = logits.standard_attention_mc(
            (s["nngp"], s["cov1"], s["cov2"]),
            (v["nngp"], v["cov1"], v["cov2"]),
            s["ntk"],
            v["ntk"],
            m1,
            None if s["cov2"] is None else m2,
            mechanism=mechanism,
            qk_std=qk_std,
            n_samples=n_samples,
            seed=seed,
            n_replicates=n_replicates,
        )
        out = _scaled(est)
        if est.replicates is not None:
            out["replicates"] = [
                _scaled(est.replicates, r) for r in range(est.replicates.nngp.shape[0])
            ]
        return out

    def _scaled(est, r=None):
        """``ov_std**2 * est + b_std**2`` of the estimate (replicate ``r`` if given)."""

        def get(name):
            a = getattr(est, name)
            return None if a is None else affine(a if r is None else a[r], ov_std, b_std)

        return {name: get(name) for name in ("nngp", "ntk", "cov1", "cov2")}

    monte_carlo = not linear_scaling and mechanism != "IDENTITY"
    boundary = layout.Boundary((batch_axis, channel_axis))
    if monte_carlo:
        return make_layer(
            init,
            apply,
            monte_carlo_kernel,
            "GlobalSelfAttention",
            pairwise=False,
            handles_replicates=True,
            boundary=boundary,
        )
    return make_layer(init, apply, kernel, "GlobalSelfAttention", boundary=boundary)


def _self_sandwich(G: Array, M: Array) -> Array:
    """``G[i] @ M[i] @ G[i]^T``: ``(N, P, P)``."""
    return jnp.einsum("iab,ibc,idc->iad", G, M, G)
