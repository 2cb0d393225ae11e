"""What each explorer panel shows, computed from a :class:`~infattn.explore.model.Config`.

Each panel's computation is a generator of *views* (plain dataclasses of numpy
arrays and library results): the first view comes fast (analytic kernels), later
ones refine it (Monte Carlo chunks, one sweep point at a time). The widgets run a
generator on a worker thread (:mod:`infattn.explore.jobs`) and draw each view;
tests and scripts iterate it directly. Every number comes from the library
(``kernel_fn``, :func:`infattn.empirical.empirical_kernel_draws`,
:mod:`infattn.limits`, :mod:`infattn.diagnostics`); nothing is re-derived here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infattn import diagnostics, limits
from infattn.empirical import empirical_kernel_draws
from infattn.explore.model import Config, Layer, fast_mode, make_inputs, model_spec
from infattn.logits.mechanisms import attention_weights
from infattn.stax import positional

KINDS = ("nngp", "ntk")


# ------------------------------------------------------------------ shared helpers


def precision(cfg: Config) -> contextlib.AbstractContextManager:
    """Context in which JAX computes in ``cfg.dtype`` (64-bit types on for ``float64``).

    Thread-local, so a worker thread computing in float64 leaves the notebook's
    setting alone.

    Example:
      >>> with precision(Config(dtype="float64")):
      ...     jnp.zeros(1).dtype
      dtype('float64')
    """
    return jax.enable_x64(cfg.dtype == "float64")


@functools.lru_cache(maxsize=64)
def _build(spec: Layer) -> tuple:
    init_fn, apply_fn, kernel_fn = spec.build()
    return normal_init(init_fn), apply_fn, kernel_fn


def model(cfg: Config, heads: int | None = None, width: int | None = None) -> tuple:
    """``(init_fn, apply_fn, kernel_fn)`` of ``cfg``, cached per model structure.

    The same structure returns the same functions, so the compiled Monte Carlo
    steps of :mod:`infattn.empirical` (cached per ``init_fn, apply_fn``) are
    reused when a control goes back to a value seen before. ``init_fn`` is
    :func:`normal_init` of the model's own.
    """
    return _build(model_spec(cfg, heads, width))


def normal_init(init_fn: Any) -> Any:
    """An ``init_fn`` with the same law whose draw compiles as one normal sample.

    Every parameter of an ``infattn.stax`` model in the NTK parameterisation (all
    the explorer builds) is an independent standard normal; ``init_fn`` itself
    draws each from its own key, which XLA compiles slowly on CPU (about one
    second per parameter on a loaded 2-core machine). This draws one standard
    normal vector of the total size and cuts it into the parameter shapes: the
    same joint law, other draws.

    Example:
      >>> from infattn import stax
      >>> init_fn = normal_init(stax.Dense(3)[0])
      >>> shape, (W, b) = init_fn(jax.random.PRNGKey(0), (2, 5))
      >>> shape, W.shape, b
      ((2, 3), (5, 3), None)
    """

    def init(rng: jax.Array, input_shape: tuple[int, ...]) -> tuple[Any, Any]:
        shapes = {}

        def params_of(k: jax.Array) -> Any:
            shapes["out"], params = init_fn(k, input_shape)  # output shape: Python ints
            return params

        abstract = jax.eval_shape(params_of, rng)
        leaves, tree = jax.tree_util.tree_flatten(abstract)
        sizes = [math.prod(leaf.shape) for leaf in leaves]
        flat = jax.random.normal(rng, (max(sum(sizes), 1),))
        parts = jnp.split(flat[: sum(sizes)], np.cumsum(sizes)[:-1].tolist())
        params = [
            p.reshape(leaf.shape).astype(leaf.dtype) for p, leaf in zip(parts, leaves, strict=True)
        ]
        return shapes["out"], jax.tree_util.tree_unflatten(tree, params)

    return init


PADDED_SHAPE = (16, 32)
"""Inputs ``(N, L)`` up to this size are padded to it for closed-form kernels."""


def padded(x: np.ndarray, shape: tuple[int, int] = PADDED_SHAPE) -> tuple[np.ndarray, float]:
    """``x`` ``(N, L, C)`` padded to ``shape`` with a masked sentinel; ``(x_pad, sentinel)``.

    Extra examples and trailing positions hold ``sentinel`` (a power of two above
    every ``|x|``) in every channel, so ``kernel_fn(..., mask_constant=sentinel)``
    masks them and the kernel of the real inputs is unchanged (examples never mix
    in a closed-form kernel; padded keys get no attention weight and pooling skips
    them). Sizes beyond ``shape`` are kept. One input shape for every ``(N, L)`` of
    the panels means JAX's per-operation compilations are reused when a control
    changes them.

    Example:
      >>> xp, sentinel = padded(np.ones((3, 5, 4), np.float32))
      >>> xp.shape, sentinel, bool((xp[3:] == sentinel).all())
      ((16, 32, 4), 4.0, True)
    """
    n, length = x.shape[:2]
    target = (max(n, shape[0]), max(length, shape[1]))
    sentinel = 2.0 ** (math.floor(math.log2(float(np.abs(x).max(initial=0.0)) + 1.0)) + 1)
    out = np.full((*target, *x.shape[2:]), sentinel, x.dtype)
    out[:n, :length] = x
    return out, sentinel


@functools.lru_cache(maxsize=64)
def _analytic_program(spec: Layer, mask_constant: float | None) -> Callable:
    """The compiled analytic kernels of one model structure: ``x -> {kind: (N, N) or None}``.

    One ``jit`` of the whole kernel, compiled unoptimised (:func:`compiler_options`):
    a new structure or dtype costs about 0.3 CPU s, where eager primitives cost
    5-6 CPU s for a dtype's first kernel and a ``jit`` with optimisation 1-2 s.
    """
    kernel_fn = _build(spec)[2]
    kinds = (*KINDS, *(f"{kind}_se" for kind in KINDS))

    def kernels(x: jax.Array) -> dict[str, Any]:
        k = kernel_fn(x, None, kinds, mask_constant=mask_constant)
        return {kind: getattr(k, kind, None) for kind in kinds}

    return jax.jit(kernels, compiler_options=compiler_options(optimized=False))


def analytic_kernels(cfg: Config, x: np.ndarray) -> dict[str, tuple[np.ndarray, Any]]:
    """``{kind: (kernel, se or None)}`` of ``cfg``'s model on ``x``, ``(N, N)`` each.

    The standard error is the kernel's ``<kind>_se`` (Monte Carlo standard-scaling
    attention), ``None`` for closed-form models. Closed-form models compute on
    :func:`padded` inputs (the same kernel, one compiled program across input
    sizes); Monte Carlo ones on ``x`` itself (their cost grows with the size).
    The program is compiled once per model structure (:func:`_analytic_program`).

    Example:
      >>> cfg = Config(n_inputs=3, seq_len=5)
      >>> k = analytic_kernels(cfg, make_inputs(cfg))
      >>> k["ntk"][0].shape, k["ntk"][1]
      ((3, 3), None)
    """
    spec, n = model_spec(cfg), x.shape[0]
    if cfg.scaling == "1/sqrt(d)":
        k = _analytic_program(spec, None)(x)
    else:
        xp, sentinel = padded(x)
        k = _analytic_program(spec, sentinel)(xp)
    out = {}
    for kind in KINDS:
        se = k[f"{kind}_se"]
        out[kind] = (
            np.asarray(k[kind])[:n, :n],
            None if se is None else np.asarray(se)[:n, :n],
        )
    return out


def chunk_size(cfg: Config) -> int:
    """Draws per Monte Carlo chunk: one compiled step, reused for every chunk."""
    return min(cfg.draws, 4 if fast_mode() else 8)


def compiler_options(optimized: bool = True) -> dict[str, Any]:
    """XLA options for the explorer's compiled programs (scoped to them, not global).

    On CPU, XLA's fusion emitters are off: a program then compiles about twice as
    fast (1.5 instead of 2.9 CPU s for the default model's Monte Carlo step) and
    runs as fast. Unless ``optimized``, LLVM's optimisation is off too
    (``xla_backend_optimization_level=0``): compilation about three times faster
    again (0.8 CPU s), runs several times slower. Other backends: no options.

    Example:
      >>> isinstance(compiler_options(), dict)
      True
    """
    if jax.default_backend() != "cpu":
        return {}
    opts: dict[str, Any] = {"xla_cpu_use_fusion_emitters": False}
    if not optimized:
        opts["xla_backend_optimization_level"] = 0
    return opts


UNOPTIMIZED_SECONDS = 4.3e-9
"""CPU seconds per parameter, input position and draw of the unoptimised Monte Carlo
step (measured on the 2-core CPU: 0.9 s a chunk for 0.8 M parameters, 14 s for 13 M,
inputs ``(4, 8)``, 8 draws; the optimised step is about four times faster)."""

UNOPTIMIZED_BUDGET = 1.0
"""Predicted seconds of one unoptimised chunk up to which the chunks start unoptimised:
about what its cheaper compilation saves (1.5-3 CPU s)."""


def starts_unoptimized(cfg: Config, x: np.ndarray) -> bool:
    """Whether the Monte Carlo chunks of ``cfg`` on ``x`` ``(N, L, C)`` start unoptimised.

    Yes when one unoptimised chunk is predicted to run within
    :data:`UNOPTIMIZED_BUDGET` (:data:`UNOPTIMIZED_SECONDS` per parameter, position
    and draw): small models get their first estimate sooner; large ones compile
    the optimised step at once.

    Example:
      >>> cfg = Config()
      >>> starts_unoptimized(cfg, make_inputs(cfg)), starts_unoptimized(cfg.replace(heads=64,
      ...     width=256), make_inputs(cfg))
      (True, False)
    """
    init_fn = model(cfg)[0]
    params = jax.eval_shape(lambda k: init_fn(k, x.shape)[1], jax.random.PRNGKey(0))
    n_params = sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(params))
    seconds = UNOPTIMIZED_SECONDS * n_params * x.shape[0] * x.shape[1] * chunk_size(cfg)
    return seconds <= UNOPTIMIZED_BUDGET


OPTIMIZED_COMPILE_FACTOR = 3.0
"""An optimised Monte Carlo step compiles about this many times longer than an
unoptimised one (measured: 2.6 vs 0.8 CPU s for the default model)."""


def worth_optimizing(first: float, second: float, remaining: int) -> bool:
    """Whether to compile the optimised Monte Carlo step for the ``remaining`` chunks.

    ``first``, ``second``: seconds of the first two chunks with the unoptimised
    step (compilation and run; run only). Yes when the remaining chunks would run
    longer than the optimised step takes to compile
    (:data:`OPTIMIZED_COMPILE_FACTOR` times the unoptimised compilation).

    Example:
      >>> worth_optimizing(1.0, 0.1, 6)  # 0.6 s of runs left, about 2.7 s to compile
      False
      >>> worth_optimizing(2.0, 1.0, 8)  # a large model: 8 s of runs left
      True
    """
    return remaining * second > OPTIMIZED_COMPILE_FACTOR * max(first - second, 0.0)


def kernel_chunk(
    cfg: Config, x: np.ndarray, c: int, optimized: bool = False
) -> dict[str, np.ndarray]:
    """``{kind: (chunk_size, N, N)}``: the finite-network kernels of Monte Carlo chunk ``c``.

    ``optimized``: with the step compiled with optimisation (:func:`compiler_options`);
    the draws are the same.

    Example:
      >>> cfg = Config(width=8, draws=4, n_inputs=2, seq_len=3)
      >>> kernel_chunk(cfg, make_inputs(cfg), 0)["ntk"].shape
      (4, 2, 2)
    """
    init_fn, apply_fn, _ = model(cfg)
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), c)
    size = chunk_size(cfg)
    with precision(cfg):
        d = empirical_kernel_draws(
            init_fn,
            apply_fn,
            key,
            size,
            x,
            None,
            KINDS,
            chunk_size=size,  # one step for all draws, without tracing a memory estimate
            progress=False,
            compiler_options=compiler_options(optimized),
        )
    return {k: np.asarray(v) for k, v in d.items()}


# ------------------------------------------------------------------ kernel panel


@dataclasses.dataclass(frozen=True)
class KernelView:
    """Analytic kernels and (after the first chunk) the running Monte Carlo estimate.

    ``analytic[kind] = (kernel, se or None)``; ``mean``/``se``: ``{kind: (N, N)}``
    over ``n_draws`` finite networks; ``distance``: :class:`infattn.limits.Distance`
    of the draws to the analytic kernel (both sides' standard errors).
    """

    analytic: dict[str, tuple[np.ndarray, Any]]
    n_draws: int = 0
    total: int = 0
    mean: dict[str, np.ndarray] | None = None
    se: dict[str, np.ndarray] | None = None
    distance: dict[str, limits.Distance] | None = None


def kernel_views(cfg: Config) -> Iterator[KernelView]:
    """Analytic NNGP/NTK first, then the Monte Carlo estimate after every chunk.

    Small models start with the unoptimised step (quick to compile: the first
    estimate comes early, :func:`starts_unoptimized`); after two chunks the step is
    compiled with optimisation if the remaining chunks are worth it
    (:func:`worth_optimizing`).

    Example:
      >>> views = list(kernel_views(Config(width=8, draws=8, n_inputs=2, seq_len=3)))
      >>> views[0].mean is None, views[-1].n_draws, views[-1].distance["nngp"].n_samples
      (True, 8, 8)
    """
    with precision(cfg):
        x = make_inputs(cfg)
        analytic = analytic_kernels(cfg, x)
    yield KernelView(analytic, total=cfg.draws)
    size = chunk_size(cfg)
    n_chunks = math.ceil(cfg.draws / size)
    draws: dict[str, list] = {k: [] for k in KINDS}
    optimized, seconds = not starts_unoptimized(cfg, x), []
    for c in range(n_chunks):
        start = time.perf_counter()
        d = kernel_chunk(cfg, x, c, optimized)
        seconds.append(time.perf_counter() - start)
        if c == 1 and not optimized:
            optimized = worth_optimizing(*seconds, n_chunks - 2)
        for k in KINDS:
            draws[k].append(d[k][: min(size, cfg.draws - c * size)])
        yield _estimate_view(cfg, analytic, {k: np.concatenate(v) for k, v in draws.items()})


def _estimate_view(cfg: Config, analytic: dict, stacked: dict[str, np.ndarray]) -> KernelView:
    """The :class:`KernelView` of the draws ``stacked`` (``{kind: (n, N, N)}``)."""
    n_draws = len(stacked["nngp"])
    mean = {k: v.mean(0) for k, v in stacked.items()}
    se = {k: v.std(0, ddof=1) / math.sqrt(n_draws) for k, v in stacked.items()}
    dist = (
        {
            k: limits.distance(stacked[k], *analytic[k], kind=k, n_heads=cfg.heads, width=cfg.width)
            for k in KINDS
        }
        if n_draws >= 3
        else None
    )
    return KernelView(analytic, n_draws, cfg.draws, mean, se, dist)


# ------------------------------------------------------------------ convergence panel


def sweep_grid(cfg: Config) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(widths, heads)`` of the convergence sweep (width sweep at ``cfg.heads``,
    heads sweep at ``cfg.width``).

    Example:
      >>> sweep_grid(Config(heads=4, width=64))[1]
      (1, 4, 16)
    """
    if fast_mode():
        return (8, 16), (1, 2)
    return (8, 16, 32, 64, 128), (1, 4, 16)


@dataclasses.dataclass(frozen=True)
class ConvergenceView:
    """Points of the sweep so far.

    ``width_rows``/``heads_rows``: :class:`infattn.limits.Distance` per configuration
    and kind; ``fits``: ``{(kind, against): SlopeFit}`` over resolved points;
    ``collapse``: for untied ``1/d`` attention, ``(widths, mean, se, fit)`` of the
    attention-matrix distance to uniform averaging
    (:func:`infattn.limits.attention_collapse`), else ``None``.
    """

    width_rows: tuple[limits.Distance, ...] = ()
    heads_rows: tuple[limits.Distance, ...] = ()
    fits: dict = dataclasses.field(default_factory=dict)
    collapse: tuple | None = None
    done: int = 0
    total: int = 0


THEORY_SLOPES = {"width": -1.0, "heads": 0.0, "collapse": -0.5}
"""Predicted log-log slopes (``docs/limits.md``, section 3): relative kernel bias
against key width ``-1``, flat against heads (one layer), attention-matrix distance
to uniform ``-1/2`` (untied ``1/d``)."""


def _fits(rows: tuple[limits.Distance, ...], against: str) -> dict:
    out = {}
    for kind in KINDS:
        pts = [r for r in rows if r.kind == kind and r.resolved]
        xs = [r.width if against == "width" else r.n_heads for r in pts]
        out[(kind, against)] = limits.fit_loglog_slope(
            xs, [r.rel_bias for r in pts], [r.rel_bias_se for r in pts], against=against, kind=kind
        )
    return out


def convergence_views(cfg: Config) -> Iterator[ConvergenceView]:
    """Kernel bias against width and heads, one configuration per view.

    Each configuration is one :func:`infattn.limits.convergence_sweep` point
    (``cfg.draws`` finite networks against the analytic kernel, with its standard
    error where it has one). For untied ``1/d`` attention the attention-matrix
    collapse to uniform averaging comes first, one width per view.

    Example:
      >>> views = convergence_views(Config(draws=8, n_inputs=2, seq_len=3))
      >>> first = next(views)  # analytic kernels only; then one point per view
      >>> first.done, first.total
      (0, 8)
    """
    widths, heads = sweep_grid(cfg)
    configs = [("width", cfg.heads, w) for w in widths] + [("heads", h, cfg.width) for h in heads]
    untied = cfg.scaling == "1/d untied"
    total = len(configs) + (len(widths) if untied else 0)
    key = jax.random.PRNGKey(cfg.seed)
    with precision(cfg):
        x = make_inputs(cfg)
        analytic = analytic_kernels(cfg, x)
    view = ConvergenceView(total=total)
    yield view
    if untied:
        means, ses = [], []
        for i, w in enumerate(widths):
            with precision(cfg):
                m, s, _ = limits.attention_collapse(
                    x, (w,), key=jax.random.fold_in(key, 10**6 + i), n_samples=cfg.draws
                )
            means.append(float(m[0]))
            ses.append(float(s[0]))
            fit = limits.fit_loglog_slope(widths[: i + 1], means, ses, against="width")
            collapse = (widths[: i + 1], tuple(means), tuple(ses), fit)
            view = dataclasses.replace(view, collapse=collapse, done=view.done + 1)
            yield view
    rows: dict[str, list] = {"width": [], "heads": []}
    for c, (against, h, w) in enumerate(configs):
        with precision(cfg):
            sweep = limits.convergence_sweep(
                lambda h_, w_: model(cfg, h_, w_),
                x,
                heads=(h,),
                widths=(w,),
                n_samples=cfg.draws,
                key=jax.random.fold_in(key, c),
                analytic=analytic,
                check_heads=False,
            )
        rows[against].extend(sweep.rows)
        fits = {**_fits(tuple(rows["width"]), "width"), **_fits(tuple(rows["heads"]), "heads")}
        view = dataclasses.replace(
            view,
            width_rows=tuple(rows["width"]),
            heads_rows=tuple(rows["heads"]),
            fits=fits,
            done=view.done + 1,
        )
        yield view


# ------------------------------------------------------------------ output laws


@dataclasses.dataclass(frozen=True)
class LawsView:
    """One output entry (input 0) under three laws, and Gaussianity diagnostics.

    ``finite``: ``(n,)`` outputs of finite networks (width ``cfg.width``,
    ``cfg.heads`` heads) across initialisations; ``gp_var``: the NNGP variance
    (infinite width and heads); ``law``: ``(n,)`` draws of the exact infinite-width
    law with ``cfg.heads`` heads, or ``None`` until computed; ``report``: a
    :class:`infattn.diagnostics.GaussianityReport` of the finite outputs over all
    inputs (the law as reference); ``kurtosis``: ``{H: Moments}`` of finite
    outputs; ``scaling``: the 1/H fit (:class:`infattn.diagnostics.HeadsScaling`)
    or the reason there is none.
    """

    gp_var: float
    finite: np.ndarray | None = None
    law: np.ndarray | None = None
    report: Any = None
    kurtosis: dict = dataclasses.field(default_factory=dict)
    scaling: Any = None
    done: int = 0
    total: int = 0


def n_output_draws(cfg: Config) -> int:
    """Initialisations drawn for output histograms (at least 8 ``cfg.draws``)."""
    return 64 if fast_mode() else max(512, 8 * cfg.draws)


def kurtosis_heads(cfg: Config) -> tuple[int, ...]:
    """Head counts of the excess-kurtosis sweep."""
    return (1, 4) if fast_mode() else (1, 2, 4, 8, 16)


def finite_outputs(cfg: Config, x: np.ndarray, heads: int, n: int, key: jax.Array) -> np.ndarray:
    """``(n, N)`` outputs of finite networks with ``heads`` heads across initialisations."""
    init_fn, apply_fn, _ = model(cfg, heads)
    y = limits.sample_outputs(init_fn, apply_fn, x, n, key)
    return np.asarray(y).reshape(n, -1)


def law_views(cfg: Config, *, kurtosis: bool = True) -> Iterator[LawsView]:
    """The three laws of one output entry, then (``kurtosis``) the sweep over heads.

    Example:
      >>> cfg = Config(width=8, draws=8, n_inputs=2, seq_len=3)
      >>> first = next(law_views(cfg, kurtosis=False))  # finite networks and the GP
      >>> first.finite.shape, first.law is None
      ((512,), True)
    """
    hs = kurtosis_heads(cfg) if kurtosis else ()
    total = 2 + len(hs)
    n = n_output_draws(cfg)
    key = jax.random.PRNGKey(cfg.seed)
    with precision(cfg):
        x = make_inputs(cfg)
        gp_var = float(analytic_kernels(cfg, x)["nngp"][0][0, 0])
        finite = finite_outputs(cfg, x, cfg.heads, n, jax.random.fold_in(key, 0))
    view = LawsView(gp_var, finite[:, 0], done=1, total=total)
    yield view
    with precision(cfg):
        law = limits.sample_finite_head_outputs(model(cfg)[2], x, n, jax.random.fold_in(key, 1))
        law = np.asarray(law).reshape(n, -1)
        report = diagnostics.gaussianity_report(finite, reference=law)
    view = dataclasses.replace(view, law=law[:, 0], report=report, done=2)
    yield view
    moments, samples = {}, {}
    for i, h in enumerate(hs):
        with precision(cfg):
            y = finite_outputs(cfg, x, h, n, jax.random.fold_in(key, 2 + i))
        samples[h] = y
        moments[h] = diagnostics.skew_kurtosis(y[:, :1], se="bootstrap")
        scaling: Any = "needs two head counts"
        if len(samples) >= 2:
            try:
                scaling = diagnostics.kurtosis_vs_heads({k: v[:, :1] for k, v in samples.items()})
            except ValueError as e:  # a kurtosis <= 0: Gaussian within noise, no 1/H fit
                scaling = str(e)
        view = dataclasses.replace(view, kurtosis=dict(moments), scaling=scaling, done=3 + i)
        yield view


# ------------------------------------------------------------------ attention panel


@dataclasses.dataclass(frozen=True)
class AttentionView:
    """The first attention layer's weights for one input, and the positional covariance.

    ``weights``: ``(L, L)``; ``what`` says which matrix it is (the deterministic
    limit for ``1/d`` scaling, one draw of the limiting Gaussian logits for
    ``1/sqrt(d)``); ``R``: ``(L, L)`` or ``None`` without positional embeddings.
    """

    weights: np.ndarray
    what: str
    R: np.ndarray | None


def attention_view(cfg: Config, index: int = 0) -> AttentionView:
    """Attention weights ``zeta(G(x))`` of input ``index`` at the first attention layer.

    The layer sees ``S = w_in Sigma + w_pe R`` (``Sigma``: the read-in layer's
    NNGP of the input, ``R``: positional covariance). Tied ``1/d`` attention
    converges to ``G = zeta(S)``; untied ``1/d`` logits vanish (``zeta(0)``:
    uniform for softmax); under ``1/sqrt(d)`` each head's logits stay Gaussian
    with ``Cov(G_ab, G_cd) = S_ac S_bd``, drawn here as ``L Z L^T`` (``L L^T = S``,
    ``Z`` standard normal), one draw per seed.

    Example:
      >>> v = attention_view(Config(seq_len=5))
      >>> v.weights.shape, bool(np.allclose(v.weights.sum(-1), 1.0))
      ((5, 5), True)
    """
    with precision(cfg):
        x = make_inputs(cfg)
        if not 0 <= index < x.shape[0]:
            raise ValueError(f"index: expected 0 <= index < {x.shape[0]}, got {index}")
        read_in = model_spec(cfg).args[0].build()[2]
        sigma = np.asarray(read_in(x[index : index + 1], None, "nngp"))[0, 0]
        length = sigma.shape[0]
        spec = model_spec(cfg).args[1]
        R = None
        s = sigma
        if cfg.pos_emb != "NONE":
            decay = dict(_attention_kwargs(spec)).get("pos_emb_decay_fn")
            R = positional.covariance((length,), 2, decay)
            w_in, w_pe = positional.mixing_weights(cfg.pos_emb, cfg.width, None, cfg.pos_std)
            s = w_in * sigma + w_pe * R
        if cfg.scaling == "1/d tied":
            logits, what = s, "limit G(x) = ζ(S) (1/d, tied)"
        elif cfg.scaling == "1/d untied":
            logits, what = np.zeros_like(s), "limit ζ(0) (1/d, untied: logits vanish)"
        else:
            chol = np.linalg.cholesky(s + 1e-9 * np.trace(s) / length * np.eye(length))
            z = np.random.default_rng(cfg.seed).standard_normal((length, length))
            logits, what = chol @ z @ chol.T, "one head, Gaussian logits (1/√d)"
        weights = attention_weights(jnp.asarray(logits), None, cfg.mechanism)
    return AttentionView(np.asarray(weights), f"{what}, input {index}", R)


def _attention_kwargs(spec: Layer) -> tuple:
    """The ``GlobalSelfAttention`` keyword arguments inside a block specification."""
    if spec.name == "GlobalSelfAttention":
        return spec.kwargs
    for a in spec.args:
        if isinstance(a, Layer):
            found = _attention_kwargs(a)
            if found:
                return found
    return ()
