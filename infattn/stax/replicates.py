"""Replicate kernels: how a Monte Carlo layer's uncertainty travels through a model.

A Monte Carlo (MC) layer splits its samples into ``R`` independent sub-streams
and attaches to its output kernel ``k.replicates``: a :class:`Kernel` whose
``nngp``, ``ntk``, ``cov1`` and ``cov2`` have a leading axis ``R``, replicate
``r`` being the estimate from sub-stream ``r`` alone (masks, shapes and flags are
the parent's). Every later layer maps its kernel rule over the replicates too
(:func:`with_replicates`), so at the model's output the ``R`` replicates are ``R``
independent estimates of the same kernel and their spread gives the standard
error of the full estimate (:func:`with_standard_errors`, batch means; see
``docs/standard-errors.md``).

A layer's ``kernel`` rule sees a Kernel *without* replicates unless the layer was
built with ``make_layer(..., handles_replicates=True)``: MC layers (which make
them) and combinators (whose children already handle them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from infattn.kernel import Kernel
from infattn.statistics import batch_means_se

Rule = Callable[[Any], Any]


def strip(k: Any) -> Any:
    """``k`` (a Kernel or a list of them) without replicates and standard errors.

    Example:
        >>> import jax.numpy as jnp
        >>> k = Kernel(nngp=jnp.ones((1, 1)), ntk=None, cov1=jnp.ones((1,)), cov2=None,
        ...            nngp_se=jnp.zeros((1, 1)))
        >>> strip(k).nngp_se is None
        True
    """
    if isinstance(k, list):
        return [strip(ki) for ki in k]
    if k.replicates is None and k.nngp_se is None and k.ntk_se is None:
        return k
    return k.replace(replicates=None, nngp_se=None, ntk_se=None)


def has_replicates(k: Any) -> bool:
    """Whether ``k`` (a Kernel or a list of them) carries replicates.

    Example:
        >>> import jax.numpy as jnp
        >>> has_replicates(Kernel(nngp=jnp.ones((1, 1)), ntk=None, cov1=jnp.ones((1,)), cov2=None))
        False
    """
    if isinstance(k, list):
        return any(has_replicates(ki) for ki in k)
    return k.replicates is not None


REPLICATED = ("nngp", "ntk", "cov1", "cov2")
"""The Kernel arrays that replicates carry (masks, shapes and flags are the parent's)."""


def _stacked_axes(k: Kernel) -> Kernel:
    """``vmap`` axes of a stacked Kernel: arrays stacked on axis 0, masks shared."""
    return k.replace(nngp=0, ntk=0, cov1=0, cov2=0, mask1=None, mask2=None)


def _stack(k: Any) -> tuple[Any, Any]:
    """``k`` and its ``R`` replicates stacked (``(1 + R, ...)``, ``k`` first) and their
    ``vmap`` axes; a Kernel without replicates broadcasts (axes ``None``)."""
    if isinstance(k, list):
        pairs = [_stack(ki) for ki in k]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if k.replicates is None:
        return strip(k), None
    reps = k.replicates
    stacked = strip(k).replace(
        **{
            f: None
            if (a := getattr(k, f)) is None
            else jnp.concatenate([a[None], getattr(reps, f)])
            for f in REPLICATED
        }
    )
    return stacked, _stacked_axes(stacked)


def _unstack(out: Any) -> Any:
    """The inverse of :func:`_stack` on a rule's output: entry 0 with the rest as its
    replicates (sharing its masks)."""
    if isinstance(out, list):
        return [_unstack(o) for o in out]
    main = jax.tree_util.tree_map(lambda a: a[0], out)
    rest = {f: None if (a := getattr(out, f)) is None else a[1:] for f in REPLICATED}
    return main.replace(replicates=main.replace(**rest))


def with_replicates(rule: Rule) -> Rule:
    """A kernel rule applied to a Kernel and to each of its replicates, in one ``vmap``.

    ``rule`` takes and returns a Kernel (or a list of them) and never sees
    replicates. When some input carries replicates, ``rule`` is ``vmap``-ed over
    the kernel stacked with its replicates (an input without replicates
    broadcasts: its value is the same in every replicate): the rule is traced
    and compiled once, not once for the kernel and again for the replicates.

    Example:
        >>> import jax.numpy as jnp
        >>> double = with_replicates(lambda k: k.replace(nngp=2 * k.nngp))
        >>> k = Kernel(nngp=jnp.ones((1, 1)), ntk=None, cov1=jnp.ones((1,)), cov2=None)
        >>> reps = k.replace(nngp=jnp.arange(3.0).reshape(3, 1, 1), cov1=jnp.ones((3, 1)))
        >>> out = double(k.replace(replicates=reps))
        >>> out.nngp.tolist(), out.replicates.nngp.ravel().tolist()
        ([[2.0]], [0.0, 2.0, 4.0])
    """

    @functools.wraps(rule)
    def wrapped(k: Any) -> Any:
        if not has_replicates(k):
            return rule(strip(k))
        stacked, axes = _stack(k)
        return _unstack(jax.vmap(rule, in_axes=(axes,))(stacked))

    return wrapped


def with_standard_errors(k: Any, keep_replicates: bool = False) -> Any:
    """``k`` with ``nngp_se``/``ntk_se`` from the spread of its replicates.

    ``nngp_se = std(replicates.nngp, axis=0, ddof=1) / sqrt(R)`` (batch means),
    likewise ``ntk_se``; a Kernel without replicates is returned unchanged. The
    replicates are dropped unless ``keep_replicates``.

    Example:
        >>> import jax.numpy as jnp
        >>> k = Kernel(nngp=jnp.ones((1, 1)), ntk=None, cov1=jnp.ones((1,)), cov2=None)
        >>> reps = k.replace(nngp=jnp.array([1.0, 3.0]).reshape(2, 1, 1), cov1=jnp.ones((2, 1)))
        >>> out = with_standard_errors(k.replace(replicates=reps))
        >>> float(out.nngp_se[0, 0]), out.replicates is None
        (1.0, True)
    """
    if isinstance(k, list):
        return [with_standard_errors(ki, keep_replicates) for ki in k]
    if k.replicates is None:
        return k
    reps = k.replicates
    return k.replace(
        nngp_se=batch_means_se(reps.nngp),
        ntk_se=None if reps.ntk is None else batch_means_se(reps.ntk),
        replicates=reps if keep_replicates else None,
    )
