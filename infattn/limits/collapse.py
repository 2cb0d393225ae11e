"""Untied ``1/d`` attention collapses to uniform averaging: how fast, measured.

With ``linear_scaling=True, tie_query_key=False`` the logits of finite attention
vanish like ``d^{-1/2}`` and the attention matrices approach the uniform matrix
over unmasked keys; the analytic kernel is that of uniform averaging.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infattn.limits.slopes import SlopeFit, fit_loglog_slope
from infattn.limits.sweep import ConvergenceSweep, convergence_sweep
from infattn.logits.mechanisms import attention_weights
from infattn.validation import as_array, check_int, check_key

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class CollapseResult:
    """How finite untied ``1/d`` attention collapses to uniform averaging.

    ``widths``: key widths ``d``; ``attention_distance``/``attention_distance_se``:
    mean over draws (and its SE) of ``||zeta(G) - U||_F / ||U||_F`` per example and
    head, ``U`` the uniform attention over unmasked keys; ``attention_fit``: its
    log-log slope (theory: ``-1/2``). ``kernel``: the :class:`ConvergenceSweep` of
    the model's kernels against the analytic (uniform-averaging) kernels, or
    ``None`` (theory: bias slope ``-1``).
    """

    widths: tuple[int, ...]
    attention_distance: tuple[float, ...]
    attention_distance_se: tuple[float, ...]
    attention_fit: SlopeFit
    kernel: ConvergenceSweep | None

    def __str__(self) -> str:
        lines = [f"{'width':>7}{'||A - U|| / ||U||':>20}{'se':>10}"]
        for w, d, s in zip(
            self.widths, self.attention_distance, self.attention_distance_se, strict=True
        ):
            lines.append(f"{w:>7}{d:>20.4e}{s:>10.1e}")
        lines.append(f"attention matrices: {self.attention_fit}")
        if self.kernel is not None:
            lines.extend(["", str(self.kernel)])
        return "\n".join(lines)

    def plot(self, ax: Any = None) -> Any:
        """Log-log plot of the attention-matrix distance and its fit; returns the figure."""
        from infattn.limits.plots import plot_collapse

        return plot_collapse(self, ax)


def attention_collapse(
    x: Any,
    widths: Sequence[int],
    *,
    key: Array,
    n_samples: int = 64,
    qk_std: float = 1.0,
    mask: Any = None,
) -> tuple[np.ndarray, np.ndarray, SlopeFit]:
    """Distance of finite untied ``1/d`` softmax attention matrices to uniform averaging.

    The finite layer's logits (neural-tangents' forward, ``W^Q`` and ``W^K``
    independent ``N(0, 1)`` of shape ``(C, d)``) are
    ``G = qk_std * (x W^Q)(x W^K)^T / (C d)``; as ``d -> inf`` they go to 0 like
    ``d^{-1/2}`` and ``softmax(G)`` to the uniform matrix ``U``.

    Args:
      x: ``(N, L, C)`` attention inputs (after any positional embedding).
      widths: key widths ``d``.
      key: PRNG key. n_samples: draws of ``(W^Q, W^K)`` per width.
      qk_std: ``W_query_std * W_key_std``.
      mask: ``(N, L)`` booleans, ``True`` at padding keys (excluded), or ``None``.

    Returns:
      ``(mean, se, fit)``: per width the mean over draws, examples of
      ``||softmax(G) - U||_F / ||U||_F`` and its standard error, and the slope fit.

    Example:
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (1, 3, 4))
        >>> mean, se, fit = attention_collapse(x, [4, 64], key=jax.random.PRNGKey(1),
        ...                                    n_samples=16)
        >>> bool(mean[1] < mean[0])
        True
    """
    x = as_array(x, "x", 3, "an array of shape (N, L, C)")
    if x.ndim != 3:
        raise ValueError(f"x: expected an array of shape (N, L, C), got shape {x.shape}")
    check_int(n_samples, "n_samples", 2)
    key = check_key(key)
    n, length, c = x.shape
    valid = jnp.ones((n, length), bool) if mask is None else ~jnp.asarray(mask, bool)
    means, ses = [], []
    for i, d in enumerate(widths):

        @jax.jit
        def one(k: Array, d: int = int(d)) -> Array:
            kq, kk = jax.random.split(k)
            q = x @ jax.random.normal(kq, (c, d), x.dtype)
            kv = x @ jax.random.normal(kk, (c, d), x.dtype)
            g = qk_std * jnp.einsum("nad,nbd->nab", q, kv) / (c * d)
            a = attention_weights(g, ~valid[:, None, :], "SOFTMAX")
            u = valid[:, None, :] / jnp.sum(valid, -1)[:, None, None]
            rows = valid[:, :, None]
            diff = jnp.sqrt(jnp.sum(jnp.where(rows, (a - u) ** 2, 0.0), (1, 2)))
            norm = jnp.sqrt(jnp.sum(jnp.where(rows, u**2, 0.0), (1, 2)))
            return jnp.mean(diff / norm)

        keys = jax.vmap(lambda j, i=i: jax.random.fold_in(jax.random.fold_in(key, i), j))(
            jnp.arange(n_samples)
        )
        vals = np.asarray(jax.lax.map(one, keys), np.float64)
        means.append(vals.mean())
        ses.append(vals.std(ddof=1) / np.sqrt(n_samples))
    means_a, ses_a = np.array(means), np.array(ses)
    fit = fit_loglog_slope(widths, means_a, ses_a, against="width", kind="attention")
    return means_a, ses_a, fit


def uniform_collapse(
    x: Any,
    widths: Sequence[int],
    *,
    key: Array,
    n_samples: int = 64,
    qk_std: float = 1.0,
    factory: Callable[[int], tuple[Callable, Callable, Callable]] | None = None,
    get: str | Sequence[str] = "nngp",
    **sweep_kwargs: Any,
) -> CollapseResult:
    """Show that untied ``1/d`` attention degenerates to uniform averaging.

    With ``linear_scaling=True, tie_query_key=False`` the logits vanish as
    ``d -> inf`` and the analytic kernel is that of uniform averaging over keys.
    This measures (1) the distance of finite attention matrices to the uniform
    one (:func:`attention_collapse`, slope ``-1/2``) and, given
    ``factory(width) -> (init_fn, apply_fn, kernel_fn)`` of such a model (e.g. one
    ``GlobalSelfAttention(..., linear_scaling=True, tie_query_key=False)`` with
    ``n_chan_key=width``), (2) the bias of its empirical kernels against its
    analytic (uniform-averaging) kernel, via :func:`convergence_sweep` with one
    head count (slope ``-1``). ``sweep_kwargs`` go to :func:`convergence_sweep`
    (``n_samples`` and ``key`` are shared).

    Example:
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (1, 3, 4))
        >>> result = uniform_collapse(x, [4, 64], key=jax.random.PRNGKey(1), n_samples=16)
        >>> result.widths, result.kernel is None
        ((4, 64), True)
    """
    means, ses, fit = attention_collapse(
        x, widths, key=key, n_samples=n_samples, qk_std=qk_std, mask=sweep_kwargs.pop("mask", None)
    )
    kernel = None
    if factory is not None:
        kernel = convergence_sweep(
            lambda h, w: factory(w),
            x,
            heads=(1,),
            widths=widths,
            n_samples=n_samples,
            key=jax.random.fold_in(key, 10**6),
            get=get,
            check_heads=False,
            **sweep_kwargs,
        )
    return CollapseResult(
        tuple(int(w) for w in widths),
        tuple(float(m) for m in means),
        tuple(float(s) for s in ses),
        fit,
        kernel,
    )
