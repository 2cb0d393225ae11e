"""Running an estimator chunk by chunk: fixed or automatic sample sizes, progress,
interrupts and sub-streams.

An :class:`Estimator` is a run's ``init``/``step``/``finish`` functions bound to
their prepared data (:mod:`infattn.logits.joint`, :mod:`infattn.logits.pairwise`).
:func:`run` calls ``step`` once per chunk from Python, so a progress bar can
follow and ``Ctrl-C`` stops the run between two chunks (a chunk is sized to take
a fraction of a second, :data:`~infattn.logits.chunks.CHUNK_FLOPS`). Under a
``jax`` transformation (inputs are tracers) the same steps run inside
``lax.fori_loop`` / ``lax.while_loop`` instead, without a bar.

Automatic sample size (``n_samples=None``): chunks are taken in rounds of ``R``
(one per sub-stream, so the replicates stay balanced); after at least
:data:`MIN_CHUNKS` chunks and after every round the run stops once the relative
standard error (:func:`relative_standard_error`) of every returned kernel is at
most the target, or at ``max_samples`` draws. The standard error judged is the
one returned: with replicates, their spread (:func:`reported`), which is what a
``Kernel``'s ``nngp_se``/``ntk_se`` are. An estimator that can (``splits``) stops
drawing the NTK once the NTK meets the target and goes on with the cheaper nngp
alone. Which happened is said: a ``RuntimeWarning`` when the cap stopped the
run, an ``INFO`` record of the ``infattn.logits.driver`` logger when the target
was met.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from tqdm.auto import tqdm

from infattn.logits.chunks import Estimate
from infattn.statistics import batch_means_se

Array = jax.Array
Results = tuple[Estimate, Estimate | None]

logger = logging.getLogger(__name__)

MIN_CHUNKS = 40
"""Fewest chunks (batches) before an automatic run may stop: the batch-means
standard error then has at least 39 degrees of freedom (its own relative error
is about 11%)."""

SCALE_FLOOR = 1e-3
"""Floor of a position's variance in :func:`relative_standard_error`, relative
to the largest variance of the kernel."""

PROGRESS_DELAY = 2.0
"""With ``progress=None`` the bar appears once a run has taken this many seconds."""


class Estimator(NamedTuple):
    """One run of an estimator: its functions bound to the prepared data.

    ``init() -> state``; ``step(state, c, n_samples, ntk) -> state`` adds chunk
    ``c`` of ``s_chunk`` draws (draws past ``n_samples`` are padding; ``ntk``
    ``False``: to the nngp only); ``finish(state, n_chunks, replicates,
    ntk_chunks) -> (nngp, ntk)`` estimates (``ntk_chunks``: the chunks the NTK
    took, ``None`` for all); ``rel_se(results) -> (2,)`` the stopping criterion of
    the nngp and of the NTK (0 without); ``splits``: whether ``step`` honours
    ``ntk=False``.
    """

    init: Callable[[], Any]
    step: Callable[[Any, Any, Any, bool], Any]
    finish: Callable[[Any, Any, bool, Any], Results]
    rel_se: Callable[[Results], Array]
    s_chunk: int
    splits: bool = False


class Schedule(NamedTuple):
    """Which chunks to take.

    ``n_samples``: a fixed number of draws, or ``None`` for an automatic run
    (until ``target`` or ``max_samples``); ``round``: chunks per round (``R``);
    ``substream``: ``None``, or ``(r, n_chunks, n_samples)`` to take only the
    chunks ``c = r (mod round)`` below ``n_chunks`` of a run of ``n_samples``
    draws (sub-stream ``r`` of a finished run).
    """

    n_samples: int | None
    target: float
    max_samples: int
    round: int
    substream: tuple[int, int, int] | None = None


class Outcome(NamedTuple):
    """A finished run: its results, the chunks and draws taken, the relative
    standard error reached and whether it met the target (``True`` for fixed runs)."""

    results: Results
    n_chunks: Any
    n_samples: Any
    rel_se: Any
    converged: Any
    ntk_samples: Any = None


def reported(est: Estimate) -> Estimate:
    """``est`` with the standard error its caller reports: with sub-stream
    estimates ``reps`` (``(R, *shape)``), their batch-means SE
    ``std(reps, ddof=1) / sqrt(R)`` (a ``Kernel``'s ``nngp_se``/``ntk_se``), else
    ``est.se`` unchanged.

    Example:
        >>> est = Estimate(jnp.full((1,), 2.0), jnp.zeros(1), jnp.array([[1.0], [3.0]]))
        >>> reported(est).se.tolist()
        [1.0]
    """
    if est.reps is None:
        return est
    return est._replace(se=batch_means_se(est.reps))


@functools.partial(jax.jit, static_argnames=("batch_ndim",))
def relative_standard_error(
    est: Estimate, var1: Array | None, var2: Array | None, batch_ndim: int = 2
) -> Array:
    """The largest relative standard error over the entries of a kernel estimate.

    Entry ``(i, j, a, b)`` of a ``(N1, N2, L, L)`` estimate is compared with the
    natural scale ``sqrt(v1_ia v2_jb)``, ``v`` the variances of the positions
    (``var1`` ``(N1, L)``, ``var2`` ``(N2, L)``) floored at :data:`SCALE_FLOOR`
    times the largest of them, so the scale never vanishes next to a nonzero SE;
    with ``var1`` ``None`` the scale is the largest ``|mean|`` of the estimate.
    Entries with ``se == 0`` (exact, or masked) count 0. ``batch_ndim=1`` for
    ``(N, L, L)`` estimates of each input with itself (``var2`` unused).

    Example:
        >>> est = Estimate(jnp.ones((1, 1, 1, 1)), jnp.full((1, 1, 1, 1), 0.02), None)
        >>> round(float(relative_standard_error(est, jnp.full((1, 1), 4.0), jnp.ones((1, 1)))), 6)
        0.01
    """
    se = est.se
    if var1 is None:
        scale = jnp.max(jnp.abs(est.mean))
    else:
        v1, v2 = var1, var1 if batch_ndim == 1 else var2
        floor = SCALE_FLOOR * jnp.maximum(jnp.max(v1), jnp.max(v2))
        v1, v2 = jnp.maximum(v1, floor), jnp.maximum(v2, floor)
        if batch_ndim == 2:
            scale = jnp.sqrt(v1[:, None, :, None] * v2[None, :, None, :])
        else:
            scale = jnp.sqrt(v1[:, :, None] * v2[:, None, :])
    ratio = jnp.where(se > 0, se / jnp.where(scale > 0, scale, 1.0), 0.0)
    return jnp.max(ratio, initial=0.0)


def _is_traced(tree: Any) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(tree))


def run(
    est: Estimator, schedule: Schedule, progress: bool | None, label: str, traced: bool
) -> Outcome:
    """Run ``est`` over the chunks of ``schedule``; see the module docstring.

    ``traced``: the inputs are tracers (run inside ``lax`` loops, no bar).
    """
    if schedule.substream is not None:
        return _run_substream(est, schedule, traced)
    if traced:
        return _run_traced(est, schedule)
    s = est.s_chunk
    fixed = schedule.n_samples is not None
    total = schedule.n_samples if fixed else _max_chunks(schedule, s) * s
    n_chunks = -(-total // s)
    state = jax.block_until_ready(est.step(est.init(), 0, total, True))  # compiles the step
    bar = tqdm(
        total=total,
        initial=min(s, total),
        desc=label,
        unit="draw",
        delay=PROGRESS_DELAY if progress is None else 0.0,
        disable=progress is False,
        leave=False,
    )
    rel_se, converged, c, ntk_chunks = math.nan, fixed, 1, None
    with bar:
        while c < n_chunks:
            state = est.step(state, c, total, ntk_chunks is None)
            jax.block_until_ready(state)  # a KeyboardInterrupt surfaces here, between chunks
            bar.update(min(s, total - c * s))
            c += 1
            if not fixed and c >= _min_chunks(schedule) and c % schedule.round == 0:
                results = est.finish(state, c, True, ntk_chunks)
                parts = [float(x) for x in est.rel_se(results)]
                split = est.splits and results[1] is not None and ntk_chunks is None
                if split and parts[1] <= schedule.target:
                    ntk_chunks = c  # the NTK is done: the nngp goes on alone
                rel_se = max(parts)
                bar.set_postfix_str(f"rel. SE {rel_se:.2g} (target {schedule.target:.2g})")
                if rel_se <= schedule.target:
                    converged = True
                    break
    results = est.finish(state, c, True, ntk_chunks)
    if fixed:
        rel_se = float(jnp.max(est.rel_se(results)))
    ntk_draws = min((ntk_chunks or c) * s, total)
    _say(label, schedule, converged and not fixed, rel_se, min(c * s, total), ntk_draws)
    return Outcome(results, c, min(c * s, total), rel_se, converged, ntk_draws)


def _say(
    label: str, schedule: Schedule, met: bool, rel_se: float, draws: int, ntk_draws: int
) -> None:
    """The ``INFO`` record of a met target, or the ``RuntimeWarning`` of the cap
    (nothing for a fixed run: ``schedule.n_samples`` given)."""
    if schedule.n_samples is not None:
        return
    ntk = f" ({ntk_draws} for the NTK)" if ntk_draws < draws else ""
    if met:
        logger.info(
            "%s: target met: relative standard error %.3g <= %.3g after %d draws%s",
            label, rel_se, schedule.target, draws, ntk,
        )  # fmt: skip
        return
    warnings.warn(
        f"{label}: stopped at the cap of {draws} draws (max_samples) with a relative "
        f"standard error of {rel_se:.3g}, above the target {schedule.target:.3g}; raise "
        "the cap or the target, or pass a fixed number of samples",
        RuntimeWarning,
        stacklevel=4,
    )


def _min_chunks(schedule: Schedule) -> int:
    return -(-MIN_CHUNKS // schedule.round) * schedule.round


def _max_chunks(schedule: Schedule, s: int) -> int:
    """The cap in chunks: whole rounds, at least :func:`_min_chunks`."""
    rounds = max(1, schedule.max_samples // (s * schedule.round))
    return max(rounds * schedule.round, _min_chunks(schedule))


def _run_traced(est: Estimator, schedule: Schedule) -> Outcome:
    """:func:`run` inside ``lax`` loops (no bar, no interrupt, no warning)."""
    s = est.s_chunk
    state = est.init()
    if schedule.n_samples is not None:
        n = schedule.n_samples
        n_chunks = -(-n // s)
        state = lax.fori_loop(0, n_chunks, lambda c, st: est.step(st, c, n, True), state)
        results = est.finish(state, n_chunks, True, None)
        return Outcome(results, n_chunks, n, jnp.max(est.rel_se(results)), True)
    max_chunks = _max_chunks(schedule, s)
    total = max_chunks * s
    first = _min_chunks(schedule)
    state = lax.fori_loop(0, first, lambda c, st: est.step(st, c, total, True), state)

    def rel_se(st: Any, c: Array) -> Array:
        return jnp.max(est.rel_se(est.finish(st, c, True, None)))

    def more(carry: tuple) -> Array:
        _, c, r = carry
        return (r > schedule.target) & (c < max_chunks)

    def one_round(carry: tuple) -> tuple:
        st, c, _ = carry
        st = lax.fori_loop(c, c + schedule.round, lambda k, x: est.step(x, k, total, True), st)
        c = c + schedule.round
        return st, c, rel_se(st, c)

    state, c, r = lax.while_loop(more, one_round, (state, jnp.asarray(first), rel_se(state, first)))
    return Outcome(est.finish(state, c, True, None), c, c * s, r, r <= schedule.target)


def _run_substream(est: Estimator, schedule: Schedule, traced: bool) -> Outcome:
    """Only the chunks ``c = r (mod round)`` below ``n_chunks`` of a finished run."""
    r, n_chunks, n_samples = schedule.substream
    state = est.init()
    if traced or isinstance(n_chunks, jax.core.Tracer):
        count = (n_chunks - r + schedule.round - 1) // schedule.round
        state = lax.fori_loop(
            0, count, lambda k, st: est.step(st, r + k * schedule.round, n_samples, True), state
        )
        return Outcome(est.finish(state, count, False, None), count, None, None, True)
    chunks = range(r, int(n_chunks), schedule.round)
    for c in chunks:
        state = est.step(state, c, n_samples, True)
        jax.block_until_ready(state)
    return Outcome(est.finish(state, len(chunks), False, None), len(chunks), None, None, True)
