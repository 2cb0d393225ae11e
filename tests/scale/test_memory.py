"""Memory budgets: size parsing and the largest tile a budget holds."""

from __future__ import annotations

import math

import pytest

from infattn.scale.memory import (
    CPU_DEFAULT_BUDGET,
    default_budget,
    format_size,
    largest_fitting,
    parse_size,
)


def test_parse_size_units():
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size("1.5 gib") == 3 * 2**29
    assert parse_size("2GB") == 2 * 10**9
    assert parse_size("100") == parse_size(100) == 100
    for bad in ("", "MiB", "-1GiB", "3 lightyears", "0", True):
        with pytest.raises(ValueError, match="memory size"):
            parse_size(bad)


def test_format_size_round_trips_within_rounding():
    for n in (5, 1536, 512 * 2**20, 3 * 2**40):
        value, unit = format_size(n).split()
        assert math.isclose(parse_size(value + unit), n, rel_tol=5e-3)


@pytest.mark.parametrize(
    ("a", "b", "c"), [(100, 0, 8), (10_000, 64, 8), (0, 4096, 0), (5_000_000, 0, 8)]
)
def test_largest_fitting_finds_the_quadratic_limit(a, b, c):
    def measure(t):
        return a + b * t + c * t * t

    budget = 10_000_000
    best = largest_fitting(measure, budget, limit=100_000)
    assert measure(best) <= budget
    exact = max(t for t in range(1, 100_001) if measure(t) <= budget)
    assert exact - 1 <= best <= exact  # three measurements fix a quadratic


def test_largest_fitting_respects_the_limit_and_faster_growth():
    assert largest_fitting(lambda t: t, budget=10**9, limit=50) == 50
    assert largest_fitting(lambda t: t, budget=10**9, limit=1) == 1
    cubic = largest_fitting(lambda t: t**3, budget=10**6, limit=10**6)
    assert 16 <= cubic <= 100  # the quadratic fit overshoots; measuring shrinks it back
    jump = largest_fitting(lambda t: t * t if t < 500 else 10 * t * t, budget=10**6, limit=10**4)
    assert jump <= 316  # a size that measures over budget is never returned


def test_largest_fitting_names_what_one_tile_needs():
    with pytest.raises(MemoryError, match=r"1\.00 KiB cannot hold one tile.*needs 4\.00 KiB"):
        largest_fitting(lambda t: 4096 * t * t, budget=1024, limit=10)


class FakeDevice:
    def __init__(self, stats):
        self.stats = stats

    def memory_stats(self):
        return self.stats


def test_default_budget_follows_the_free_memory_devices_report():
    gpus = [
        FakeDevice({"bytes_limit": 80 * 2**30, "bytes_in_use": 16 * 2**30}),
        FakeDevice({"bytes_limit": 80 * 2**30, "bytes_in_use": 40 * 2**30}),
    ]
    assert default_budget(gpus) == int(0.75 * 40 * 2**30)  # the fullest device decides
    assert default_budget([FakeDevice(None)]) == CPU_DEFAULT_BUDGET


def test_largest_fitting_measures_once_when_everything_fits():
    measured = []
    assert largest_fitting(lambda t: measured.append(t) or t, budget=100, limit=50) == 50
    assert measured == [50]
