"""Convergence of finite attention networks to their infinite-width / infinite-head kernels.

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

Slopes: weighted least squares of ``log rel_bias`` on ``log width`` (fixed heads)
and on ``log heads`` (fixed width), over resolved points, with weights from the
delta method (``se(log rel_bias) = se(bias_sq) / (2 bias_sq)``); the slope's standard
error is inflated by ``sqrt(chi^2 / dof)`` when the scatter exceeds the errors.

See ``docs/limits.md`` for the rates the theory predicts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats
from tqdm.auto import tqdm

from infattn.empirical import empirical_kernel_draws

Array = jax.Array
Factory = Callable[[int, int], tuple[Callable, Callable, Callable]]

__all__ = [
    "CollapseResult",
    "ConvergenceSweep",
    "Distance",
    "SlopeFit",
    "attention_collapse",
    "convergence_sweep",
    "distance",
    "fit_loglog_slope",
    "uniform_collapse",
]


# ------------------------------------------------------------------ one configuration


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
    """
    x = np.asarray(draws, np.float64)
    a = np.asarray(analytic, np.float64)
    if x.ndim < 1 or x.shape[0] < 3:
        raise ValueError(f"`draws` must have shape (n >= 3, ...); got {x.shape}.")
    if x.shape[1:] != a.shape:
        raise ValueError(f"`analytic` has shape {a.shape}, the draws {x.shape[1:]}.")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(a))):
        raise ValueError("`draws` and `analytic` must be finite.")
    sa = np.zeros_like(a) if analytic_se is None else np.asarray(analytic_se, np.float64)
    if sa.shape != a.shape:
        raise ValueError(f"`analytic_se` has shape {sa.shape}, `analytic` {a.shape}.")
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
        raise ValueError("`analytic` is zero: relative distances are undefined.")
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


# ------------------------------------------------------------------ slopes


@dataclasses.dataclass(frozen=True)
class SlopeFit:
    """``log y = intercept + slope * log x`` fitted by weighted least squares.

    ``x``, ``y``, ``y_se``: the points used. ``against``: ``'width'`` or
    ``'heads'``; ``fixed``: the value of the other variable; ``kind``: kernel.
    ``slope`` is ``nan`` with fewer than two usable points.
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

    def predict(self, x: Any) -> np.ndarray:
        """The fitted power law at ``x``."""
        return np.exp(self.intercept) * np.asarray(x, np.float64) ** self.slope

    def __str__(self) -> str:
        what = f"{self.kind} vs {self.against}" + (
            f" ({'heads' if self.against == 'width' else 'width'}={self.fixed})"
            if self.against and self.fixed
            else ""
        )
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
    """
    x = np.asarray(x, np.float64).reshape(-1)
    y = np.asarray(y, np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"`x` {x.shape} and `y` {y.shape} must have the same shape.")
    se = None if y_se is None else np.asarray(y_se, np.float64).reshape(-1)
    if se is not None and se.shape != y.shape:
        raise ValueError(f"`y_se` {se.shape} must match `y` {y.shape}.")
    if np.any(x <= 0):
        raise ValueError("`x` must be positive.")
    ok = (y > 0) & np.isfinite(y)
    if se is not None:
        ok &= np.isfinite(se) & (se > 0)
    x, y = x[ok], y[ok]
    se = None if se is None else se[ok]
    nan = float("nan")
    if x.size < 2 or np.unique(x).size < 2:
        return SlopeFit(
            nan,
            nan,
            nan,
            nan,
            nan,
            0,
            tuple(x),
            tuple(y),
            tuple(se) if se is not None else (),
            against,
            fixed,
            kind,
        )
    lx, ly = np.log(x), np.log(y)
    w = np.ones_like(ly) if se is None else (y / se) ** 2
    design = np.stack([np.ones_like(lx), lx], 1)
    xtw = design.T * w
    cov = np.linalg.inv(xtw @ design)
    beta = cov @ (xtw @ ly)
    resid = ly - design @ beta
    dof = x.size - 2
    chi2 = float(np.sum(w * resid**2))
    if se is None:
        cov = cov * (chi2 / dof if dof > 0 else nan)
    elif dof > 0:
        cov = cov * max(1.0, chi2 / dof)
    return SlopeFit(
        slope=float(beta[1]),
        slope_se=float(np.sqrt(cov[1, 1])),
        intercept=float(beta[0]),
        intercept_se=float(np.sqrt(cov[0, 0])),
        chi2=chi2,
        dof=dof,
        x=tuple(x),
        y=tuple(y),
        y_se=tuple(se) if se is not None else (),
        against=against,
        fixed=fixed,
        kind=kind,
    )


# ------------------------------------------------------------------ sweeps


@dataclasses.dataclass(frozen=True)
class ConvergenceSweep:
    """Distances for every ``(kind, n_heads, width)`` and the fitted slopes.

    ``rows``: :class:`Distance` per configuration; ``fits``: :class:`SlopeFit` of the
    resolved bias against width (one per heads value) and against heads (one per
    width) for each kernel kind. ``print(sweep)`` shows a table; :meth:`plot`
    draws it.
    """

    rows: tuple[Distance, ...]
    fits: tuple[SlopeFit, ...]
    heads: tuple[int, ...]
    widths: tuple[int, ...]
    kinds: tuple[str, ...]

    def row(self, kind: str, n_heads: int, width: int) -> Distance:
        """The :class:`Distance` of one configuration."""
        for r in self.rows:
            if (r.kind, r.n_heads, r.width) == (kind, n_heads, width):
                return r
        raise KeyError((kind, n_heads, width))

    def fit(self, kind: str, against: str, fixed: int) -> SlopeFit:
        """The slope of ``kind`` against ``'width'`` or ``'heads'`` at ``fixed``."""
        for f in self.fits:
            if (f.kind, f.against, f.fixed) == (kind, against, fixed):
                return f
        raise KeyError((kind, against, fixed))

    def table(self) -> str:
        """The rows and slopes as a text table."""
        head = (
            f"{'kernel':<6}{'heads':>6}{'width':>7}{'draws':>7}{'rel_fro':>10}"
            f"{'noise':>9}{'rel_bias':>10}{'95% CI':>21}{'max_abs':>10}{'max_z':>7}"
        )
        lines = [head, "-" * len(head)]
        for r in self.rows:
            ci = f"[{r.rel_bias_ci[0]:.2e}, {r.rel_bias_ci[1]:.2e}]"
            flag = "" if r.resolved else " (unresolved)"
            lines.append(
                f"{r.kind:<6}{r.n_heads:>6}{r.width:>7}{r.n_samples:>7}{r.rel_fro:>10.2e}"
                f"{r.rel_noise:>9.1e}{r.rel_bias:>10.2e}{ci:>21}{r.max_abs:>10.2e}"
                f"{r.max_z:>7.1f}{flag}"
            )
        if self.fits:
            lines.append("")
            lines.extend(str(f) for f in self.fits)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def plot(self, kind: str | None = None, axes: Any = None) -> Any:
        """Log-log plots of ``rel_bias`` (with CIs), the noise level and the fits.

        One row of two panels (against width, against heads) per kernel kind
        (``kind=None``: all). Returns the matplotlib figure.
        """
        import matplotlib.pyplot as plt

        kinds = self.kinds if kind is None else (kind,)
        if axes is None:
            fig, axes = plt.subplots(len(kinds), 2, figsize=(10, 3.6 * len(kinds)), squeeze=False)
        else:
            axes = np.asarray(axes).reshape(len(kinds), 2)
            fig = axes[0, 0].figure
        for row, k in zip(axes, kinds, strict=True):
            for ax, against, series, xs in (
                (row[0], "width", self.heads, self.widths),
                (row[1], "heads", self.widths, self.heads),
            ):
                for fixed in series:
                    pts = [
                        self.row(k, fixed, v) if against == "width" else self.row(k, v, fixed)
                        for v in xs
                    ]
                    y = np.array([p.rel_bias for p in pts])
                    lo = np.array([p.rel_bias_ci[0] for p in pts])
                    hi = np.array([p.rel_bias_ci[1] for p in pts])
                    label = f"{'heads' if against == 'width' else 'width'}={fixed}"
                    res = np.array([p.resolved for p in pts])
                    line = ax.errorbar(
                        np.array(xs)[res],
                        y[res],
                        yerr=[(y - lo)[res], (hi - y)[res]],
                        fmt="o",
                        capsize=3,
                        label=label,
                    )
                    color = line[0].get_color()
                    if (~res).any():
                        ax.plot(np.array(xs)[~res], hi[~res], "v", color=color, alpha=0.6)
                    ax.plot(xs, [p.rel_noise for p in pts], ":", color=color, alpha=0.6)
                    try:
                        f = self.fit(k, against, fixed)
                    except KeyError:
                        continue
                    if np.isfinite(f.slope):
                        grid = np.geomspace(min(xs), max(xs), 50)
                        ax.plot(
                            grid,
                            f.predict(grid),
                            "-",
                            color=color,
                            alpha=0.8,
                            label=f"slope {f.slope:+.2f} ± {f.slope_se:.2f}",
                        )
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xlabel(against)
                ax.set_ylabel(f"{k}: relative bias")
                ax.set_title(f"{k} vs {against} (dotted: noise level; ▼: upper CI)")
                ax.legend(fontsize=8)
        fig.tight_layout()
        return fig


def _analytic_from(kernel: Any, kinds: tuple[str, ...]) -> dict[str, tuple[Array, Any]]:
    out = {}
    for k in kinds:
        if isinstance(kernel, Mapping):
            v = kernel[k]
            mean, se = v if isinstance(v, tuple) else (v, None)
        else:
            mean, se = getattr(kernel, k), getattr(kernel, k + "_se", None)
        if mean is None:
            raise ValueError(f"`analytic` has no {k!r} kernel.")
        out[k] = (np.asarray(mean, np.float64), None if se is None else np.asarray(se))
    return out


def _analytic_replicates(reps: Sequence[Any], kinds: tuple[str, ...]) -> dict[str, tuple]:
    if len(reps) < 2:
        raise ValueError("`analytic` as replicates needs at least 2 of them.")
    out = {}
    for k in kinds:
        vals = np.stack([np.asarray(_analytic_from(r, (k,))[k][0]) for r in reps])
        out[k] = (vals.mean(0), vals.std(0, ddof=1) / np.sqrt(len(vals)))
    return out


def _check_argument_used(
    factory: Factory,
    values: Sequence[int],
    other: int,
    which: str,
    x1: Array,
    key: Array,
    apply_fn_kwargs: dict,
) -> None:
    """``ValueError`` if the factory's outputs do not change with ``which``."""
    distinct = sorted(set(values))
    if len(distinct) < 2:
        return
    outs = []
    for v in distinct[:2]:
        args = (v, other) if which == "n_heads" else (other, v)
        init_fn, apply_fn, _ = factory(*args)
        _, params = init_fn(key, x1.shape)
        out = apply_fn(params, x1, **apply_fn_kwargs)
        out = getattr(out, "masked_value", out)
        outs.append(np.asarray(out))
    a, b = outs
    if a.shape == b.shape and np.allclose(a, b, rtol=1e-6, atol=1e-7 * (np.abs(a).max() + 1)):
        raise ValueError(
            f"`factory` ignores its `{which}` argument: the outputs for {which}="
            f"{distinct[0]} and {which}={distinct[1]} are identical at the same key. "
            "The factory must be `factory(n_heads, width) -> (init_fn, apply_fn, kernel_fn)` "
            f"and pass `{which}` to the model."
        )


def convergence_sweep(
    factory: Factory,
    x1: Any,
    x2: Any = None,
    *,
    heads: Sequence[int],
    widths: Sequence[int],
    n_samples: int,
    key: Array,
    get: str | Sequence[str] = ("nngp", "ntk"),
    analytic: Any = None,
    level: float = 0.95,
    trace_axes: Any = (-1,),
    diagonal_axes: Any = (),
    vmap_axes: Any = None,
    chunk_size: int | None = None,
    progress: bool = False,
    check_heads: bool = True,
    **apply_fn_kwargs: Any,
) -> ConvergenceSweep:
    """Empirical-vs-analytic kernel distances over heads and widths, with slopes.

    Args:
      factory: ``factory(n_heads, width) -> (init_fn, apply_fn, kernel_fn)``.
      x1, x2: inputs ``(N, ..., C)`` (``x2=None``: ``x1``).
      heads, widths: the grid; every pair is one configuration.
      n_samples: draws per configuration (``>= 3``).
      key: PRNG key; configuration ``c`` (row-major over ``heads x widths``)
        uses ``fold_in(key, c)``.
      get: kernels to compare (``'nngp'``, ``'ntk'``).
      analytic: the reference kernels. ``None``: ``kernel_fn(x1, x2, get)`` of
        ``factory(heads[0], widths[0])`` (the limit does not depend on heads or
        widths), whose ``<kind>_se`` attributes, if any, are used as its
        standard errors. Or a mapping ``kind -> array | (array, se)``, or a
        kernel object with ``nngp``/``ntk`` (and optional ``*_se``) attributes,
        or a list of at least 2 independent replicates of such (e.g. the
        standard-scaling kernel at several ``mc_seed``), whose mean and standard
        error are used.
      level: confidence level of the bias intervals.
      trace_axes, diagonal_axes, vmap_axes, chunk_size, progress: as in
        :func:`infattn.empirical.monte_carlo_kernel_fn` (``progress`` shows one
        bar over configurations).
      check_heads: raise ``ValueError`` if ``factory`` ignores ``n_heads``
        (identical outputs for two head counts at the same key).
      **apply_fn_kwargs: passed to ``apply_fn`` and ``kernel_fn`` (e.g.
        ``mask_constant``).

    Returns:
      A :class:`ConvergenceSweep`.
    """
    heads = tuple(int(h) for h in heads)
    widths = tuple(int(w) for w in widths)
    if not heads or not widths:
        raise ValueError("`heads` and `widths` must be non-empty.")
    if any(h < 1 for h in heads) or any(w < 1 for w in widths):
        raise ValueError("`heads` and `widths` must be positive integers.")
    if not isinstance(n_samples, int) or n_samples < 3:
        raise ValueError(f"`n_samples` must be an integer >= 3; got {n_samples}.")
    kinds = (get,) if isinstance(get, str) else tuple(get)
    if not kinds or any(k not in ("nngp", "ntk") for k in kinds):
        raise ValueError(f"`get` must be 'nngp', 'ntk' or a tuple of them; got {get}.")
    x1 = jnp.asarray(x1)
    x2 = None if x2 is None else jnp.asarray(x2)
    if check_heads:
        _check_argument_used(factory, heads, widths[0], "n_heads", x1, key, apply_fn_kwargs)
    if analytic is None:
        kernel_fn = factory(heads[0], widths[0])[2]
        ref = _analytic_from(kernel_fn(x1, x2, kinds, **apply_fn_kwargs), kinds)
    elif isinstance(analytic, list | tuple) and not isinstance(analytic, Mapping):
        ref = _analytic_replicates(analytic, kinds)
    else:
        ref = _analytic_from(analytic, kinds)

    rows = []
    configs = [(h, w) for h in heads for w in widths]
    for c, (h, w) in enumerate(tqdm(configs, disable=not progress, desc="configs")):
        init_fn, apply_fn, _ = factory(h, w)
        draws = empirical_kernel_draws(
            init_fn,
            apply_fn,
            jax.random.fold_in(key, c),
            n_samples,
            x1,
            x2,
            kinds,
            trace_axes=trace_axes,
            diagonal_axes=diagonal_axes,
            vmap_axes=vmap_axes,
            chunk_size=chunk_size,
            **apply_fn_kwargs,
        )
        for k in kinds:
            mean, se = ref[k]
            if mean.shape != draws[k].shape[1:]:
                raise ValueError(
                    f"`analytic` {k} has shape {mean.shape}, the empirical "
                    f"kernels {draws[k].shape[1:]} (check trace/diagonal axes)."
                )
            rows.append(distance(draws[k], mean, se, level=level, kind=k, n_heads=h, width=w))

    sweep = ConvergenceSweep(tuple(rows), (), heads, widths, kinds)
    fits = []
    for k in kinds:
        for against, fixed_values, xs in (("width", heads, widths), ("heads", widths, heads)):
            if len(set(xs)) < 2:
                continue
            for fixed in fixed_values:
                pts = [
                    sweep.row(k, fixed, v) if against == "width" else sweep.row(k, v, fixed)
                    for v in xs
                ]
                pts = [p for p in pts if p.resolved]
                fits.append(
                    fit_loglog_slope(
                        [p.width if against == "width" else p.n_heads for p in pts],
                        [p.rel_bias for p in pts],
                        [p.rel_bias_se for p in pts],
                        against=against,
                        fixed=fixed,
                        kind=k,
                    )
                )
    return dataclasses.replace(sweep, fits=tuple(fits))


# ------------------------------------------------------------------ untied 1/d collapse


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
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(5, 3.6))
        else:
            fig = ax.figure
        ax.errorbar(
            self.widths,
            self.attention_distance,
            yerr=self.attention_distance_se,
            fmt="o",
            capsize=3,
            label="finite untied 1/d attention",
        )
        f = self.attention_fit
        if np.isfinite(f.slope):
            grid = np.geomspace(min(self.widths), max(self.widths), 50)
            ax.plot(grid, f.predict(grid), "-", label=f"slope {f.slope:+.2f} ± {f.slope_se:.2f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("key width d")
        ax.set_ylabel("||zeta(G) - uniform||_F / ||uniform||_F")
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig


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
    """
    x = jnp.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"`x` must have shape (N, L, C); got {x.shape}.")
    if n_samples < 2:
        raise ValueError(f"`n_samples` must be >= 2; got {n_samples}.")
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
            g = jnp.where(valid[:, None, :], g, -jnp.inf)
            a = jax.nn.softmax(g, axis=-1)
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
