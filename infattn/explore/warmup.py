"""Background warm-up: compile what the next control change needs before the click.

After a panel has computed a configuration, one low-priority worker thread per
process (shared by all panels) computes the analytic kernels and the first Monte
Carlo chunk of the configurations one control change away (:func:`neighbours`,
the costliest first: the other dtype, the other scalings, ...). Their compiled
programs (the analytic kernel and the first Monte Carlo step of each model,
:mod:`infattn.explore.compute`) are then in memory, and those over half a second
on disk, when the user picks one. The worker never delays a
user job: it starts a step only while no job runs (:meth:`WarmUp.begin` /
:meth:`WarmUp.end` bracket every job) and shares no lock with them. Off under
``INFATTN_WARMUP=0`` and ``INFATTN_FAST=1``. No widgets here.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator

from infattn.explore import compute
from infattn.explore.model import (
    DECAY_FAMILIES,
    DTYPES,
    NONLINEARITIES,
    POS_EMB_TYPES,
    SCALINGS,
    Config,
    fast_mode,
    make_inputs,
)
from infattn.logits.mechanisms import MECHANISMS

__all__ = ["WarmUp", "enabled", "neighbours", "warm_steps", "warmer"]

_CHOICES = {
    "dtype": DTYPES,
    "scaling": SCALINGS,
    "mechanism": MECHANISMS,
    "nonlinearity": NONLINEARITIES,
    "pos_emb": POS_EMB_TYPES,
}
_DOUBLING = {"heads": (1, 1024), "width": (8, 512), "decay_length": (0.5, 8.0)}
_STEPS = {"depth": (1, 4), "seq_len": (2, 32), "n_inputs": (2, 16)}
_TOGGLES = ("layernorm", "residual", "val_pos_emb")


def _candidates(cfg: Config) -> Iterator[dict]:
    """Control changes, the costliest first (new primitives, new estimators)."""
    for name, choices in _CHOICES.items():
        yield from ({name: v} for v in choices if v != getattr(cfg, name))
    for name, (lo, hi) in _DOUBLING.items():
        v = getattr(cfg, name)
        yield from ({name: u} for u in (type(v)(v * 2), type(v)(v / 2)) if lo <= u <= hi)
    for name, (lo, hi) in _STEPS.items():
        v = getattr(cfg, name)
        yield from ({name: u} for u in (v + 1, v - 1) if lo <= u <= hi)
    yield from ({name: not getattr(cfg, name)} for name in _TOGGLES)
    yield from ({"decay": d} for d in DECAY_FAMILIES if d != cfg.decay)
    yield from ({"pos_std": p} for p in (cfg.pos_std + 0.25, cfg.pos_std - 0.25) if 0 <= p <= 2)
    yield from ({"inputs": k} for k in ("random", "digits rows") if k != cfg.inputs)


def neighbours(cfg: Config) -> list[Config]:
    """The valid configurations one control change away from ``cfg``, costliest first.

    Example:
      >>> [c.dtype for c in neighbours(Config())][:1], len(neighbours(Config())) > 20
      (['float64'], True)
    """
    out = []
    for change in _candidates(cfg):
        try:
            out.append(cfg.replace(**change))
        except ValueError:  # outside a control's range
            continue
    return out


def warm_steps(cfg: Config) -> Iterator[None]:
    """Compute what the Kernel panel computes first for ``cfg``, one step per ``next``.

    Example:
      >>> for _ in warm_steps(Config(width=8, draws=4, n_inputs=2, seq_len=3)):
      ...     pass
    """
    with compute.precision(cfg):
        x = make_inputs(cfg)
        compute.analytic_kernels(cfg, x)
    yield
    compute.kernel_chunk(cfg, x, 0, not compute.starts_unoptimized(cfg, x))
    yield


def enabled() -> bool:
    """Whether panels warm up (not under ``INFATTN_WARMUP=0`` nor ``INFATTN_FAST=1``).

    Example:
      >>> isinstance(enabled(), bool)
      True
    """
    return os.environ.get("INFATTN_WARMUP", "1") != "0" and not fast_mode()


class WarmUp:
    """A worker thread computing :func:`warm_steps` of scheduled configurations while idle.

    ``schedule(cfg)`` replaces the queue with ``cfg``'s :func:`neighbours` not yet
    warmed; ``begin()``/``end()`` bracket a user job (the worker starts no step
    while one runs); ``wait_idle`` waits until the queue is done. ``warmed`` lists
    the configurations warmed, ``failed`` those whose computation raised (the
    panel shows the error when the user picks one).

    Example:
      >>> warm = WarmUp(steps=lambda cfg: iter([None]))
      >>> warm.schedule(Config())
      >>> warm.wait_idle(10), len(warm.warmed) == len(neighbours(Config()))
      (True, True)
    """

    def __init__(self, steps: Callable[[Config], Iterator[None]] = warm_steps) -> None:
        self._steps = steps
        self._cond = threading.Condition()
        self._pending: list[Config] = []
        self._seen: set[Config] = set()
        self._busy = 0
        self._working = False
        self._thread: threading.Thread | None = None
        self.warmed: list[Config] = []
        self.failed: list[Config] = []

    def schedule(self, cfg: Config) -> None:
        """Warm ``cfg``'s neighbours next (``cfg`` itself counts as warm)."""
        with self._cond:
            self._seen.add(cfg)
            self._pending = [n for n in neighbours(cfg) if n not in self._seen]
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="infattn-explore-warmup", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def begin(self) -> None:
        """A user job starts: no warm-up step starts until it ends."""
        with self._cond:
            self._busy += 1

    def end(self) -> None:
        """A user job has ended."""
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running; ``False`` on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._pending and not self._working, timeout=timeout
            )

    def _next(self, current: tuple | None) -> tuple[Config, Iterator[None]]:
        """Wait until no user job runs; ``current`` or a new ``(config, steps)``."""
        with self._cond:
            self._cond.wait_for(lambda: self._busy == 0 and (current or self._pending))
            if current is None:
                cfg = self._pending.pop(0)
                self._seen.add(cfg)
                self._working = True
                current = (cfg, self._steps(cfg))
            return current

    def _run(self) -> None:
        _lower_priority()
        current = None
        while True:
            current = self._next(current)
            try:
                next(current[1])
                continue
            except StopIteration:
                into = self.warmed
            except Exception:  # the user job computing this configuration reports it
                into = self.failed
            with self._cond:
                into.append(current[0])
                self._working = False
                self._cond.notify_all()
            current = None


def _lower_priority() -> None:
    """Give the calling thread the lowest CPU priority (Linux threads; elsewhere a no-op)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


@functools.cache
def warmer() -> WarmUp:
    """The process's one :class:`WarmUp`, shared by all panels."""
    return WarmUp()
