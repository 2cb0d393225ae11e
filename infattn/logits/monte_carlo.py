"""The infinite-head kernels of standard-scaled attention by Monte Carlo.

:func:`standard_attention_mc` checks its arguments, picks the estimator (joint
when ``x2 is x1``, pairwise plus two marginal runs otherwise), runs it chunk by
chunk (:mod:`infattn.logits.driver`) and returns a
:class:`~infattn.logits.inputs.StandardAttentionMC`. :func:`estimate` is the same
on checked :class:`~infattn.logits.inputs.AttentionInputs`, and also makes the
replicates of a layer whose input carries replicates (sub-stream ``r`` of the
draws on input replicate ``r``).
"""

from __future__ import annotations

import functools
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp

from infattn.logits import factored, joint, pairwise
from infattn.logits.chunks import Estimate, Plan, choose_chunks
from infattn.logits.driver import (
    Estimator,
    Outcome,
    Schedule,
    relative_standard_error,
    reported,
    run,
)
from infattn.logits.inputs import AttentionInputs, StandardAttentionMC, attention_inputs
from infattn.logits.mechanisms import check_mechanism
from infattn.logits.sampling import batch_diagonal, position_diagonal
from infattn.validation import check_int, check_positive, check_std

Array = jax.Array

VARIANCE_REDUCTIONS = ("auto", "none", "antithetic", "hermite", "hermite2")
"""``none``: plain Monte Carlo; ``antithetic``: each draw ``G`` with ``-G``;
``hermite`` / ``hermite2`` (elementwise mechanisms): the degree <= 1 / <= 2
Hermite part in closed form, only the orthogonal residual sampled (``hermite2``
reduces the variance far more but its residual is heavy-tailed, so its
standard errors are slightly optimistic at moderate ``n_samples``); ``auto``:
``antithetic`` for SOFTMAX, ``hermite`` otherwise."""

DEFAULT_MC_SAMPLES = 12288
"""A fixed sample size that meets :data:`DEFAULT_TARGET_RSE` on the typical
benchmark inputs (N=16, L=16, C=16, qk_std=1) for SOFTMAX, ABS and RELU (see
``docs/standard-scaling.md``); the default is ``"auto"``."""

DEFAULT_TARGET_RSE = 0.01
"""Default target of ``n_samples="auto"``: the largest relative standard error
over the kernel's entries (:func:`~infattn.logits.driver.relative_standard_error`),
1% of each entry's natural scale: below the scatter of finite networks of width
up to ~10^4 (``O(width^-1/2)``), and what the former fixed default reached on
typical inputs."""

DEFAULT_MAX_SAMPLES = 65536
"""Default cap of ``n_samples="auto"`` (about 5x :data:`DEFAULT_MC_SAMPLES`)."""

DEFAULT_ROUND = 10
"""Chunks per round of an automatic run without replicates."""

NSamples = int | Literal["auto"]


class Options(NamedTuple):
    """Checked settings of one Monte Carlo run (see :func:`standard_attention_mc`)."""

    mechanism: str
    qk_std: float
    n_samples: int | None  # None: automatic
    seed: int
    scheme: str
    sample_chunk: int | None = None
    input_chunk: int | None = None
    target_rse: float = DEFAULT_TARGET_RSE
    max_samples: int = DEFAULT_MAX_SAMPLES
    n_replicates: int = 0
    progress: bool | None = None
    label: str = "standard-scaling attention"
    factored: bool | None = None  # the factored NTK path: None when cheaper, or forced


def check_samples(value: object, name: str = "n_samples") -> int | None:
    """``"auto"`` (returned as ``None``) or an integer >= 2.

    Example:
        >>> check_samples("auto") is None, check_samples(64)
        (True, 64)
        >>> check_samples(1, "mc_samples")
        Traceback (most recent call last):
        ...
        ValueError: mc_samples: expected 'auto' or an integer >= 2, got 1
    """
    if isinstance(value, str) and value == "auto":
        return None
    try:
        return check_int(value, name, 2)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{name}: expected 'auto' or an integer >= 2, got {value!r}") from None


def resolve_scheme(variance_reduction: object, mechanism: str) -> str:
    """The scheme ``variance_reduction`` means for ``mechanism``.

    Example:
        >>> resolve_scheme("auto", "SOFTMAX"), resolve_scheme("auto", "RELU")
        ('antithetic', 'hermite')
    """
    if variance_reduction not in VARIANCE_REDUCTIONS:
        raise ValueError(
            f"variance_reduction: expected one of {VARIANCE_REDUCTIONS}, got {variance_reduction!r}"
        )
    if variance_reduction == "auto":
        return "antithetic" if mechanism == "SOFTMAX" else "hermite"
    if str(variance_reduction).startswith("hermite") and mechanism == "SOFTMAX":
        raise ValueError(
            f"variance_reduction: {variance_reduction!r} needs an elementwise mechanism, "
            "not SOFTMAX"
        )
    return str(variance_reduction)


def standard_attention_mc(
    qk: tuple[Array, Array, Array | None],
    v: tuple[Array, Array, Array | None],
    qk_ntk: Array | None,
    v_ntk: Array | None,
    key_mask1: Array | None,
    key_mask2: Array | None,
    mechanism: str,
    qk_std: float,
    *,
    n_samples: NSamples = "auto",
    seed: int = 0,
    variance_reduction: str = "auto",
    sample_chunk: int | None = None,
    input_chunk: int | None = None,
    target_rse: float = DEFAULT_TARGET_RSE,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    n_replicates: int = 0,
    progress: bool | None = None,
) -> StandardAttentionMC:
    """Infinite-head kernels of standard-scaled attention by Monte Carlo.

    Args:
      qk: ``(nngp, cov1, cov2)`` of what queries/keys see (``S``, positional
        embedding included): ``nngp`` ``(N1, N2, L, L)``, ``cov1`` ``(N1, L, L)``,
        ``cov2`` ``(N2, L, L)`` or ``None`` meaning ``x2 is x1`` (then ``nngp`` is
        the full ``(N1, N1, L, L)`` block and all logits are sampled jointly).
      v: the same triple for the values' input covariance ``V``.
      qk_ntk: ``(N1, N2, L, L)`` NTK ``T`` seen by queries/keys, or ``None``.
      v_ntk: ``(N1, N2, L, L)`` values' input NTK ``T_v``, or ``None``. The NTK
        is computed iff both are given.
      key_mask1: ``(N1, L)`` bool, ``True`` at padding keys, or ``None``.
      key_mask2: ``(N2, L)`` likewise (ignored when ``cov2`` is ``None``).
      mechanism: ``'SOFTMAX'``, ``'IDENTITY'``, ``'ABS'`` or ``'RELU'``.
      qk_std: ``W_query_std * W_key_std``.
      n_samples: independent logit draws (each SOFTMAX draw is used with its
        antithetic twin ``-G``), an integer >= 2; or ``"auto"``: draw chunks until
        the largest relative standard error over the entries of each returned
        kernel is at most ``target_rse`` (see
        :func:`~infattn.logits.driver.relative_standard_error`; the SE judged is the
        one returned, with ``n_replicates`` the replicates' spread), or
        ``max_samples`` draws are reached (then a ``RuntimeWarning``). The NTK
        stops drawing once it meets the target (``n_samples`` of the result is
        the nngp's draws).
      seed: Python int. The result is a deterministic function of the inputs,
        the sample settings, ``seed`` and ``sample_chunk`` (draws are keyed by seed
        and chunk index; the input blocking does not change them).
      variance_reduction: one of :data:`VARIANCE_REDUCTIONS`.
      sample_chunk, input_chunk: draws per chunk and inputs per block (memory).
      target_rse, max_samples: the target and cap of ``n_samples="auto"``.
      n_replicates: ``R >= 2`` to also return ``R`` sub-stream estimates
        (chunk ``c`` belongs to sub-stream ``c mod R``), or 0.
      progress: a progress bar: ``None`` shows it once the run has taken 2 s,
        ``True`` at once, ``False`` never. ``Ctrl-C`` stops the run between
        chunks (a fraction of a second) with ``KeyboardInterrupt``.

    Returns:
      :class:`~infattn.logits.inputs.StandardAttentionMC` before the
      ``ov_std**2`` factor and bias. Masked keys get zero attention weight; rows
      of masked queries are not zeroed (the layer remasks).

    Example:
        >>> s = jnp.eye(3)[None, None]  # one input, L = 3
        >>> out = standard_attention_mc((s, s[0], None), (s, s[0], None), None, None,
        ...                             None, None, "SOFTMAX", 1.0, n_samples=256)
        >>> out.nngp.shape, bool(out.rel_se < 0.05)
        ((1, 1, 3, 3), True)
    """
    mechanism = check_mechanism(mechanism)
    check_std(qk_std, "qk_std")
    opts = Options(
        mechanism=mechanism,
        qk_std=float(qk_std),
        n_samples=check_samples(n_samples),
        seed=check_int(seed, "seed", 0),
        scheme=resolve_scheme(variance_reduction, mechanism),
        sample_chunk=None if sample_chunk is None else check_int(sample_chunk, "sample_chunk", 1),
        input_chunk=None if input_chunk is None else check_int(input_chunk, "input_chunk", 1),
        target_rse=check_positive(target_rse, "target_rse"),
        max_samples=check_int(max_samples, "max_samples", 2),
        n_replicates=0 if n_replicates == 0 else check_int(n_replicates, "n_replicates", 2),
        progress=progress,
    )
    return estimate(attention_inputs(qk, v, qk_ntk, v_ntk, key_mask1, key_mask2), opts)


def estimate(
    inputs: AttentionInputs, opts: Options, input_replicates: AttentionInputs | None = None
) -> StandardAttentionMC:
    """:func:`standard_attention_mc` on checked inputs and options.

    ``input_replicates``: the inputs' replicates (arrays with a leading axis
    ``R = opts.n_replicates``; masks are the inputs') or ``None``. With them,
    replicate ``r`` of the result is the estimate on input replicate ``r`` from
    sub-stream ``r`` of the draws; without them (and ``R > 0``), the sub-stream
    estimates on the inputs themselves.

    Example:
        >>> s = jnp.eye(2)[None, None]
        >>> opts = Options("RELU", 1.0, 64, 0, "hermite", n_replicates=4)
        >>> out = estimate(AttentionInputs(s, s[0], None, s, s[0], None), opts)
        >>> out.replicates.nngp.shape
        (4, 1, 1, 2, 2)
    """
    dt = jnp.result_type(inputs.s.dtype, inputs.v.dtype, jnp.float32)
    if not jnp.issubdtype(dt, jnp.floating):
        dt = jnp.float32
    inputs = inputs.astype(dt)
    traced = any(
        isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((inputs, input_replicates))
    )
    n1, n2, l, _ = inputs.s.shape
    factors = factored.joint_factors(inputs, opts.mechanism, opts.factored)
    pair_flops = None if factors is None else factored.pair_flops(factors)
    s_chunk, bs = choose_chunks(
        n1, n2, l, opts.n_samples, inputs.want_ntk, opts.scheme == "antithetic",
        opts.sample_chunk, opts.input_chunk, pair_flops,
    )  # fmt: skip
    own_reps = opts.n_replicates if input_replicates is None else 0
    plan = Plan(opts.mechanism, opts.qk_std**2, opts.scheme, s_chunk, bs, own_reps)
    schedule = Schedule(
        opts.n_samples, opts.target_rse, opts.max_samples, opts.n_replicates or DEFAULT_ROUND
    )
    key = jax.random.key(opts.seed)
    outcomes = _run_all(inputs, plan, key, [schedule] * 3, opts, traced, factors)
    out = _assemble(inputs, outcomes)
    if input_replicates is None:
        return out
    reps = []
    for r in range(opts.n_replicates):
        rep = AttentionInputs(*(None if x is None else x[r] for x in input_replicates[:8]))
        rep = rep._replace(mask1=inputs.mask1, mask2=inputs.mask2).astype(dt)
        subs = [schedule._replace(substream=(r, o.n_chunks, o.n_samples)) for o in outcomes]
        r_out = _assemble(
            rep,
            _run_all(
                rep,
                plan,
                key,
                subs,
                opts._replace(progress=False),
                traced,
                factored.joint_factors(rep, opts.mechanism, opts.factored),
            ),
        )
        reps.append(StandardAttentionMC(*r_out[:4], None, None, None, None))
    return out._replace(replicates=jax.tree.map(lambda *xs: jnp.stack(xs), *reps))


def _run_all(
    inputs: AttentionInputs,
    plan: Plan,
    key: Array,
    schedules: list[Schedule],
    opts: Options,
    traced: bool,
    factors: factored.Factors | None = None,
) -> list[Outcome]:
    """The joint run (``factors``: for its factored NTK path, or ``None``), or the
    two marginal runs and then the pairwise one."""

    def go(est: Estimator, schedule: Schedule, name: str) -> Outcome:
        return run(est, schedule, opts.progress, f"{opts.label} ({name})", traced)

    if inputs.joint:
        return [go(_joint_estimator(inputs, key, plan, factors), schedules[0], "kernel")]
    n1, n2 = inputs.s.shape[:2]
    marginal_plan = plan._replace(bs=max(1, min(n1, n2, 64)))
    cov1 = go(
        _marginal_estimator(
            inputs.s_cov1, inputs.v_cov1, inputs.mask1, jax.random.fold_in(key, 0), marginal_plan
        ),
        schedules[0],
        "x1 with itself",
    )
    cov2 = go(
        _marginal_estimator(
            inputs.s_cov2, inputs.v_cov2, inputs.mask2, jax.random.fold_in(key, 1), marginal_plan
        ),
        schedules[1],
        "x2 with itself",
    )
    var1, var2 = (position_diagonal(o.results[0].mean) for o in (cov1, cov2))
    cross = go(_cross_estimator(inputs, key, plan, var1, var2), schedules[2], "x1 with x2")
    return [cov1, cov2, cross]


def _joint_estimator(
    inputs: AttentionInputs, key: Array, plan: Plan, factors: factored.Factors | None
) -> Estimator:
    prep = joint.prepare(inputs, key, plan, factors)
    n = inputs.s.shape[0]

    def rel_se(results: tuple) -> Array:
        """Each kernel's SE (as returned) against its own diagonal."""
        out = [
            0.0 if e is None else relative_standard_error(reported(e), *[_diagonal(e)] * 2)
            for e in results
        ]
        return jnp.stack([jnp.asarray(x, prep.a.dtype) for x in out])

    def step(state: Any, c: Any, n_samples: Any, ntk: bool) -> Any:
        return joint.step(prep, state, c, n_samples, plan=plan, ntk=ntk)

    def finish(state: Any, c: Any, reps: bool, ntk_chunks: Any) -> tuple:
        return joint.finish(prep, state, c, n=n, replicates=reps, ntk_chunks=ntk_chunks)

    return Estimator(
        functools.partial(joint.init, prep, plan), step, finish, rel_se, plan.s_chunk, True
    )


def _diagonal(e: Estimate) -> Array:
    """``(N, L)``: the variances ``K_aa(x, x)`` of a joint kernel estimate."""
    return position_diagonal(batch_diagonal(e.mean))


def _cross_estimator(
    inputs: AttentionInputs, key: Array, plan: Plan, var1: Array, var2: Array
) -> Estimator:
    prep = pairwise.cross_prepare(inputs, key, plan)
    n1, n2 = inputs.s.shape[:2]

    def rel_se(results: tuple) -> Array:
        nngp, ntk = results
        out = relative_standard_error(reported(nngp), var1, var2)
        if ntk is None:
            return jnp.stack([out, jnp.zeros_like(out)])
        return jnp.stack([out, relative_standard_error(reported(ntk), None, None)])

    return Estimator(
        functools.partial(pairwise.cross_init, prep, plan),
        lambda state, c, n_samples, _: pairwise.cross_step(prep, state, c, n_samples, plan=plan),
        lambda state, c, reps, _: pairwise.cross_finish(
            prep, state, c, n1=n1, n2=n2, replicates=reps
        ),
        rel_se,
        plan.s_chunk,
    )


def _marginal_estimator(
    cov_s: Array, cov_v: Array, mask: Array | None, key: Array, plan: Plan
) -> Estimator:
    prep = pairwise.marginal_prepare(cov_s, cov_v, mask, key, plan)

    def rel_se(results: tuple) -> Array:
        est = reported(results[0])
        out = relative_standard_error(est, position_diagonal(est.mean), None, batch_ndim=1)
        return jnp.stack([out, jnp.zeros_like(out)])

    return Estimator(
        functools.partial(pairwise.marginal_init, prep, plan),
        lambda state, c, n_samples, _: pairwise.marginal_step(prep, state, c, n_samples, plan=plan),
        lambda state, c, reps, _: pairwise.marginal_finish(prep, state, c, replicates=reps),
        rel_se,
        plan.s_chunk,
    )


def _assemble(inputs: AttentionInputs, outcomes: list[Outcome]) -> StandardAttentionMC:
    """The :class:`StandardAttentionMC` of one run (joint) or three (pairwise)."""
    rel_se = functools.reduce(
        jnp.maximum,
        [jnp.asarray(o.rel_se) for o in outcomes if o.rel_se is not None],
        jnp.asarray(0.0),
    )
    if inputs.joint:
        ((nngp, ntk),) = [o.results for o in outcomes]
        reps = None if nngp.reps is None else jax.vmap(batch_diagonal)(nngp.reps)
        cov1 = Estimate(batch_diagonal(nngp.mean), batch_diagonal(nngp.se), reps)
        cov2 = None
    else:
        (cov1, _), (cov2, _), (nngp, ntk) = [o.results for o in outcomes]
    reps = None
    if nngp.reps is not None:
        reps = StandardAttentionMC(
            nngp.reps, cov1.reps, None if cov2 is None else cov2.reps,
            None if ntk is None else ntk.reps, None, None, None, None,
        )  # fmt: skip
    return StandardAttentionMC(
        nngp.mean,
        cov1.mean,
        None if cov2 is None else cov2.mean,
        None if ntk is None else ntk.mean,
        nngp.se,
        cov1.se,
        None if cov2 is None else cov2.se,
        None if ntk is None else ntk.se,
        reps,
        outcomes[-1].n_samples,
        rel_se,
    )
