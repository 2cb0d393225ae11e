"""Convergence sweeps: distances to the limit over a grid of heads and widths, and slopes.

For every ``(n_heads, width)`` the per-draw empirical kernels of
``factory(n_heads, width)`` are compared with the analytic kernel
(:func:`~infattn.limits.distance.distance`). Slopes: weighted least squares of
``log rel_bias`` on ``log width`` (fixed heads) and on ``log heads`` (fixed width),
over resolved points, with weights from the delta method (``se(log rel_bias) =
se(bias_sq) / (2 bias_sq)``); the slope's standard error is inflated by
``sqrt(chi^2 / dof)`` when the scatter exceeds the errors. A fit with fewer than two
resolved points is reported as *unresolved*.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from infattn.empirical import empirical_kernel_draws
from infattn.limits.distance import Distance, distance
from infattn.limits.slopes import SlopeFit, fit_loglog_slope
from infattn.validation import as_array, canonical_get, check_int, check_key

Array = jax.Array
Factory = Callable[[int, int], tuple[Callable, Callable, Callable]]


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
        from infattn.limits.plots import plot_sweep

        return plot_sweep(self, kind, axes)


def _analytic_from(kernel: Any, kinds: tuple[str, ...]) -> dict[str, tuple[Array, Any]]:
    out = {}
    for k in kinds:
        if isinstance(kernel, Mapping):
            v = kernel[k]
            mean, se = v if isinstance(v, tuple) else (v, None)
        else:
            mean, se = getattr(kernel, k), getattr(kernel, k + "_se", None)
        if mean is None:
            raise ValueError(f"analytic: expected a {k!r} kernel, got None")
        out[k] = (np.asarray(mean, np.float64), None if se is None else np.asarray(se))
    return out


def _analytic_replicates(reps: Sequence[Any], kinds: tuple[str, ...]) -> dict[str, tuple]:
    if len(reps) < 2:
        raise ValueError(f"analytic: expected at least 2 replicates, got {len(reps)}")
    out = {}
    for k in kinds:
        vals = np.stack([np.asarray(_analytic_from(r, (k,))[k][0]) for r in reps])
        out[k] = (vals.mean(0), vals.std(0, ddof=1) / np.sqrt(len(vals)))
    return out


def _grid(values: Sequence[int], name: str) -> tuple[int, ...]:
    out = tuple(values)
    if not out or not all(isinstance(v, int | np.integer) and v >= 1 for v in out):
        raise ValueError(f"{name}: expected a non-empty sequence of positive integers, got {out}")
    return tuple(int(v) for v in out)


def _reference(
    analytic: Any, kernel_fn: Callable, x1: Array, x2: Array | None, kinds: tuple, kw: dict
) -> dict[str, tuple]:
    """``{kind: (mean, se or None)}`` of the analytic kernels (see :func:`convergence_sweep`)."""
    if analytic is None:
        with_se = kinds + tuple(f"{k}_se" for k in kinds)
        return _analytic_from(kernel_fn(x1, x2, with_se, **kw), kinds)
    if isinstance(analytic, list | tuple) and not isinstance(analytic, Mapping):
        return _analytic_replicates(analytic, kinds)
    return _analytic_from(analytic, kinds)


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
            f"factory: expected factory(n_heads, width) -> (init_fn, apply_fn, kernel_fn) "
            f"passing {which} to the model, got identical outputs for {which}="
            f"{distinct[0]} and {which}={distinct[1]} at the same key"
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
      analytic: the reference kernels. ``None``: the kernels and standard errors
        (``nngp_se``/``ntk_se``, nonzero for Monte Carlo layers) of
        ``kernel_fn`` from ``factory(heads[0], widths[0])`` (the limit does not
        depend on heads or widths). Or a mapping ``kind -> array | (array, se)``, or a
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

    Example:
        >>> from infattn import stax
        >>> def factory(n_heads, width):  # a Dense layer whose NNGP is biased by 1/width
        ...     return stax.Dense(64, W_std=(1 + 1 / width) ** 0.5)
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (2, 3))
        >>> sweep = convergence_sweep(factory, x, heads=[1], widths=[1, 4], n_samples=64,
        ...                           key=jax.random.PRNGKey(1), get="nngp",
        ...                           analytic={"nngp": x @ x.T / 3}, check_heads=False)
        >>> len(sweep.rows), sweep.row("nngp", 1, 1).resolved
        (2, True)
    """
    heads, widths = _grid(heads, "heads"), _grid(widths, "widths")
    check_int(n_samples, "n_samples", 3)
    _, kinds = canonical_get(get, ("nngp", "ntk"))
    key = check_key(key)
    x1 = as_array(x1, "x1", 2, "an array of shape (N, ..., C)")
    x2 = None if x2 is None else as_array(x2, "x2", 2, "an array of shape (N, ..., C)")
    if check_heads:
        _check_argument_used(factory, heads, widths[0], "n_heads", x1, key, apply_fn_kwargs)
    ref = _reference(analytic, factory(heads[0], widths[0])[2], x1, x2, kinds, apply_fn_kwargs)

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
            progress=False,
            **apply_fn_kwargs,
        )
        for k in kinds:
            mean, se = ref[k]
            if mean.shape != draws[k].shape[1:]:
                raise ValueError(
                    f"analytic: expected the empirical {k} shape {draws[k].shape[1:]}, got "
                    f"{mean.shape} (check trace_axes and diagonal_axes)"
                )
            rows.append(distance(draws[k], mean, se, level=level, kind=k, n_heads=h, width=w))

    sweep = ConvergenceSweep(tuple(rows), (), heads, widths, kinds)
    return dataclasses.replace(sweep, fits=_fits(sweep))


def _fits(sweep: ConvergenceSweep) -> tuple[SlopeFit, ...]:
    """Slopes of the resolved biases against width (per heads) and heads (per width)."""
    fits = []
    for k in sweep.kinds:
        for against, fixed_values, xs in (
            ("width", sweep.heads, sweep.widths),
            ("heads", sweep.widths, sweep.heads),
        ):
            if len(set(xs)) < 2:
                continue
            for fixed in fixed_values:
                pts = [
                    sweep.row(k, fixed, v) if against == "width" else sweep.row(k, v, fixed)
                    for v in xs
                ]
                pts = [p for p in pts if p.resolved]
                x = [p.width if against == "width" else p.n_heads for p in pts]
                y, y_se = [p.rel_bias for p in pts], [p.rel_bias_se for p in pts]
                fits.append(fit_loglog_slope(x, y, y_se, against=against, fixed=fixed, kind=k))
    return tuple(fits)
