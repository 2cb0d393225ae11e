"""The front: :func:`monte_carlo_kernel_fn` and :func:`empirical_kernel_draws`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from infattn.empirical import chunks, running
from infattn.empirical.draws import (
    Config,
    Network,
    NtkImplementation,
    Strategy,
    choose_strategy,
    split_kwargs,
)
from infattn.empirical.estimate import KINDS, Interrupted, result
from infattn.empirical.layout import Axes
from infattn.empirical.tiles import Tile, tiles
from infattn.validation import as_array, canonical_get, check_finite, check_key

Array = jax.Array
InitFn = Callable[..., tuple[Any, Any]]
ApplyFn = Callable[..., Any]

DEFAULT_NTK_IMPLEMENTATION = NtkImplementation.AUTO
PROGRESS_DELAY = 2.0
"""Seconds after which ``progress=None`` shows the progress bar of a run still going."""


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Everything ``kernel_fn`` needs besides its inputs."""

    net: Network
    cfg: Config
    key: Array
    counts: tuple[int, ...]
    batch_size: int
    devices: list
    store_on_device: bool
    chunk_size: int | None
    progress: bool | None


def _positive_int(value: Any, name: str, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        allowed = "a positive integer" + (" or None" if optional else "")
        raise ValueError(f"{name}: expected {allowed}, got {value!r}")
    return int(value)


def _canonical_n_samples(n_samples: Any) -> tuple[tuple[int, ...], bool]:
    """``(ascending distinct counts, whether a generator is returned)``."""
    if isinstance(n_samples, int | np.integer) and not isinstance(n_samples, bool):
        counts, generator = (n_samples,), False
    elif isinstance(n_samples, Iterable) and not isinstance(n_samples, str):
        counts, generator = tuple(n_samples), True
    else:
        raise TypeError(
            f"n_samples: expected an integer or an iterable of integers, got {type(n_samples)}"
        )
    if not counts:
        raise ValueError("n_samples: expected at least one count, got none")
    for n in counts:
        _positive_int(n, "n_samples")
    return tuple(sorted({int(n) for n in counts})), generator


def _inputs(x1: Any, x2: Any, mask_constant: Any) -> tuple[Any, Any]:
    """``x1``, ``x2`` checked; ``mask_constant`` may be a pair ``(for x1, for x2)``.

    Each is an array ``(N, ..., C)`` or, for a model starting with ``parallel``, a
    tuple of them (one per branch, the same ``N``); ``x2`` is like ``x1``.
    """
    constants = split_kwargs({"mask_constant": mask_constant}, x2 is not None)
    x1 = _one_input(x1, "x1", constants[0]["mask_constant"])
    x2 = None if x2 is None else _one_input(x2, "x2", constants[1]["mask_constant"])
    if x2 is None:
        return x1, x2
    if _structure(x1) != _structure(x2):
        raise ValueError(
            f"x2: expected inputs structured like x1 ({_structure(x1)}), got {_structure(x2)}"
        )
    for a, b in zip(*(x if isinstance(x, tuple) else (x,) for x in (x1, x2)), strict=True):
        if b.ndim != a.ndim or b.shape[-1] != a.shape[-1]:
            raise ValueError(
                f"x2: expected as many axes and channels as x1 {a.shape}, got shape {b.shape}"
            )
    return x1, x2


def _structure(x: Any) -> str:
    return f"a tuple of {len(x)} arrays" if isinstance(x, tuple) else "one array"


def _one_input(x: Any, name: str, constant: Any) -> Any:
    """An array ``(N >= 1, ..., C)``, or a tuple of them with one ``N``, checked."""
    if isinstance(x, tuple):
        xs = tuple(_one_input(a, f"{name}[{i}]", constant) for i, a in enumerate(x))
        if not xs or len({a.shape[0] for a in xs}) != 1:
            shapes = [a.shape for a in xs]
            raise ValueError(f"{name}: expected arrays with one batch size N, got shapes {shapes}")
        return xs
    x = as_array(x, name, 2, "an array of shape (N >= 1, ..., C) or a tuple of them")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: expected an array of shape (N >= 1, ..., C), got {x.shape}")
    check_finite(x, name, None if constant is None else float(constant))
    return x


def _strategy_and_chunk(
    plan: _Plan, first: Tile, kwargs: dict, get: tuple[str, ...]
) -> tuple[Strategy, int]:
    strategy = choose_strategy(plan.net, plan.cfg, first.x1, first.x2, kwargs, get)
    limit = plan.chunk_size
    if limit is None:
        limit = chunks.draws_per_chunk(
            plan.net, plan.cfg, strategy, first.x1, first.x2, kwargs, get
        )
    return strategy, limit


def _estimates(
    plan: _Plan, x1: Array, x2: Array | None, get: tuple[str, ...], out: dict, kwargs: dict
) -> Generator[Any, None, None]:
    """The estimates at each of ``plan.counts`` draws, from one sequence of chunks.

    ``out``: keywords of :func:`~infattn.empirical.estimate.result` (``single``,
    ``return_se``). Ctrl-C between chunks raises :class:`Interrupted`.
    """
    tile_list = tiles(x1, x2, plan.batch_size, plan.cfg)
    strategy, limit = _strategy_and_chunk(plan, tile_list[0], kwargs, get)
    n_max = plan.counts[-1]
    size, n_chunks = chunks.schedule(n_max, limit, len(plan.devices))
    step = chunks.compiled_chunk(plan.net, plan.cfg)
    xp = jnp if plan.store_on_device else np
    state = running.empty(len(tile_list), get)
    targets = list(plan.counts)
    delay = 0.0 if plan.progress else PROGRESS_DELAY
    bar = tqdm(total=n_max, disable=plan.progress is False, delay=delay, desc="MC draws")
    try:
        for start in range(0, n_chunks * size, size):
            keys = chunks.draw_keys(plan.key, start, size, plan.devices)
            draws = [step(keys, t.x1, t.x2, kwargs, get, strategy) for t in tile_list]
            index = jnp.arange(start, start + size)
            pos = start
            while pos < min(start + size, n_max):
                stop = min(start + size, targets[0])
                weights = (index >= pos) & (index < stop)
                where = f"draws {pos}..{stop - 1}"
                state = running.update(state, draws, weights, plan.store_on_device, where)
                bar.update(stop - pos)
                pos = stop
                if stop == targets[0]:
                    targets.pop(0)
                    yield result(state, tile_list, get, stop, plan.cfg, xp, **out)
    except KeyboardInterrupt as e:
        n = state[0][get[0]].count
        partial = result(state, tile_list, get, n, plan.cfg, xp) if n >= 2 else None
        raise Interrupted(partial) from e
    finally:
        bar.close()


def monte_carlo_kernel_fn(
    init_fn: InitFn,
    apply_fn: ApplyFn,
    key: Array,
    n_samples: int | Iterable[int],
    batch_size: int = 0,
    device_count: int = -1,
    store_on_device: bool = True,
    trace_axes: Axes = (-1,),
    diagonal_axes: Axes = (),
    vmap_axes: Any = None,
    implementation: int | NtkImplementation = DEFAULT_NTK_IMPLEMENTATION,
    *,
    chunk_size: int | None = None,
    progress: bool | None = None,
    draws_in_parallel: int | None = None,
) -> Callable[..., Any]:
    """Monte Carlo estimator of the NNGP and NTK of a finite network, with standard errors.

    Same signature and meaning as ``neural_tangents.monte_carlo_kernel_fn``.

    Args:
      init_fn: ``init_fn(rng, input_shape) -> (output_shape, params)``.
      apply_fn: ``apply_fn(params, x, **kwargs)`` returning an array ``(N, ..., C)``
        or a ``MaskedArray`` (its padding entries are zeroed before use). It gets
        ``rng=`` (a per-draw key, as in neural-tangents) when it accepts it.
      key: PRNG key; draw ``i`` uses ``fold_in(key, i)``, its parameters drawn
        with threefry's original block layout (see ``draws.draw_params``).
      n_samples: number of draws, or an iterable of counts: then ``kernel_fn``
        returns a generator of the estimates at those counts (ascending,
        duplicates dropped), all from one sequence of draws.
      batch_size: compute the kernel in ``(batch_size, batch_size)`` tiles of
        ``(x1, x2)``; ``0``: the whole kernel at once. Must divide ``N1`` and ``N2``.
        Every tile of a draw uses the same parameters.
      device_count: devices over which the draws of a chunk are sharded; ``-1``:
        all, ``0``: one.
      store_on_device: ``False`` accumulates the estimates in host memory
        (float64 numpy arrays), ``True`` on the device.
      trace_axes: output axes averaged over (default: channels).
      diagonal_axes: output axes kept once (their diagonal).
      vmap_axes: ``None``, an axis, or ``(in_axes, out_axes, kwargs_axes)``
        certifying that ``f(x)[i]`` depends only on ``x[i]`` along those axes,
        as in neural-tangents. NTK Jacobians are then taken per example, which
        is ``N`` times cheaper; every infattn.stax layer qualifies (``0``). Not
        needed with parameter taps (see ``implementation``).
      implementation: see :class:`NtkImplementation`.
      chunk_size: draws per compiled step (a ``jax.lax.map`` over draws; the
        per-draw kernels of a chunk are kept for the standard errors). ``None``:
        as many as fit :data:`DEFAULT_MEMORY_BUDGET` (at most 256), balanced so that
        the last chunk is not mostly padding. Results do not depend on it (up to
        float rounding).
      progress: a ``tqdm`` progress bar over draws: ``True`` always, ``False``
        never, ``None`` once a run has taken :data:`PROGRESS_DELAY` seconds.
      draws_in_parallel: draws ``vmap``-ed together inside a chunk. ``None``: 1 (a
        sequential ``lax.map``) with Jacobians, which are large; otherwise (taps,
        or only the NNGP) up to 4, as many as keep :data:`PARALLEL_PARAMETER_BYTES`
        of parameters live; measured fastest on CPU. Raise it on accelerators.

    Returns:
      ``kernel_fn(x1, x2=None, get=None, *, return_se=False, **apply_fn_kwargs)``.
      ``x1``, ``x2``: arrays ``(N, ..., C)`` or, for a model starting with
      ``parallel``, tuples of them (one per branch, one ``N``; the NTK then goes
      by Jacobians or NTK-vector products, never taps).
      ``get``: ``'nngp'``, ``'ntk'``, a tuple of them, or ``None`` (both). Without
      ``return_se`` it returns what neural-tangents returns: the mean kernel
      (an array for a string ``get``, else a ``MonteCarloKernel`` namedtuple).
      With ``return_se=True`` it returns a :class:`MonteCarloEstimate` (means,
      per-entry standard errors ``nngp_se``/``ntk_se``, ``n_samples``), which needs
      ``n >= 2`` draws. Keyword arguments go to ``apply_fn`` (e.g.
      ``mask_constant``); a pair ``(v1, v2)`` gives ``v1`` with ``x1`` and ``v2``
      with ``x2``. For list-valued ``n_samples`` it returns a generator of those
      results.

    Raises:
      ValueError: bad ``n_samples``, ``get``, axes, input shapes, non-finite
        inputs or outputs (the message names the argument). TypeError: a list
        or complex input, an integer ``key``.
      Interrupted: Ctrl-C during a run, raised between chunks; a
        ``KeyboardInterrupt`` whose ``estimate`` is the :class:`MonteCarloEstimate`
        of the draws finished so far (``None`` with fewer than 2).

    Example:
        >>> from infattn import stax
        >>> init_fn, apply_fn, _ = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
        >>> kernel_fn = monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(0), 8)
        >>> est = kernel_fn(jnp.ones((2, 3)), None, "nngp", return_se=True)
        >>> est.nngp.shape, est.nngp_se.shape, est.n_samples
        ((2, 2), (2, 2), 8)
    """
    counts, generator = _canonical_n_samples(n_samples)
    if not isinstance(batch_size, int | np.integer) or batch_size < 0:
        raise ValueError(f"batch_size: expected a non-negative integer, got {batch_size!r}")
    try:
        impl = NtkImplementation(int(implementation))
    except (ValueError, TypeError) as e:
        raise ValueError(f"implementation: expected 0, 1, 2 or 3, got {implementation!r}") from e
    cfg = Config(
        trace_axes,
        diagonal_axes,
        vmap_axes,
        impl,
        _positive_int(draws_in_parallel, "draws_in_parallel", optional=True),
    )
    plan = _Plan(
        Network(init_fn, apply_fn),
        cfg,
        check_key(key),
        counts,
        int(batch_size),
        chunks.device_list(device_count),
        store_on_device,
        _positive_int(chunk_size, "chunk_size", optional=True),
        progress,
    )

    def kernel_fn(
        x1: Array,
        x2: Array | None = None,
        get: Any = None,
        *,
        return_se: bool = False,
        **apply_fn_kwargs: Any,
    ) -> Any:
        single, get_t = (False, KINDS) if get is None else canonical_get(get, KINDS)
        if return_se and counts[0] < 2:
            raise ValueError(f"n_samples: expected >= 2 draws for standard errors, got {counts[0]}")
        x1, x2 = _inputs(x1, x2, apply_fn_kwargs.get("mask_constant"))
        out = {"single": single, "return_se": return_se}
        gen = _estimates(plan, x1, x2, get_t, out, apply_fn_kwargs)
        return gen if generator else next(gen)

    kernel_fn.__doc__ = monte_carlo_kernel_fn.__doc__
    return kernel_fn


def empirical_kernel_draws(
    init_fn: InitFn,
    apply_fn: ApplyFn,
    key: Array,
    n_samples: int,
    x1: Array,
    x2: Array | None = None,
    get: str | tuple[str, ...] = KINDS,
    *,
    trace_axes: Axes = (-1,),
    diagonal_axes: Axes = (),
    vmap_axes: Any = None,
    implementation: int | NtkImplementation = DEFAULT_NTK_IMPLEMENTATION,
    chunk_size: int | None = None,
    progress: bool | None = None,
    compiler_options: dict[str, Any] | None = None,
    **apply_fn_kwargs: Any,
) -> dict[str, Array]:
    """The per-draw empirical kernels behind :func:`monte_carlo_kernel_fn`.

    Same draws (draw ``i`` uses ``fold_in(key, i)``) and conventions. Returns
    ``{kind: (n_samples, *kernel_shape)}`` for each kind in ``get``; memory grows
    with ``n_samples``, so this is for small kernels (limit checks, resampling
    statistics) where the mean and standard error are not enough.
    ``compiler_options``: XLA options for the compiled chunk step only (as
    ``jax.jit``'s), e.g. cheaper compilation for small interactive models.

    Example:
        >>> from infattn import stax
        >>> init_fn, apply_fn, _ = stax.Dense(2)
        >>> d = empirical_kernel_draws(init_fn, apply_fn, jax.random.PRNGKey(0), 3,
        ...                            jnp.ones((2, 4)), get="nngp")
        >>> d["nngp"].shape
        (3, 2, 2)
    """
    _, get_t = canonical_get(get, KINDS)
    counts, generator = _canonical_n_samples(n_samples)
    if generator:
        raise ValueError(f"n_samples: expected an integer, got {n_samples!r}")
    n = counts[0]
    impl = NtkImplementation(int(implementation))
    net = Network(init_fn, apply_fn)
    cfg = Config(trace_axes, diagonal_axes, vmap_axes, impl)
    key = check_key(key)
    x1, x2 = _inputs(x1, x2, apply_fn_kwargs.get("mask_constant"))
    chunk_size = _positive_int(chunk_size, "chunk_size", optional=True)
    plan = _Plan(net, cfg, key, counts, 0, chunks.device_list(0), True, chunk_size, progress)
    strategy, limit = _strategy_and_chunk(plan, Tile(x1, x2, 0, 0), apply_fn_kwargs, get_t)
    size, n_chunks = chunks.schedule(n, limit, 1)
    step = chunks.compiled_chunk(net, cfg, compiler_options)
    out: dict[str, list] = {k: [] for k in get_t}
    delay = 0.0 if progress else PROGRESS_DELAY
    bar = tqdm(range(n_chunks), disable=progress is False, delay=delay, desc="MC chunks")
    for c in bar:
        keys = chunks.draw_keys(key, c * size, size, plan.devices)
        draws = step(keys, x1, x2, apply_fn_kwargs, get_t, strategy)
        for k in get_t:
            out[k].append(draws[k])
    res = {k: jnp.concatenate(v)[:n] for k, v in out.items()}
    for k, v in res.items():
        if not np.isfinite(np.asarray(v)).all():  # on the host: no program per dtype
            raise ValueError(
                f"apply_fn: produced non-finite (NaN/inf) {k} draws; expected finite outputs: "
                "check x1/x2, mask_constant and the model"
            )
    return res


def ntk_strategy(
    init_fn: InitFn,
    apply_fn: ApplyFn,
    x1: Array,
    x2: Array | None = None,
    get: str | tuple[str, ...] = KINDS,
    *,
    trace_axes: Axes = (-1,),
    diagonal_axes: Axes = (),
    vmap_axes: Any = None,
    implementation: int | NtkImplementation = DEFAULT_NTK_IMPLEMENTATION,
    **apply_fn_kwargs: Any,
) -> Strategy:
    """How :func:`monte_carlo_kernel_fn` with these arguments computes one draw's NTK.

    Example:
        >>> from infattn import stax
        >>> init_fn, apply_fn, _ = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1))
        >>> ntk_strategy(init_fn, apply_fn, jnp.ones((2, 3)))
        <Strategy.TAPS: 'taps'>
        >>> ntk_strategy(init_fn, apply_fn, jnp.ones((2, 3)), implementation=1)
        <Strategy.JACOBIANS: 'jacobians'>
    """
    _, get_t = canonical_get(get, KINDS)
    cfg = Config(trace_axes, diagonal_axes, vmap_axes, NtkImplementation(int(implementation)))
    x1, x2 = _inputs(x1, x2, apply_fn_kwargs.get("mask_constant"))
    return choose_strategy(Network(init_fn, apply_fn), cfg, x1, x2, apply_fn_kwargs, get_t)
