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

The layer is a frozen :class:`AttentionConfig` (the checked constructor
arguments) and module-level pure functions over it: :func:`init` and
:func:`apply` here (the finite network), the kernel rules in
:mod:`infattn.stax.attention_kernel` (``1/d`` tied or untied, IDENTITY in
closed form, Monte Carlo, the finite-head law). :func:`GlobalSelfAttention`
checks its arguments and composes them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp

from infattn import logits
from infattn.logits.mechanisms import MECHANISMS, attention_weights
from infattn.logits.monte_carlo import check_samples
from infattn.stax import layout, positional, taps
from infattn.stax.attention_kernel import closed_form_kernel, monte_carlo_kernel, to_positions
from infattn.stax.diagonal import NO, Diagonal
from infattn.stax.layer import make_layer
from infattn.validation import (
    check_axes,
    check_choice,
    check_int,
    check_positive,
    check_std,
    check_width,
)

__all__ = ["AttentionConfig", "GlobalSelfAttention", "apply", "init", "to_positions"]

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class AttentionConfig:
    """The checked arguments of one :func:`GlobalSelfAttention` layer.

    ``qk_std = W_query_std * W_key_std``, ``ov_std = W_out_std * W_value_std``;
    ``tied``: ``W^Q = W^K``; ``emb``: the positional embedding type;
    ``mc_samples``: ``None`` for ``"auto"``.
    """

    n_chan_out: int
    n_chan_key: int
    n_chan_val: int
    n_heads: int
    linear_scaling: bool
    tied: bool
    qk_std: float
    ov_std: float
    b_std: float | None
    mechanism: str
    emb: str
    pos_emb_p_norm: float
    pos_emb_decay_fn: Callable | None
    n_chan_pos_emb: int | None
    W_pos_emb_std: float
    val_pos_emb: bool
    mc_samples: int | None
    mc_seed: int
    mc_target_rse: float
    mc_max_samples: int
    progress: bool | None

    @property
    def monte_carlo(self) -> bool:
        """Whether the kernel is a Monte Carlo estimate (standard scaling, not IDENTITY)."""
        return not self.linear_scaling and self.mechanism != "IDENTITY"

    def n_pos_emb(self, n_in: int) -> int:
        """Channels of the positional embedding for ``n_in`` input channels."""
        return n_in if self.n_chan_pos_emb is None else self.n_chan_pos_emb

    def check_input(self, shape: tuple[int, ...]) -> None:
        """Inputs ``(N, *spatial, C)`` with at least one spatial axis, channels fitting."""
        if len(shape) < 3:
            raise ValueError(
                "inputs: GlobalSelfAttention needs (N, *spatial, C) inputs with at least one "
                f"spatial axis; got shape {tuple(shape)}"
            )
        if (
            self.emb == "SUM"
            and self.n_chan_pos_emb is not None
            and self.n_chan_pos_emb != shape[-1]
        ):
            raise ValueError(
                f"n_chan_pos_emb: with pos_emb_type='SUM' it must equal the input channels "
                f"({shape[-1]}) or be None; got {self.n_chan_pos_emb}"
            )


def heads_first(y: Array) -> Array:
    """Per-head projections ``(N, P, H, K)`` as ``(H, N, P, K)``."""
    return jnp.moveaxis(y, 2, 0)


# --------------------------------------------------------------------------- finite network


def init(cfg: AttentionConfig, rng: Array, input_shape: tuple[int, ...]) -> tuple[tuple, dict]:
    """Output shape and standard-normal parameters (NTK parameterisation)."""
    cfg.check_input(input_shape)
    kq, kk, kv, ko, kb, kp = jax.random.split(rng, 6)
    n_in = input_shape[-1]
    n_qk = n_in + (cfg.n_pos_emb(n_in) if cfg.emb == "CONCAT" else 0)
    n_v = n_in + (cfg.n_pos_emb(n_in) if cfg.emb == "CONCAT" and cfg.val_pos_emb else 0)
    pos = None
    if cfg.emb != "NONE":
        pos = jax.random.normal(kp, (1, *input_shape[1:-1], cfg.n_pos_emb(n_in)))
        if cfg.pos_emb_decay_fn is not None:  # refuses a decay that is not positive definite
            positional.cholesky_factor(
                tuple(input_shape[1:-1]), cfg.pos_emb_p_norm, cfg.pos_emb_decay_fn
            )
    h = cfg.n_heads
    params = {
        "query": None if cfg.tied else jax.random.normal(kq, (h, n_qk, cfg.n_chan_key)),
        "key": jax.random.normal(kk, (h, n_qk, cfg.n_chan_key)),
        "value": jax.random.normal(kv, (h, n_v, cfg.n_chan_val)),
        "out": jax.random.normal(ko, (h * cfg.n_chan_val, cfg.n_chan_out)),
        "bias": None
        if cfg.b_std is None
        else jax.random.normal(kb, (1,) * (len(input_shape) - 1) + (cfg.n_chan_out,)),
        "pos_emb": pos,
    }
    return (*input_shape[:-1], cfg.n_chan_out), params


def _embeddings(
    cfg: AttentionConfig, pos: Array, spatial: tuple[int, ...], mask: Array | None, dtype: Any
) -> Array:
    """The positional embeddings (correlated by the decay), zero at padding."""
    if cfg.pos_emb_decay_fn is not None:
        chol = positional.cholesky_factor(spatial, cfg.pos_emb_p_norm, cfg.pos_emb_decay_fn)
        flat = pos.reshape(pos.shape[0], -1, pos.shape[-1])
        pos = jnp.einsum("ab,nbc->nac", jnp.asarray(chol, dtype), flat).reshape(pos.shape)
    if mask is not None:
        pos = jnp.where(mask[..., None], 0.0, pos)
    return cfg.W_pos_emb_std * pos


def _with_embeddings(
    cfg: AttentionConfig, params: dict, x: Array, mask: Array | None
) -> tuple[Array, Array]:
    """What queries/keys see and what values see, ``(N, P, C_qk)`` and ``(N, P, C_v)``."""
    n, spatial = x.shape[0], tuple(x.shape[1:-1])
    x_qk = x_v = x
    if cfg.emb != "NONE":
        pos = _embeddings(cfg, taps.per_example(params["pos_emb"], n), spatial, mask, x.dtype)
        if cfg.emb == "SUM":
            x_qk = x + pos
        else:
            x_qk = jnp.concatenate([x, jnp.broadcast_to(pos, (n, *spatial, pos.shape[-1]))], -1)
        x_v = x_qk if cfg.val_pos_emb else x
    return x_qk.reshape(n, -1, x_qk.shape[-1]), x_v.reshape(n, -1, x_v.shape[-1])


def apply(
    cfg: AttentionConfig, params: dict, x: Array, mask: Array | None, **kwargs: Any
) -> tuple[Array, Array | None]:
    """The finite forward pass on ``x`` ``(N, *spatial, C)``; padded keys get no weight."""
    cfg.check_input(x.shape)
    n, spatial, n_in = x.shape[0], tuple(x.shape[1:-1]), x.shape[-1]
    if params["key"].shape[1] != n_in + (cfg.n_pos_emb(n_in) if cfg.emb == "CONCAT" else 0):
        raise ValueError(
            f"inputs: GlobalSelfAttention was initialised for other input channels; "
            f"got inputs of shape {tuple(x.shape)}"
        )
    x_qk, x_v = _with_embeddings(cfg, params, x, mask)
    keys = heads_first(taps.tokenwise(x_qk, params["key"], 1))
    queries = keys if cfg.tied else heads_first(taps.tokenwise(x_qk, params["query"], 1))
    values = heads_first(taps.tokenwise(x_v, params["value"], 1))
    scale = cfg.qk_std / (x_qk.shape[-1] * cfg.n_chan_key ** (1.0 if cfg.linear_scaling else 0.5))
    g = scale * jnp.einsum("hnak,hnbk->hnab", queries, keys)
    key_mask = None if mask is None else mask.reshape(1, n, 1, -1)
    heads = jnp.einsum("hnab,hnbv->navh", attention_weights(g, key_mask, cfg.mechanism), values)
    out = taps.tokenwise(heads.reshape(n, heads.shape[1], -1), params["out"])
    out = out * (cfg.ov_std / (cfg.n_chan_val * cfg.n_heads * x_v.shape[-1]) ** 0.5)
    out = out.reshape(n, *spatial, cfg.n_chan_out)
    if params["bias"] is not None:
        out = out + cfg.b_std * taps.per_example(params["bias"], n)
    return out, mask


# --------------------------------------------------------------------------- constructor


def checked_config(
    n_chan_out, n_chan_key, n_chan_val, n_heads, linear_scaling, W_key_std, W_value_std,
    W_query_std, W_out_std, b_std, attention_mechanism, pos_emb_type, pos_emb_p_norm,
    pos_emb_decay_fn, n_chan_pos_emb, W_pos_emb_std, val_pos_emb, batch_axis, channel_axis,
    tie_query_key, mc_samples, mc_seed, mc_target_rse, mc_max_samples, progress,
) -> AttentionConfig:  # fmt: skip
    """:func:`GlobalSelfAttention`'s arguments checked (errors name the argument) and
    gathered into an :class:`AttentionConfig`.

    Example:
        >>> import inspect
        >>> defaults = {k: p.default for k, p in
        ...             inspect.signature(GlobalSelfAttention).parameters.items()
        ...             if p.default is not inspect.Parameter.empty}
        >>> cfg = checked_config(4, 4, 4, 2, **defaults)
        >>> cfg.tied, cfg.monte_carlo, cfg.mc_samples
        (True, False, None)
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
    if n_chan_pos_emb is not None:
        check_width(n_chan_pos_emb, "n_chan_pos_emb")
    if pos_emb_decay_fn is not None and not callable(pos_emb_decay_fn):
        raise ValueError(f"pos_emb_decay_fn: expected a callable or None, got {pos_emb_decay_fn!r}")
    check_axes("GlobalSelfAttention", batch_axis=batch_axis, channel_axis=channel_axis)
    if progress not in (None, True, False):
        raise TypeError(f"progress: expected None, True or False, got {progress!r}")
    return AttentionConfig(
        n_chan_out=n_chan_out,
        n_chan_key=n_chan_key,
        n_chan_val=n_chan_val,
        n_heads=n_heads,
        linear_scaling=linear_scaling,
        tied=linear_scaling if tie_query_key is None else bool(tie_query_key),
        qk_std=W_query_std * W_key_std,
        ov_std=W_out_std * W_value_std,
        b_std=b_std,
        mechanism=check_choice(attention_mechanism, MECHANISMS, "attention_mechanism"),
        emb=check_choice(pos_emb_type, positional.EMBEDDING_TYPES, "pos_emb_type"),
        pos_emb_p_norm=pos_emb_p_norm,
        pos_emb_decay_fn=pos_emb_decay_fn,
        n_chan_pos_emb=n_chan_pos_emb,
        W_pos_emb_std=W_pos_emb_std,
        val_pos_emb=val_pos_emb,
        mc_samples=check_samples(mc_samples, "mc_samples"),
        mc_seed=check_int(mc_seed, "mc_seed", 0),
        mc_target_rse=check_positive(mc_target_rse, "mc_target_rse"),
        mc_max_samples=check_int(mc_max_samples, "mc_max_samples", 2),
        progress=progress,
    )


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
    mc_samples: int | Literal["auto"] = "auto",
    mc_seed: int = 0,
    mc_target_rse: float = logits.DEFAULT_TARGET_RSE,
    mc_max_samples: int = logits.DEFAULT_MAX_SAMPLES,
    progress: bool | None = None,
):
    """Global multi-head self-attention over all spatial positions of ``(N, *spatial, C)``.

    Arguments match ``neural_tangents.stax.GlobalSelfAttention``. Beyond them:

    * ``tie_query_key``: share ``W^Q = W^K``; ``None`` means tied iff
      ``linear_scaling`` (neural-tangents' behaviour).
    * ``mc_samples``, ``mc_seed``: Monte Carlo budget and seed of the
      infinite-head kernel under standard scaling (``linear_scaling=False``)
      with SOFTMAX, ABS or RELU; results are deterministic given them (and,
      for ``"auto"``, the target and cap). ``mc_samples="auto"`` (the default)
      draws chunks until every entry of the returned nngp and ntk has
      ``se <= mc_target_rse * sqrt(K_aa(x, x) K_bb(x', x'))`` (1% by default;
      ``se`` the Kernel's ``nngp_se``/``ntk_se``; ``docs/standard-scaling.md``,
      section 7) or ``mc_max_samples`` draws are taken (the NTK stops drawing
      once it meets the target): a ``RuntimeWarning`` says when the cap stopped it, an
      ``INFO`` record of the ``infattn.logits.driver`` logger when the target was met. An
      integer fixes the number of draws (``logits.DEFAULT_MC_SAMPLES`` is the
      former default).
    * ``progress``: a progress bar for the Monte Carlo estimate: ``None`` shows
      it once a run has taken 2 s, ``True`` at once, ``False`` never.
      ``Ctrl-C`` stops the estimate between chunks.

    Example:
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.GlobalSelfAttention(4, 4, 4, n_heads=2)
        >>> kernel_fn(jnp.ones((2, 3, 4)), get="nngp").shape
        (2, 2, 3, 3)
    """
    cfg = checked_config(**locals())  # the arguments: this must stay the first statement
    name, boundary = "GlobalSelfAttention", layout.Boundary((batch_axis, channel_axis))
    layer_init, layer_apply = functools.partial(init, cfg), functools.partial(apply, cfg)
    diagonal = Diagonal(input=NO)  # needs the covariances of all position pairs
    if cfg.monte_carlo:
        rule = functools.partial(monte_carlo_kernel, cfg)
        return make_layer(
            layer_init, layer_apply, rule, name,
            pairwise=False, handles_replicates=True, boundary=boundary, diagonal=diagonal,
        )  # fmt: skip
    rule = functools.partial(closed_form_kernel, cfg)
    return make_layer(layer_init, layer_apply, rule, name, boundary=boundary, diagonal=diagonal)
