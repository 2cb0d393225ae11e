"""The worker-thread runner: views in order, cancellation between steps, errors reported."""

import threading

from infattn.explore.jobs import Runner


def test_views_arrive_in_order_and_the_job_ends_done():
    seen, ended = [], []
    job = Runner().submit(lambda: iter(range(5)), lambda v, j: seen.append(v), None, ended.append)
    assert job.wait(10)
    assert seen == [0, 1, 2, 3, 4] and job.status == "done" and ended == [job]


def test_a_new_submission_cancels_the_running_job_between_steps():
    gate = threading.Event()
    first_seen, second_seen = [], []

    def slow():
        for i in range(100):
            gate.wait(5)
            yield i

    runner = Runner()
    first = runner.submit(slow, lambda v, j: first_seen.append(v))
    second = runner.submit(lambda: iter(["new"]), lambda v, j: second_seen.append(v))
    gate.set()
    assert second.wait(10) and first.wait(10)
    assert first.status == "stopped" and len(first_seen) <= 1
    assert second_seen == ["new"] and second.status == "done"


def test_stop_ends_the_job_and_closes_the_generator():
    closed = threading.Event()
    step = threading.Event()

    def views():
        try:
            for i in range(1000):
                step.wait(5)
                yield i
        finally:
            closed.set()

    runner = Runner()
    seen = []
    job = runner.submit(views, lambda v, j: (seen.append(v), runner.stop()))
    step.set()
    assert job.wait(10)
    assert job.status == "stopped" and seen == [0] and closed.is_set()


def test_errors_are_reported_with_their_traceback():
    errors = []

    def failing():
        yield 1
        raise RuntimeError("boom")

    job = Runner().submit(failing, lambda v, j: None, lambda e, tb, j: errors.append((e, tb)))
    assert job.wait(10)
    assert job.status == "failed" and str(errors[0][0]) == "boom" and "failing" in errors[0][1]


def test_the_first_views_do_not_wait_for_the_cancelled_job():
    release = threading.Event()
    order = []

    def busy():
        order.append("old step starts")
        release.wait(10)
        order.append("old step ends")
        yield "old"

    def new():
        yield "quick"
        yield "heavy"

    runner = Runner()
    first = runner.submit(busy, lambda v, j: None)
    while not order:
        threading.Event().wait(0.01)
    got = threading.Event()
    second = runner.submit(new, lambda v, j: (order.append(v), got.set()), wait_after=1)
    assert got.wait(10)  # the quick view arrived while the old step still ran
    assert order == ["old step starts", "quick"]
    release.set()
    assert second.wait(10) and first.wait(10)
    assert order == ["old step starts", "quick", "old step ends", "heavy"]


def test_objects_older_than_the_running_jobs_are_frozen_until_the_last_ends():
    import gc
    import weakref

    class Cycle:  # garbage only the cyclic collector can free
        def __init__(self):
            self.me = self

    baseline = gc.get_freeze_count()
    old = Cycle()
    counts, gate = [], threading.Event()

    def views():
        gate.wait(5)
        yield gc.get_freeze_count()

    runner = Runner()
    first = runner.submit(views, lambda v, j: counts.append(v))
    second = runner.submit(views, lambda v, j: counts.append(v), wait_after=1)
    gate.set()
    assert first.wait(10) and second.wait(10)
    assert counts and all(c > baseline for c in counts)  # frozen while a job ran
    assert gc.get_freeze_count() == baseline  # and given back after the last one
    ref = weakref.ref(old)
    del old
    gc.collect()
    assert ref() is None  # the old cycle is collectable again


def test_objects_frozen_by_someone_else_stay_frozen():
    import gc

    gc.freeze()
    try:
        before = gc.get_freeze_count()
        job = Runner().submit(lambda: iter([1]), lambda v, j: None)
        assert job.wait(10) and job.status == "done"
        assert gc.get_freeze_count() == before
    finally:
        gc.unfreeze()
