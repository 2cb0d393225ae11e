"""Background warm-up: what it computes is compiled afterwards, and it never holds up a job."""

import dataclasses
import threading

import jax

from infattn.explore import compute
from infattn.explore.jobs import Runner
from infattn.explore.model import Config, make_inputs
from infattn.explore.warmup import WarmUp, neighbours, warm_steps

SMALL = Config(width=8, draws=4, n_inputs=2, seq_len=3)
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def _changed(a: Config, b: Config) -> list[str]:
    return [f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]


def test_neighbours_are_valid_configs_one_control_away_costliest_first():
    near = neighbours(Config())
    assert all(len(_changed(Config(), n)) == 1 for n in near)
    assert len(set(near)) == len(near) and Config() not in near
    assert _changed(Config(), near[0]) == ["dtype"] and _changed(Config(), near[1]) == ["scaling"]
    assert Config(heads=1024).replace(heads=2048) not in neighbours(Config(heads=1024))


def _compilations(fn) -> int:
    count = []

    def listener(event, duration, **kwargs):
        if event == COMPILE_EVENT:
            count.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        fn()
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return len(count)


def _first_views(cfg: Config) -> None:
    """What the Kernel panel computes first: analytic kernels and one Monte Carlo chunk."""
    with compute.precision(cfg):
        x = make_inputs(cfg)
        compute.analytic_kernels(cfg, x)
    compute.kernel_chunk(cfg, x, 0)


def test_after_warm_up_a_neighbour_is_computed_without_compiling():
    target = SMALL.replace(mechanism="RELU", layernorm=False)  # a structure not seen before
    warm = WarmUp(steps=lambda cfg: warm_steps(cfg) if cfg == target else iter(()))
    warm.schedule(target.replace(layernorm=True))
    assert warm.wait_idle(600) and target in warm.warmed and not warm.failed
    assert _compilations(lambda: _first_views(target)) == 0
    fresh = target.replace(mechanism="ABS")  # not warmed: the counter does see compilations
    assert _compilations(lambda: _first_views(fresh)) > 0


def test_no_warm_up_step_starts_while_a_user_job_runs():
    started = []
    warm = WarmUp(steps=lambda cfg: iter([started.append(cfg)]))
    warm.begin()
    warm.schedule(SMALL)
    assert not warm.wait_idle(0.3) and started == []
    warm.end()
    assert warm.wait_idle(10) and len(started) == len(neighbours(SMALL))


def test_a_user_job_does_not_wait_for_a_running_warm_up_step():
    release, inside = threading.Event(), threading.Event()

    def stuck(cfg):  # a compilation that takes as long as the test wants
        inside.set()
        release.wait(30)
        yield

    warm = WarmUp(steps=stuck)
    warm.schedule(SMALL)
    assert inside.wait(10)
    warm.begin()
    job = Runner().submit(lambda: iter(["view"]), lambda v, j: None, on_end=lambda j: warm.end())
    assert job.wait(10) and job.status == "done"  # done while the warm-up step still runs
    assert not release.is_set()
    release.set()
    warm.schedule(SMALL)  # nothing left to do
    assert warm.wait_idle(30)
