"""Running moments, standard errors and log-log fits shared by all Monte Carlo code.

* :class:`Moments`, :func:`moments`, :func:`combine`: the count, mean and
  centred sum of squares ``m2`` of a stream of draws, merged batch by batch with
  Chan et al.'s parallel update (exact, and stable where the naive
  ``sum x^2 - n mean^2`` is not).
* :func:`standard_error`: the standard error of the mean of those draws.
* :func:`batch_means_se`: the standard error of a mean from ``R`` independent
  estimates of it (batch means).
* :func:`loglog_fit`: weighted least squares of ``log y`` on ``log x``.

The array functions work on NumPy and JAX arrays alike (jit-able); :func:`moments`
returns JAX arrays.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np


class Moments(NamedTuple):
    """``count`` draws with elementwise ``mean`` and ``m2 = sum (x - mean)^2``."""

    count: Any
    mean: Any
    m2: Any


def moments(draws: Any, weights: Any = None) -> Moments:
    """Moments of ``draws`` ``(n, *shape)`` over the leading axis.

    ``weights`` ``(n,)``: 1 for a draw, 0 for padding (``None``: all ones);
    padding may hold anything, NaN included.

    Example:
        >>> m = moments(jnp.array([1.0, 2.0, 6.0]))
        >>> float(m.count), float(m.mean), float(m.m2)
        (3.0, 3.0, 14.0)
    """
    n = draws.shape[0]
    weights = jnp.ones(n, draws.dtype) if weights is None else jnp.asarray(weights)
    w = weights.reshape((n,) + (1,) * (draws.ndim - 1)).astype(draws.dtype)
    count = jnp.sum(weights)
    safe = jnp.where(w > 0, draws, 0.0)
    mean = jnp.sum(w * safe, 0) / jnp.maximum(count, 1)
    return Moments(count, mean, jnp.sum(w * (safe - mean) ** 2, 0))


def combine(a: Moments, b: Moments) -> Moments:
    """The moments of two disjoint sets of draws merged (Chan et al.).

    Also updates with one batch mean of ``nb`` draws: ``combine(acc, Moments(nb, mb, 0))``.

    Example:
        >>> x = jnp.array([1.0, 2.0, 6.0, 7.0])
        >>> m = combine(moments(x[:1]), moments(x[1:]))
        >>> float(m.mean), float(m.m2)
        (4.0, 26.0)
    """
    n = a.count + b.count
    safe_n = n + (n == 0)  # plain arithmetic: NumPy, JAX or Python numbers
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.count / safe_n)
    return Moments(n, mean, a.m2 + b.m2 + delta**2 * (a.count * b.count / safe_n))


def standard_error(m: Moments) -> Any:
    """Standard error of ``m.mean``: ``sqrt(m2 / (count - 1) / count)``.

    Example:
        >>> float(standard_error(moments(jnp.array([1.0, 3.0]))))
        1.0
    """
    return (m.m2 / ((m.count - 1) * m.count)) ** 0.5


def batch_means_se(estimates: Any, axis: int = 0) -> Any:
    """Standard error of the mean of ``R`` independent estimates along ``axis``.

    ``std(estimates, ddof=1) / sqrt(R)``: the SE of the estimate that pools the
    ``R`` sub-streams' samples, each estimate being one sub-stream's.

    Example:
        >>> float(batch_means_se(jnp.array([1.0, 3.0])))
        1.0
    """
    return estimates.std(axis=axis, ddof=1) / np.sqrt(estimates.shape[axis])


class LogLogFit(NamedTuple):
    """``log y = intercept + slope * log x``.

    ``cov``: ``(2, 2)`` covariance of ``(intercept, slope)``; with standard
    errors it treats them as known, ``(X^T W X)^-1``, without it is the OLS
    estimate scaled by ``chi2 / dof``. ``chi2``: weighted residual sum of
    squares; ``dof = len(x) - 2``.
    """

    slope: float
    intercept: float
    cov: np.ndarray
    chi2: float
    dof: int

    @property
    def slope_se(self) -> float:
        return float(np.sqrt(self.cov[1, 1]))

    @property
    def intercept_se(self) -> float:
        return float(np.sqrt(self.cov[0, 0]))


def loglog_fit(x: Any, y: Any, y_se: Any = None) -> LogLogFit:
    """Weighted least squares of ``log y`` on ``log x``; ``x``, ``y`` positive, ``(m,)``.

    ``y_se``: standard errors of ``y``; the weights ``(y / y_se)^2`` are the
    inverse delta-method variances of ``log y``. ``None``: unweighted. Needs at
    least two distinct ``x``.

    Example:
        >>> fit = loglog_fit([1.0, 2.0, 4.0], [8.0, 4.0, 2.0])
        >>> round(fit.slope, 6), round(float(np.exp(fit.intercept)), 6)
        (-1.0, 8.0)
    """
    x = np.asarray(x, np.float64).reshape(-1)
    y = np.asarray(y, np.float64).reshape(-1)
    lx, ly = np.log(x), np.log(y)
    w = np.ones_like(ly) if y_se is None else (y / np.asarray(y_se, np.float64).reshape(-1)) ** 2
    design = np.stack([np.ones_like(lx), lx], 1)
    xtw = design.T * w
    cov = np.linalg.inv(xtw @ design)
    beta = cov @ (xtw @ ly)
    dof = x.size - 2
    chi2 = float(np.sum(w * (ly - design @ beta) ** 2))
    if y_se is None:
        cov = cov * (chi2 / dof if dof > 0 else np.nan)
    return LogLogFit(float(beta[1]), float(beta[0]), cov, chi2, dof)
