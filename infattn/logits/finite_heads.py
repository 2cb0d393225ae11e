"""The finite-head law of one standard-scaled attention layer.

With ``H`` heads and infinite key/value width, the output given the heads'
logits ``G_h`` (independent Gaussian fields, ``Cov(G_ac(x), G_bd(x')) = qk^2
S_ab S_cd``) is Gaussian with covariance
``(ov^2 / H) sum_h zeta(G_h(x)) V zeta(G_h(x'))^T + b^2``: a Gaussian scale
mixture (excess kurtosis ``∝ 1/H``).

:func:`finite_head_covariance` draws the heads once and returns that conditional
covariance: the per-layer step of the finite-head law of a whole model, whose
outputs :func:`infattn.limits.sample_finite_head_outputs` draws.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from infattn.logits.mechanisms import attention_weights, check_mechanism
from infattn.logits.sampling import joint_factor, joint_logits
from infattn.validation import check_int

Array = jax.Array


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
    padding keys (they get no weight), or ``None``. Traceable (``jit``/``vmap``);
    ``n_heads`` and ``mechanism`` (upper case, as in ``stax``) are checked.

    Example:
        >>> s = jnp.eye(2)[None, None]
        >>> c = finite_head_covariance(s, s, jax.random.key(0), n_heads=2,
        ...     mechanism="SOFTMAX", qk_std=1.0, ov_std=1.0, b_std=0.0)
        >>> c.shape, bool(jnp.allclose(c, c.transpose(1, 0, 3, 2)))
        ((1, 1, 2, 2), True)
    """
    n_heads = check_int(n_heads, "n_heads", 1)
    mechanism = check_mechanism(mechanism)
    dt = jnp.result_type(qk_cov.dtype, jnp.float32)
    block = min(16, qk_cov.shape[0] * qk_cov.shape[2])
    a, n_active = joint_factor(jnp.asarray(qk_std * qk_cov, dt), block)
    mask = None if key_mask is None else key_mask[:, None, :]
    logits = joint_logits(a, n_active, key, n_heads, block)
    att = attention_weights(logits, mask, mechanism)  # (H, N, L, L)
    cov = jnp.einsum("hiac,ijcd,hjbd->ijab", att, jnp.asarray(v_cov, dt), att) / n_heads
    return ov_std**2 * cov + b_std**2
