"""Kernel algebra for inference: flat layouts, regularisation, guarded factorisations.

Kernels of outputs ``f(x)`` of shape ``(N, *B, K)`` are stored interleaved, as
everywhere in infattn: ``(N1, N2, B1, B1', ...)`` with the *trace axes* (the
output axes over which the kernel is a multiple of the identity, usually the
channels) absent. Inference works on flat matrices: :func:`flatten_kernel` turns
an interleaved kernel into ``(N1 * prod(B), N2 * prod(B'))`` and :class:`Outputs`
turns targets into ``(N * prod(B), prod(trace))`` and back.

A train kernel that is numerically singular in its dtype makes a plain Cholesky
factorisation fail (NaN). :func:`cholesky` then adds escalating jitter to the
diagonal and warns how much it added; it raises if even a large jitter fails.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

MAX_RELATIVE_JITTER = 1e-2
"""The largest jitter :func:`cholesky` tries, relative to the mean diagonal."""


class SingularKernelWarning(UserWarning):
    """A train kernel needed jitter on its diagonal to be factorised."""


def flatten_kernel(k: Array) -> Array:
    """Interleaved ``(A1, A1', A2, A2', ...)`` -> ``(A1 * A2 * ..., A1' * A2' * ...)``.

    Example:
      >>> flatten_kernel(jnp.zeros((3, 5, 2, 4))).shape
      (6, 20)
    """
    k = jnp.asarray(k)
    if k.ndim % 2:
        raise ValueError(f"kernel: expected an even number of axes (pairs), got shape {k.shape}")
    k = jnp.transpose(k, (*range(0, k.ndim, 2), *range(1, k.ndim, 2)))
    half = k.ndim // 2
    return k.reshape(math.prod(k.shape[:half]), math.prod(k.shape[half:]))


def zip_square(m: Array, shape: tuple[int, ...], lead: int = 0) -> Array:
    """Flat ``(*lead, A, A)`` (``A = prod(shape)``) -> interleaved ``(*lead, s1, s1, s2, s2, ...)``.

    Example:
      >>> zip_square(jnp.zeros((7, 6, 6)), (3, 2), lead=1).shape
      (7, 3, 3, 2, 2)
    """
    m = m.reshape(m.shape[:lead] + shape + shape)
    n = len(shape)
    order = list(range(lead))
    for d in range(n):
        order += [lead + d, lead + n + d]
    return jnp.transpose(m, order)


@dataclasses.dataclass(frozen=True)
class Outputs:
    """The layout of outputs ``f(x)``: which axes the kernel traces over.

    ``trace_axes`` are stored negative (counted from the end), so leading time axes
    and test batches of another size keep them in place.
    """

    ndim: int
    trace_axes: tuple[int, ...]
    trace_shape: tuple[int, ...]

    @classmethod
    def of(cls, y: Any, trace_axes: int | Sequence[int]) -> Outputs:
        """The layout of targets ``y`` with kernels traced over ``trace_axes``.

        Example:
          >>> Outputs.of(jnp.zeros((4, 3, 2)), trace_axes=(-1,)).trace_shape
          (2,)
        """
        ndim = jnp.ndim(y)
        axes = (trace_axes,) if isinstance(trace_axes, int) else tuple(trace_axes)
        for a in axes:
            if not -ndim <= int(a) < ndim:
                raise ValueError(f"trace_axes: axis {a} is out of range for y of shape {y.shape}")
        if any(int(a) % ndim == 0 for a in axes):
            raise ValueError("trace_axes: the batch axis 0 cannot be traced over")
        neg = tuple(sorted({int(a) % ndim - ndim for a in axes}))
        return cls(ndim, neg, tuple(y.shape[a] for a in neg))

    def flatten(self, f: Array) -> Array:
        """``(N, ...)`` outputs -> ``(rows, prod(trace_shape))`` in the kernel's row order."""
        f = jnp.moveaxis(jnp.asarray(f), self.trace_axes, range(-len(self.trace_axes), 0))
        return f.reshape(-1, math.prod(self.trace_shape))

    def unflatten(self, flat: Array, batch_shape: tuple[int, ...], lead: tuple[int, ...] = ()):
        """``(*lead, rows, prod(trace))`` -> outputs ``(*lead, *batch_shape)``, trace axes back."""
        f = flat.reshape(lead + batch_shape + self.trace_shape)
        return jnp.moveaxis(f, range(-len(self.trace_axes), 0), self.trace_axes)


def regularize(k: Array, diag_reg: float, absolute: bool) -> Array:
    """``k + diag_reg * I``, scaled by ``k``'s mean diagonal unless ``absolute``.

    ``k``: ``(n, n)``.

    Example:
      >>> regularize(2 * jnp.eye(2), 0.5, absolute=False)[0, 0].item()
      3.0
    """
    n = k.shape[0]
    scale = diag_reg if absolute else diag_reg * jnp.trace(k) / n
    return k + scale * jnp.eye(n, dtype=k.dtype)


def _jitter_ladder(dtype: Any) -> np.ndarray:
    """Relative jitters to try: 0, then 10 eps, 100 eps, ... up to MAX_RELATIVE_JITTER."""
    eps = float(jnp.finfo(dtype).eps)
    steps = int(np.floor(np.log10(MAX_RELATIVE_JITTER / eps)))
    return np.concatenate([[0.0], eps * 10.0 ** np.arange(1, steps + 1)])


@jax.jit
def _cholesky_with_jitter(k: Array) -> tuple[Array, Array]:
    """Lower Cholesky factor of ``k + jitter * I`` with the smallest jitter of the ladder."""
    ladder = jnp.asarray(_jitter_ladder(k.dtype), k.dtype)
    scale = jnp.mean(jnp.abs(jnp.diagonal(k)))
    scale = jnp.where(scale > 0, scale, 1.0)
    eye = jnp.eye(k.shape[0], dtype=k.dtype)

    def attempt(i):
        jitter = ladder[i] * scale
        return jnp.linalg.cholesky(k + jitter * eye), jitter

    def failed(state):
        i, factor, _ = state
        return (i < ladder.shape[0] - 1) & ~jnp.all(jnp.isfinite(factor))

    def step(state):
        i = state[0] + 1
        return (i, *attempt(i))

    _, factor, jitter = jax.lax.while_loop(failed, step, (0, *attempt(0)))
    return factor, jitter


def _report(jitter: Any, scale: Any, ok: Any, dtype: Any) -> None:
    jitter, scale = float(jitter), float(scale)
    if not bool(ok):
        raise np.linalg.LinAlgError(
            f"train kernel: not positive definite in {np.dtype(dtype).name}, even with "
            f"{MAX_RELATIVE_JITTER:g} x its mean diagonal added; is it a kernel (symmetric, "
            "positive semi-definite)? Pass a larger diag_reg to regularise it"
        )
    if jitter > 0:
        warnings.warn(
            f"train kernel is numerically singular in {np.dtype(dtype).name}: added jitter "
            f"{jitter:.3g} ({jitter / scale:.1e} x its mean diagonal) to its diagonal for the "
            "Cholesky factorisation; pass diag_reg to regularise explicitly",
            SingularKernelWarning,
            stacklevel=4,
        )


def cholesky(k: Array) -> Array:
    """Lower Cholesky factor of ``k`` ``(n, n)``, with escalating jitter if needed.

    The plain factorisation is tried first; if it fails (a numerically singular
    kernel) jitter ``10^j eps * mean(diag)`` is added for ``j = 1, 2, ...`` until it
    succeeds, with a :class:`SingularKernelWarning` saying how much was added.
    Raises ``numpy.linalg.LinAlgError`` when even ``MAX_RELATIVE_JITTER`` fails.

    Example:
      >>> cholesky(jnp.array([[4.0, 2.0], [2.0, 2.0]]))[1, 1].item()
      1.0
    """
    k = jnp.asarray(k)
    factor, jitter = _cholesky_with_jitter(k)
    scale = jnp.mean(jnp.abs(jnp.diagonal(k)))
    ok = jnp.all(jnp.isfinite(factor))
    if isinstance(jitter, jax.core.Tracer):
        jax.debug.callback(_report, jitter, scale, ok, k.dtype)
    else:
        _report(jitter, scale, ok, k.dtype)
    return factor


def cho_solve(factor: Array, b: Array) -> Array:
    """``A^{-1} b`` from the lower Cholesky factor of ``A``; ``b``: ``(n, ...)``.

    Example:
      >>> cho_solve(cholesky(4.0 * jnp.eye(2)), jnp.ones(2)).tolist()
      [0.25, 0.25]
    """
    return jax.scipy.linalg.cho_solve((factor, True), b)


def spectrum(k: Array) -> tuple[Array, Array]:
    """Eigenvalues ``(n,)`` (negative ones, numerical noise of a PSD kernel, set to 0) and
    eigenvectors ``(n, n)`` (columns) of a symmetric ``k``.

    Example:
      >>> spectrum(jnp.diag(jnp.array([2.0, -1e-17])))[0].tolist()
      [0.0, 2.0]
    """
    evals, evecs = jnp.linalg.eigh(k)
    return jnp.maximum(evals, 0.0), evecs


def decay(evals: Array, s: Array) -> Array:
    """``expm1(-lambda * s)``: ``e^{-lambda s} - 1`` for each eigenvalue and time ``s``.

    ``evals``: ``(n,)``, ``s``: ``(T,)``; returns ``(T, n)``.

    Example:
      >>> decay(jnp.array([0.0, 1.0]), jnp.array([jnp.inf]))[0].tolist()
      [0.0, -1.0]
    """
    lam, s = evals[None, :], s[:, None]
    return jnp.where(lam > 0, jnp.expm1(-lam * jnp.where(lam > 0, s, 0.0)), 0.0)


def decay_over_eval(evals: Array, s: Array) -> Array:
    """``(e^{-lambda s} - 1) / lambda`` (``(T, n)``); 0 for a zero eigenvalue.

    A zero eigenvalue is a direction of the training set no kernel function can
    reach (the test-train kernel is orthogonal to it), so it contributes nothing.

    Example:
      >>> decay_over_eval(jnp.array([0.0, 2.0]), jnp.array([jnp.inf]))[0].tolist()
      [0.0, -0.5]
    """
    lam = evals[None, :]
    return decay(evals, s) / jnp.where(lam > 0, lam, 1.0)
