"""The finite-head law of one standard-scaled attention layer.

With ``H`` heads and infinite key/value width, the output given the heads'
logits ``G_h`` (independent Gaussian fields, ``Cov(G_ac(x), G_bd(x')) = qk^2
S_ab S_cd``) is Gaussian with covariance
``(ov^2 / H) sum_h zeta(G_h(x)) V zeta(G_h(x'))^T + b^2``: a Gaussian scale
mixture (excess kurtosis ``∝ 1/H``).

:func:`finite_head_covariance` draws the heads once and returns that conditional
covariance (the per-layer step of the finite-head law of a whole model,
:func:`infattn.limits.sample_finite_head_outputs`); :func:`sample_finite_head_law`
draws outputs of one layer directly.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

from infattn.logits.chunks import TEMP_ELEMENTS
from infattn.logits.mechanisms import attention_weights, check_mechanism
from infattn.logits.sampling import joint_factor, joint_logits, sym_factor
from infattn.validation import check_int, check_std

Array = jax.Array


def sample_finite_head_law(
    qk_cov: Array,
    v_cov: Array,
    *,
    n_heads: int,
    mechanism: str,
    qk_std: float,
    ov_std: float,
    b_std: float,
    n_samples: int,
    key: Array,
    key_mask: Array | None = None,
) -> Array:
    """Draws of one output channel of a standard-scaled attention layer with
    ``n_heads`` heads and infinite key/value width, jointly over a batch:
    ``(n_samples, N, L)``.

    Sampled exactly as ``f = sqrt(ov_std^2/H) sum_h zeta(G_h) B xi_h + b_std eta``
    with ``B B^T = V`` (joint over the batch), ``xi_h``, ``eta`` standard normal.
    ``qk_cov``, ``v_cov``: ``(N, N, L, L)`` covariances ``S`` and ``V``;
    ``key_mask``: ``(N, L)``, ``True`` at padding keys, or ``None``.

    Example:
        >>> s = jnp.eye(2)[None, None]
        >>> sample_finite_head_law(s, s, n_heads=2, mechanism="SOFTMAX", qk_std=1.0,
        ...     ov_std=1.0, b_std=0.0, n_samples=5, key=jax.random.key(0)).shape
        (5, 1, 2)
    """
    n_heads = check_int(n_heads, "n_heads", 1)
    n_samples = check_int(n_samples, "n_samples", 1)
    mechanism = check_mechanism(mechanism)
    for value, name in ((qk_std, "qk_std"), (ov_std, "ov_std"), (b_std, "b_std")):
        check_std(value, name)
    qk_cov, v_cov = jnp.asarray(qk_cov), jnp.asarray(v_cov)
    n, n_, l, l_ = qk_cov.shape
    if n != n_ or l != l_ or v_cov.shape != qk_cov.shape:
        raise ValueError(
            f"qk_cov and v_cov: expected (N, N, L, L), got {qk_cov.shape}, {v_cov.shape}"
        )
    s_chunk = max(1, min(n_samples, TEMP_ELEMENTS // (8 * n_heads * n * l * l)))
    return _finite_head_jit(
        qk_cov,
        v_cov,
        key,
        None if key_mask is None else jnp.asarray(key_mask, bool),
        n_heads=n_heads,
        mechanism=mechanism,
        qk_std=float(qk_std),
        ov_std=float(ov_std),
        b_std=float(b_std),
        n_samples=n_samples,
        s_chunk=s_chunk,
    )


@functools.partial(
    jax.jit,
    static_argnames=("n_heads", "mechanism", "qk_std", "ov_std", "b_std", "n_samples", "s_chunk"),
)
def _finite_head_jit(
    qk_cov: Array,
    v_cov: Array,
    key: Array,
    key_mask: Array | None,
    *,
    n_heads: int,
    mechanism: str,
    qk_std: float,
    ov_std: float,
    b_std: float,
    n_samples: int,
    s_chunk: int,
) -> Array:
    n, _, l, _ = qk_cov.shape
    dt = jnp.result_type(qk_cov.dtype, jnp.float32)
    draw_weights = _head_weights_sampler(qk_cov, key_mask, qk_std, mechanism, dt)
    bv, _ = sym_factor(jnp.asarray(v_cov, dt).transpose(0, 2, 1, 3).reshape(n * l, n * l))
    n_chunks = -(-n_samples // s_chunk)

    def chunk(c: Array) -> Array:
        kc = jax.random.fold_in(key, c)
        k_g, k_v, k_b = jax.random.split(kc, 3)
        att = draw_weights(k_g, s_chunk * n_heads).reshape(s_chunk, n_heads, n, l, l)
        xi = jax.random.normal(k_v, (s_chunk, n_heads, n * l), dt)
        u = (xi @ bv.T).reshape(s_chunk, n_heads, n, l)
        out = jnp.einsum("shiac,shic->sia", att, u) * (ov_std / math.sqrt(n_heads))
        return out + b_std * jax.random.normal(k_b, (s_chunk, 1, 1), dt)

    out = lax.map(chunk, jnp.arange(n_chunks))
    return out.reshape(n_chunks * s_chunk, n, l)[:n_samples]


def _head_weights_sampler(qk_cov: Array, key_mask: Array | None, qk_std: float, mechanism: str, dt):
    """``draw(key, n_draws) -> (n_draws, N, L, L)``: attention weights ``zeta(G)`` of
    ``n_draws`` independent heads whose logits are drawn jointly over the batch."""
    n, _, l, _ = qk_cov.shape
    block = min(16, n * l)
    a, n_active = joint_factor(jnp.asarray(qk_std * qk_cov, dt), block)
    mask = None if key_mask is None else key_mask[:, None, :]

    def draw(key: Array, n_draws: int) -> Array:
        return attention_weights(joint_logits(a, n_active, key, n_draws, block), mask, mechanism)

    return draw


def finite_head_covariance(
    qk_cov: Array,
    v_cov: Array,
    key: Array,
    *,
    n_heads: int,
    mechanism: str,
    qk_std: float,
    ov_std: float,
    b_std: float,
    key_mask: Array | None = None,
) -> Array:
    """Covariance of one output channel given ``n_heads`` drawn heads: ``(N, N, L, L)``.

    ``ov_std^2 / H sum_h zeta(G_h(x)) V(x, x') zeta(G_h(x'))^T + b_std^2`` with the
    logits ``G_h`` drawn jointly over the batch from ``qk_cov`` (``S``, ``(N, N, L,
    L)``); ``v_cov``: ``V`` (same shape); ``key_mask``: ``(N, L)``, ``True`` at
    padding keys (they get no weight), or ``None``. Traceable (``jit``/``vmap``).

    Example:
        >>> s = jnp.eye(2)[None, None]
        >>> c = finite_head_covariance(s, s, jax.random.key(0), n_heads=2,
        ...     mechanism="SOFTMAX", qk_std=1.0, ov_std=1.0, b_std=0.0)
        >>> c.shape, bool(jnp.allclose(c, c.transpose(1, 0, 3, 2)))
        ((1, 1, 2, 2), True)
    """
    dt = jnp.result_type(qk_cov.dtype, jnp.float32)
    draw_weights = _head_weights_sampler(qk_cov, key_mask, qk_std, mechanism, dt)
    att = draw_weights(key, n_heads)  # (H, N, L, L)
    cov = jnp.einsum("hiac,ijcd,hjbd->ijab", att, jnp.asarray(v_cov, dt), att) / n_heads
    return ov_std**2 * cov + b_std**2
