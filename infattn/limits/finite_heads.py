"""The finite-head law of a whole model: its infinite-width limit with ``H`` heads kept.

With infinite width but a finite number of heads ``H``, a standard-scaling
(``linear_scaling=False``) attention layer's output is Gaussian *given* its
heads' logits, which are Gaussian given the covariance of the layer's input. One
draw of the law therefore walks the model once: each such layer draws its heads
(:func:`infattn.logits.finite_head_covariance`) from the conditional covariance
it receives and passes on the conditional covariance given them; every other
layer applies its kernel rule. The outputs are then Gaussian given that final
covariance. The kernel rules carry the randomness as ``Kernel.law_key``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from infattn.kernel import Kernel
from infattn.stax.attention import to_positions
from infattn.stax.layer import inputs_to_kernel
from infattn.validation import as_array, check_key

Array = jax.Array

NEGATIVE_TOLERANCE = 1e-6
"""Eigenvalues of the final covariance below ``-NEGATIVE_TOLERANCE * max`` raise."""


def sample_finite_head_outputs(
    kernel_fn: Callable[..., Any],
    x: Any,
    n_samples: int,
    key: Array,
    *,
    n_channels: int = 1,
    batch_size: int | None = None,
    mask_constant: float | None = None,
) -> Array:
    """Draws of the model's outputs in its infinite-width, finite-head limit.

    Each draw samples every standard-scaling attention layer's ``n_heads`` heads
    (jointly over all inputs and positions) given the sampled covariance of its
    input, applies the other layers' kernel rules (``1/d`` attention is
    deterministic), and draws ``n_channels`` i.i.d. output channels from the
    resulting conditional covariance, jointly over inputs and positions. As the
    heads grow the law tends to the Gaussian process of ``kernel_fn(x).nngp``;
    their covariance equals it for every ``H`` after a single attention layer.

    Args:
      kernel_fn: the model's kernel function (e.g. from ``infattn.stax``).
      x: inputs ``(N, *spatial, C)``.
      n_samples: number of draws.
      key: a JAX PRNG key.
      n_channels: i.i.d. output channels per draw.
      batch_size: draws ``vmap``-ed together (``None``: up to 64).
      mask_constant: entries of ``x`` equal to it are padding (as in ``kernel_fn``).

    Returns:
      ``(n_samples, N, *spatial_out, n_channels)``.

    Raises:
      ValueError: for bad arguments, or when a draw's final covariance is not
        finite or clearly not positive semi-definite.

    Example:
        >>> from infattn import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(8), stax.GlobalSelfAttention(
        ...     8, 8, 8, n_heads=2, linear_scaling=False))
        >>> x = jnp.ones((2, 3, 4))
        >>> sample_finite_head_outputs(kernel_fn, x, 5, jax.random.PRNGKey(0)).shape
        (5, 2, 3, 1)
    """
    x = as_array(x, "x", 2, "an array of shape (N, ..., C)")
    for value, name in ((n_samples, "n_samples"), (n_channels, "n_channels")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size: expected a positive integer or None, got {batch_size!r}")
    key = check_key(key)
    k0 = inputs_to_kernel(x, compute_ntk=False, mask_constant=mask_constant)

    def one(i: Array) -> tuple[Array, Array]:
        k_law, k_out = jax.random.split(jax.random.fold_in(key, i))
        out = kernel_fn(k0.replace(law_key=k_law))
        return _gaussian_channels(out, k_out, n_channels)

    draws, bad = jax.jit(
        lambda idx: jax.lax.map(one, idx, batch_size=min(batch_size or 64, n_samples))
    )(jnp.arange(n_samples))
    if bool(jnp.any(bad)):
        raise ValueError(
            "kernel_fn: the conditional output covariance of a draw is not finite or clearly "
            "not positive semi-definite; expected a valid covariance"
        )
    return draws


def _gaussian_channels(k: Kernel, key: Array, n_channels: int) -> tuple[Array, Array]:
    """``n_channels`` draws from ``k.nngp`` jointly over inputs and positions, and
    whether the covariance was invalid (non-finite or clearly not PSD)."""
    n = k.nngp.shape[0]
    spatial = k.spatial_shape
    c = to_positions(k.nngp, 2)  # (N, N, P, P)
    p = c.shape[-1]
    m = c.transpose(0, 2, 1, 3).reshape(n * p, n * p)
    m = 0.5 * (m + m.T)
    lam, u = jnp.linalg.eigh(m)
    top = jnp.max(jnp.abs(lam))
    bad = ~jnp.all(jnp.isfinite(m)) | (jnp.min(lam) < -NEGATIVE_TOLERANCE * top)
    f = u * jnp.sqrt(jnp.clip(lam, 0.0))
    z = jax.random.normal(key, (n * p, n_channels), f.dtype)
    return (f @ z).reshape(n, *spatial, n_channels), bad
