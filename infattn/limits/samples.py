"""Outputs of finite networks across random initialisations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from infattn.empirical.chunks import PARALLEL_PARAMETER_BYTES
from infattn.empirical.draws import Network, draw_params, output, param_shapes, with_rng
from infattn.validation import as_array, check_finite, check_key

Array = jax.Array


def sample_outputs(
    init_fn: Callable[..., tuple[Any, Any]],
    apply_fn: Callable[..., Any],
    x: Any,
    n_samples: int,
    key: Array,
    *,
    batch_size: int | None = None,
    **apply_fn_kwargs: Any,
) -> Array:
    """Outputs of the finite network at ``x`` for ``n_samples`` random initialisations.

    Draw ``i`` initialises the network as draw ``i`` of
    :func:`~infattn.empirical.monte_carlo_kernel_fn` with the same ``key`` does
    (``fold_in(key, i)``), so samples and Monte Carlo kernels describe the same
    networks. Padding entries of a ``MaskedArray`` output are zeroed.

    Args:
      init_fn, apply_fn: the network (e.g. from ``infattn.stax``).
      x: inputs ``(N, ..., C)``.
      n_samples: number of initialisations.
      key: a JAX PRNG key.
      batch_size: initialisations ``vmap``-ed together (``None``: as many as keep
        32 MiB of parameters live, at most 256).
      **apply_fn_kwargs: passed to ``apply_fn`` (e.g. ``mask_constant``).

    Returns:
      ``(n_samples, N, ..., C_out)``.

    Example:
        >>> from infattn import stax
        >>> init_fn, apply_fn, _ = stax.serial(stax.Dense(16), stax.Relu(), stax.Dense(2))
        >>> sample_outputs(init_fn, apply_fn, jnp.ones((3, 4)), 5, jax.random.PRNGKey(0)).shape
        (5, 3, 2)
    """
    x = as_array(x, "x", 2, "an array of shape (N, ..., C)")
    check_finite(x, "x", apply_fn_kwargs.get("mask_constant"))
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples: expected a positive integer, got {n_samples!r}")
    key = check_key(key)
    net = Network(init_fn, apply_fn)
    if batch_size is None:
        leaves = jax.tree_util.tree_leaves(param_shapes(net, x))
        size = sum(p.size * p.dtype.itemsize for p in leaves)
        batch_size = int(min(256, max(1, PARALLEL_PARAMETER_BYTES // max(size, 1))))
    elif isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer or None, got {batch_size!r}")

    def one(i: Array) -> Array:
        params, rng = draw_params(net, jax.random.fold_in(key, i), x.shape)
        return output(net, params, x, with_rng(net, apply_fn_kwargs, rng))

    return jax.lax.map(one, jnp.arange(n_samples), batch_size=min(batch_size, n_samples))
