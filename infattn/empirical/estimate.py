"""What `monte_carlo_kernel_fn` returns: means, standard errors, partial results."""

from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from infattn.empirical.draws import Config
from infattn.empirical.running import State
from infattn.empirical.tiles import Tile, assemble
from infattn.statistics import standard_error

Array = jax.Array
KINDS = ("nngp", "ntk")


class MonteCarloKernel(NamedTuple):
    """Kernel means in neural-tangents' ``MonteCarloKernel`` form (``get=None``)."""

    nngp: Array
    ntk: Array


@functools.cache
def _returned_tuple(get: tuple[str, ...]) -> type:
    if get == KINDS:
        return MonteCarloKernel
    return collections.namedtuple("MonteCarloKernel", get)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MonteCarloEstimate:
    """A Monte Carlo kernel estimate with the standard error of every entry.

    Returned by ``kernel_fn(x1, x2, get, return_se=True)``. ``nngp``/``ntk`` are
    the means over ``n_samples`` draws (``None`` when not requested), with the
    layout of :func:`monte_carlo_kernel_fn`'s kernels; ``nngp_se``/``ntk_se`` have
    the same shapes (the names of :class:`infattn.Kernel`'s standard errors):
    ``sqrt(s^2 / n)`` with ``s^2`` the unbiased per-entry sample variance over
    draws. Entries are means of ``n`` i.i.d. draws, so for ``n >~ 30``
    ``(mean - E) / se`` is close to standard normal entrywise.

    Example:
        >>> est = MonteCarloEstimate(jnp.ones((1, 1)), None, jnp.full((1, 1), 0.1), None, 10,
        ...                          ("nngp",))
        >>> float(est.zscores("nngp", jnp.zeros((1, 1)))[0, 0])
        10.0
    """

    nngp: Array | None
    ntk: Array | None
    nngp_se: Array | None
    ntk_se: Array | None
    n_samples: int = dataclasses.field(metadata={"static": True})
    get: tuple[str, ...] = dataclasses.field(default=KINDS, metadata={"static": True})

    def mean(self, kind: str) -> Array:
        """The mean kernel ``kind`` (``'nngp'`` or ``'ntk'``)."""
        return self._field(kind, "")

    def se(self, kind: str) -> Array:
        """The standard errors of kernel ``kind``, same shape as :meth:`mean`."""
        return self._field(kind, "_se")

    def zscores(self, kind: str, reference: Array) -> Array:
        """``(mean - reference) / se`` entrywise (``inf`` where ``se == 0`` and they differ)."""
        mean, se = self.mean(kind), self.se(kind)
        diff = mean - jnp.asarray(reference, mean.dtype)
        return jnp.where(diff == 0, 0.0, diff / jnp.where(se == 0, 0.0, se))

    def kernel(self) -> Any:
        """The means in neural-tangents' return form for this ``get``."""
        return _returned_tuple(self.get)(*(self.mean(g) for g in self.get))

    def _field(self, kind: str, suffix: str) -> Array:
        if kind not in self.get:
            raise ValueError(f"kind: expected one of {self.get} (requested by get), got {kind!r}")
        return getattr(self, kind + suffix)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a Monte Carlo kernel between chunks; the finished draws are kept.

    ``estimate``: a :class:`MonteCarloEstimate` of the ``n_samples`` draws finished
    before the interruption (``None`` with fewer than 2). A subclass of
    ``KeyboardInterrupt``, so code that does not look for it stops as usual.

    Example:
        >>> try:
        ...     raise Interrupted(None)
        ... except KeyboardInterrupt as e:
        ...     print(e.estimate)
        None
    """

    def __init__(self, estimate: MonteCarloEstimate | None):
        n = 0 if estimate is None else estimate.n_samples
        super().__init__(f"interrupted after {n} draws; the estimate so far is `.estimate`")
        self.estimate = estimate


def result(
    state: State,
    tile_list: list[Tile],
    get: tuple[str, ...],
    n: int,
    cfg: Config,
    xp: Any,
    *,
    single: bool = False,
    return_se: bool = True,
) -> Any:
    """The estimate from the running ``state`` of ``n`` draws.

    A :class:`MonteCarloEstimate` with ``return_se``, else the means as
    neural-tangents returns them (an array for a single ``get``, else a tuple).

    Example:
        >>> import numpy as np
        >>> from infattn.empirical.running import empty, update
        >>> from infattn.empirical.tiles import tiles
        >>> ts = tiles(np.ones((1, 1)), None, 0, Config())
        >>> s = update(empty(1, ("nngp",)), [{"nngp": jnp.array([1.0, 3.0])}], jnp.ones(2),
        ...            True, "")
        >>> float(result(s, ts, ("nngp",), 2, Config(), jnp).nngp_se)
        1.0
    """
    means = {kind: assemble([s[kind].mean for s in state], tile_list, cfg, xp) for kind in get}
    if not return_se:
        if single:
            return means[get[0]]
        return _returned_tuple(get)(*(means[g] for g in get))
    ses = {
        kind: assemble([standard_error(s[kind]) for s in state], tile_list, cfg, xp) for kind in get
    }
    return MonteCarloEstimate(
        nngp=means.get("nngp"),
        ntk=means.get("ntk"),
        nngp_se=ses.get("nngp"),
        ntk_se=ses.get("ntk"),
        n_samples=n,
        get=get,
    )
