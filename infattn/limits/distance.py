"""Distance of an empirical kernel estimate to an analytic kernel: noise and bias apart.

The question "does the finite network approach the analytic kernel, and how fast?"
is answered with Monte Carlo estimates, which mix two errors: *noise* (finite
number of draws; shrinks as ``1/sqrt(n_samples)``) and *bias* (finite heads and
widths; what the limit theory is about). Everything here separates them.

For one configuration with per-draw empirical kernels ``X_1..X_n`` (flattened) and
an analytic kernel ``A`` (possibly a Monte Carlo estimate with standard errors
``s_A``, as under standard ``1/sqrt(d)`` scaling):

* ``rel_fro = ||mean - A|| / ||A||`` (Frobenius; raw, noise included) and
  ``rel_noise = sqrt(sum se^2 + sum s_A^2) / ||A||``, the value ``rel_fro``
  would have from noise alone;
* ``bias_sq``, an unbiased estimate of ``||E X - A_true||^2``: the U-statistic
  ``sum_{i != j} <X_i - A, X_j - A> / (n (n - 1))`` (equal to
  ``||mean - A||^2 - sum se^2``) minus ``sum s_A^2``; its standard error is the
  U-statistic variance ``2 (2 (n-2) zeta1 + zeta2) / (n (n-1))`` with plug-in
  ``zeta1 = mu' S mu``, ``zeta2 = tr(S^2) + 2 zeta1`` (``S`` the per-draw
  covariance, ``mu`` the mean deviation), plus the delta-method term of ``s_A``;
* ``rel_bias = sqrt(max(bias_sq, 0)) / ||A||`` with a confidence interval
  mapped from ``bias_sq +- z se``; a bias is *resolved* when
  ``bias_sq > 2 se``;
* ``max_abs = max |mean - A|`` and ``max_z``, the largest entrywise
  ``|mean - A| / sqrt(se^2 + s_A^2)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy import stats

from infattn.validation import as_float64, check_finite


@dataclasses.dataclass(frozen=True)
class Distance:
    """Distance of one empirical kernel estimate to its analytic kernel (see module doc)."""

    kind: str
    n_heads: int
    width: int
    n_samples: int
    analytic_norm: float
    rel_fro: float
    rel_noise: float
    bias_sq: float
    bias_sq_se: float
    rel_bias: float
    rel_bias_ci: tuple[float, float]
    max_abs: float
    max_z: float

    @property
    def resolved(self) -> bool:
        """Whether the bias is resolved above the noise (``bias_sq > 2 se``)."""
        return bool(self.bias_sq > 2.0 * self.bias_sq_se)

    @property
    def rel_bias_se(self) -> float:
        """Delta-method standard error of ``rel_bias`` (``inf`` when unresolved)."""
        if self.bias_sq <= 0:
            return math.inf
        return self.bias_sq_se / (2.0 * math.sqrt(self.bias_sq) * self.analytic_norm)


def _checked(draws: Any, analytic: Any, analytic_se: Any) -> tuple[np.ndarray, ...]:
    """``draws`` ``(n, *K)``, ``analytic`` ``K`` and its SEs as float64, validated."""
    x = as_float64(draws, "draws")
    a = as_float64(analytic, "analytic")
    if x.ndim < 1 or x.shape[0] < 3:
        raise ValueError(f"draws: expected shape (n >= 3, ...), got {x.shape}")
    if x.shape[1:] != a.shape:
        raise ValueError(f"analytic: expected the draws' kernel shape {x.shape[1:]}, got {a.shape}")
    for v, name in ((x, "draws"), (a, "analytic")):
        check_finite(v, name, padding=False)
    sa = np.zeros_like(a) if analytic_se is None else as_float64(analytic_se, "analytic_se")
    if sa.shape != a.shape:
        raise ValueError(f"analytic_se: expected the shape of analytic {a.shape}, got {sa.shape}")
    return x, a, sa


def distance(
    draws: Any,
    analytic: Any,
    analytic_se: Any = None,
    *,
    level: float = 0.95,
    kind: str = "nngp",
    n_heads: int = 0,
    width: int = 0,
) -> Distance:
    """Noise/bias decomposition of per-draw kernels against an analytic kernel.

    Args:
      draws: ``(n, *K)`` per-draw empirical kernels, ``n >= 3``.
      analytic: ``K``-shaped analytic kernel.
      analytic_se: ``K``-shaped standard errors of ``analytic`` (``None``: exact).
      level: confidence level of ``rel_bias_ci``.
      kind, n_heads, width: labels stored in the result.

    Returns:
      A :class:`Distance`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> d = distance(1.0 + 0.01 * rng.standard_normal((50, 4)), np.ones(4))
        >>> d.resolved, d.rel_noise < 0.01
        (False, True)
    """
    x, a, sa = _checked(draws, analytic, analytic_se)
    n = x.shape[0]
    y = (x - a).reshape(n, -1)
    sa = sa.reshape(-1)
    s = y.sum(0)
    q = float(np.einsum("ik,ik->", y, y))
    s2 = s @ s
    u = (s2 - q) / (n * (n - 1))
    mean_dev = s / n
    # Var(U) = 2 (2 (n - 2) zeta1 + zeta2) / (n (n - 1)) for the kernel <Y_i, Y_j>:
    # zeta1 = mu' S mu, zeta2 = tr(S^2) + 2 mu' S mu (S: covariance of one draw),
    # with plug-in estimates (zeta1 corrected for the noise in the mean).
    yc = y - mean_dev
    gram = yc @ yc.T
    tr_s2 = float(np.sum(gram**2)) / (n - 1) ** 2
    mu_s_mu = float(np.sum((yc @ mean_dev) ** 2)) / (n - 1)
    zeta1 = max(mu_s_mu - tr_s2 / n, 0.0)
    var_u = 2.0 * (2.0 * (n - 2) * zeta1 + tr_s2 + 2.0 * zeta1) / (n * (n - 1))
    se2 = y.var(0, ddof=1) / n
    bias_sq = u - np.sum(sa**2)
    var = var_u + 4.0 * np.sum(mean_dev**2 * sa**2) + 2.0 * np.sum(sa**4)
    bias_sq_se = float(np.sqrt(var))
    norm = float(np.linalg.norm(a))
    if norm == 0:
        raise ValueError("analytic: expected a nonzero kernel (distances are relative to it)")
    zq = stats.norm.ppf(0.5 + level / 2.0)
    lo, hi = bias_sq - zq * bias_sq_se, bias_sq + zq * bias_sq_se
    tot_se = np.sqrt(se2 + sa**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(tot_se > 0, np.abs(mean_dev) / tot_se, np.where(mean_dev == 0, 0.0, np.inf))
    return Distance(
        kind=kind,
        n_heads=int(n_heads),
        width=int(width),
        n_samples=n,
        analytic_norm=norm,
        rel_fro=float(np.linalg.norm(mean_dev) / norm),
        rel_noise=float(np.sqrt(se2.sum() + (sa**2).sum()) / norm),
        bias_sq=float(bias_sq),
        bias_sq_se=bias_sq_se,
        rel_bias=float(np.sqrt(max(bias_sq, 0.0)) / norm),
        rel_bias_ci=(float(np.sqrt(max(lo, 0.0)) / norm), float(np.sqrt(max(hi, 0.0)) / norm)),
        max_abs=float(np.abs(mean_dev).max()),
        max_z=float(z.max()),
    )
