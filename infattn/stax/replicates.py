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


def _stacked_axes(k: Kernel) -> Kernel:
    """``vmap`` axes of a replicate Kernel: arrays stacked on axis 0, masks shared."""
    return k.replace(nngp=0, ntk=0, cov1=0, cov2=0, mask1=None, mask2=None)


def _replicate_inputs(k: Any) -> tuple[Any, Any]:
    """Replicate kernels of ``k`` and their ``vmap`` axes; a Kernel without them broadcasts."""
    if isinstance(k, list):
        pairs = [_replicate_inputs(ki) for ki in k]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if k.replicates is None:
        return strip(k), None
    reps = k.replicates.replace(mask1=k.mask1, mask2=k.mask2, replicates=None)
    return reps, _stacked_axes(reps)


def _attach(out: Any, reps: Any) -> Any:
    """``out`` with ``reps`` as its replicates (sharing ``out``'s masks)."""
    if isinstance(out, list):
        return [_attach(o, r) for o, r in zip(out, reps, strict=True)]
    return out.replace(replicates=reps.replace(mask1=out.mask1, mask2=out.mask2))


def with_replicates(rule: Rule) -> Rule:
    """A kernel rule applied to a Kernel and, mapped, to each of its replicates.

    ``rule`` takes and returns a Kernel (or a list of them) and never sees
    replicates. When some input carries replicates, ``rule`` is ``vmap``-ed over
    them (an input without replicates broadcasts: its value is the same in every
    replicate) and the results become the output's replicates.

    Example:
        >>> import jax.numpy as jnp
        >>> double = with_replicates(lambda k: k.replace(nngp=2 * k.nngp))
        >>> k = Kernel(nngp=jnp.ones((1, 1)), ntk=None, cov1=jnp.ones((1,)), cov2=None)
        >>> reps = k.replace(nngp=jnp.arange(3.0).reshape(3, 1, 1), cov1=jnp.ones((3, 1)))
        >>> double(k.replace(replicates=reps)).replicates.nngp.ravel().tolist()
        [0.0, 2.0, 4.0]
    """

    @functools.wraps(rule)
    def wrapped(k: Any) -> Any:
        out = rule(strip(k))
        if not has_replicates(k):
            return out
        reps, axes = _replicate_inputs(k)
        return _attach(out, jax.vmap(rule, in_axes=(axes,))(reps))

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
