"""Power laws: the slope of ``log y`` against ``log x`` with its standard error."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from infattn.statistics import loglog_fit
from infattn.validation import as_float64


@dataclasses.dataclass(frozen=True)
class SlopeFit:
    """``log y = intercept + slope * log x`` fitted by weighted least squares.

    ``x``, ``y``, ``y_se``: the points used. ``against``: ``'width'`` or
    ``'heads'``; ``fixed``: the value of the other variable; ``kind``: kernel.
    ``slope`` is ``nan`` with fewer than two usable points (then the fit is
    *unresolved*: :attr:`resolved` is ``False``).
    """

    slope: float
    slope_se: float
    intercept: float
    intercept_se: float
    chi2: float
    dof: int
    x: tuple[float, ...]
    y: tuple[float, ...]
    y_se: tuple[float, ...]
    against: str = ""
    fixed: int = 0
    kind: str = ""

    @property
    def resolved(self) -> bool:
        """Whether there were enough points (two distinct ``x``) for a slope."""
        return math.isfinite(self.slope)

    def predict(self, x: Any) -> np.ndarray:
        """The fitted power law at ``x``."""
        return np.exp(self.intercept) * np.asarray(x, np.float64) ** self.slope

    def __str__(self) -> str:
        what = f"{self.kind} vs {self.against}" + (
            f" ({'heads' if self.against == 'width' else 'width'}={self.fixed})"
            if self.against and self.fixed
            else ""
        )
        if not self.resolved:
            return f"{what}: unresolved ({len(self.x)} usable points; a slope needs 2)"
        return f"{what}: slope {self.slope:+.3f} +- {self.slope_se:.3f} ({len(self.x)} points)"


def fit_loglog_slope(
    x: Any, y: Any, y_se: Any = None, *, against: str = "", fixed: int = 0, kind: str = ""
) -> SlopeFit:
    """Weighted least-squares slope of ``log y`` against ``log x``.

    Args:
      x, y: positive values, shape ``(m,)``; non-positive ``y`` are dropped.
      y_se: standard errors of ``y`` (``None``: unweighted); the weights are
        ``(y / y_se)^2``, the delta-method variances of ``log y``.

    Returns:
      A :class:`SlopeFit`. With weights the parameter covariance is
      ``(X^T W X)^-1 * max(1, chi^2 / dof)``; without, the usual OLS estimate.

    Example:
        >>> fit = fit_loglog_slope([1.0, 2.0, 4.0], [1.0, 0.5, 0.25])
        >>> round(fit.slope, 6)
        -1.0
        >>> print(fit_loglog_slope([1.0, 2.0], [1.0, -1.0], kind="nngp"))
        nngp vs : unresolved (1 usable points; a slope needs 2)
    """
    x = as_float64(x, "x").reshape(-1)
    y = as_float64(y, "y").reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"y: expected the shape of x {x.shape}, got {y.shape}")
    se = None if y_se is None else as_float64(y_se, "y_se").reshape(-1)
    if se is not None and se.shape != y.shape:
        raise ValueError(f"y_se: expected the shape of y {y.shape}, got {se.shape}")
    if np.any(x <= 0):
        raise ValueError(f"x: expected positive values, got {x}")
    ok = (y > 0) & np.isfinite(y)
    if se is not None:
        ok &= np.isfinite(se) & (se > 0)
    x, y = x[ok], y[ok]
    se = None if se is None else se[ok]
    labels = {"against": against, "fixed": fixed, "kind": kind}
    points = {"x": tuple(x), "y": tuple(y), "y_se": () if se is None else tuple(se)}
    if x.size < 2 or np.unique(x).size < 2:
        nan = math.nan
        return SlopeFit(nan, nan, nan, nan, nan, 0, **points, **labels)
    fit = loglog_fit(x, y, se)
    cov = fit.cov
    if se is not None and fit.dof > 0:
        cov = cov * max(1.0, fit.chi2 / fit.dof)
    return SlopeFit(
        slope=fit.slope,
        slope_se=float(np.sqrt(cov[1, 1])),
        intercept=fit.intercept,
        intercept_se=float(np.sqrt(cov[0, 0])),
        chi2=fit.chi2,
        dof=fit.dof,
        **points,
        **labels,
    )
