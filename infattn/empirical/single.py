"""Kernels of one finite network at given parameters, and its Taylor expansions.

neural-tangents' ``empirical_kernel_fn``, ``empirical_ntk_fn``, ``empirical_nngp_fn``
(same signatures and output layout, :mod:`~infattn.empirical.layout`), built on the
per-draw machinery of :mod:`~infattn.empirical.draws`: the NTK by the route
``implementation`` names (:class:`~infattn.empirical.draws.NtkImplementation`), the
NNGP from one forward pass; ``empirical_ntk_vp_fn`` gives NTK-vector products
without forming the NTK. ``linearize`` and ``taylor_expand`` expand ``f(params,
...)`` around ``params`` by forward-mode derivatives.
"""

from __future__ import annotations

import collections
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from infattn.empirical.derivatives import ntk_vp
from infattn.empirical.draws import (
    Config,
    Network,
    NtkImplementation,
    choose_strategy,
    kernels_at,
    split_kwargs,
)
from infattn.validation import as_array, canonical_get

Array = jax.Array
Axes = int | Sequence[int]
ApplyFn = Callable[..., Any]


@functools.lru_cache(maxsize=8)
def _returned_tuple(fields: tuple[str, ...]) -> type:
    return collections.namedtuple("EmpiricalKernel", fields)


def _implementation(value: Any) -> NtkImplementation:
    try:
        return NtkImplementation(value)
    except ValueError:
        raise ValueError(
            f"implementation: expected an NtkImplementation or 0..3, got {value!r}"
        ) from None


def _kwargs_pair(kw: dict, has_x2: bool) -> tuple[dict, dict]:
    """neural-tangents' split: pairs go one per input; ``rng`` splits in two for an ``x2``."""
    rng = kw.get("rng")
    if has_x2 and rng is not None and not isinstance(rng, tuple):
        kw = dict(kw, rng=tuple(jax.random.split(rng)))
    return split_kwargs(kw, has_x2)


def _kernels(f, cfg, x1, x2, params, kw, get) -> dict[str, Array]:
    x1 = as_array(x1, "x1", 1, "an array of inputs")
    x2 = None if x2 is None else as_array(x2, "x2", 1, "an array of inputs")
    net = Network(lambda rng, shape: (shape, params), f)
    strategy = choose_strategy(net, cfg, x1, x2, kw, get)
    kw1, kw2 = _kwargs_pair(kw, x2 is not None)
    return kernels_at(net, cfg, strategy, params, x1, x2, kw1, kw2, get)


def empirical_kernel_fn(
    f: ApplyFn,
    trace_axes: Axes = (-1,),
    diagonal_axes: Axes = (),
    vmap_axes: Any = None,
    implementation: NtkImplementation | int = NtkImplementation.JACOBIAN_CONTRACTION,
) -> Callable[..., Any]:
    """``kernel_fn(x1, x2, get, params, **apply_fn_kwargs)``: NNGP and NTK of ``f`` at ``params``.

    ``f(params, x, **kwargs)`` returns an array ``(N, ...)`` (or a ``MaskedArray``).
    ``nngp = <f(x1), f(x2)>`` and ``ntk = sum_p <df(x1)/dp, df(x2)/dp>``, contracted
    over ``trace_axes`` (divided by their size for the NNGP), with ``diagonal_axes``
    kept once: outputs ``(N1, C)`` give ``(N1, N2)``. ``get``: ``None`` (both, a
    namedtuple), a name, or a tuple of names. ``x2=None`` means ``x1``.

    Example:
        >>> from infattn import stax
        >>> init_fn, apply_fn, _ = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(2))
        >>> _, params = init_fn(jax.random.PRNGKey(0), (3, 5))
        >>> k = empirical_kernel_fn(apply_fn)(jnp.ones((3, 5)), None, None, params)
        >>> k.nngp.shape, k.ntk.shape
        ((3, 3), (3, 3))
    """
    cfg = Config(trace_axes, diagonal_axes, vmap_axes, _implementation(implementation))

    def kernel_fn(x1: Any, x2: Any, get: Any, params: Any, **apply_fn_kwargs: Any) -> Any:
        single, names = canonical_get(("nngp", "ntk") if get is None else get, ("nngp", "ntk"))
        out = _kernels(f, cfg, x1, x2, params, apply_fn_kwargs, names)
        return out[names[0]] if single else _returned_tuple(names)(*(out[n] for n in names))

    return kernel_fn


def empirical_ntk_fn(
    f: ApplyFn,
    trace_axes: Axes = (-1,),
    diagonal_axes: Axes = (),
    vmap_axes: Any = None,
    implementation: NtkImplementation | int = NtkImplementation.JACOBIAN_CONTRACTION,
) -> Callable[..., Array]:
    """``ntk_fn(x1, x2, params, **apply_fn_kwargs)``: the NTK of ``f`` at ``params``.

    See :func:`empirical_kernel_fn` for the arguments and the layout.

    Example:
        >>> f = lambda p, x: x @ p
        >>> float(empirical_ntk_fn(f)(jnp.ones((1, 3)), None, jnp.ones((3, 2)))[0, 0])
        3.0
    """
    kernel_fn = empirical_kernel_fn(f, trace_axes, diagonal_axes, vmap_axes, implementation)
    return lambda x1, x2, params, **kw: kernel_fn(x1, x2, "ntk", params, **kw)


def empirical_nngp_fn(
    f: ApplyFn, trace_axes: Axes = (-1,), diagonal_axes: Axes = ()
) -> Callable[..., Array]:
    """``nngp_fn(x1, x2, params, **apply_fn_kwargs)``: ``<f(x1), f(x2)>`` at ``params``.

    See :func:`empirical_kernel_fn` for the arguments and the layout.

    Example:
        >>> f = lambda p, x: x @ p
        >>> float(empirical_nngp_fn(f)(jnp.ones((1, 3)), None, jnp.ones((3, 2)))[0, 0])
        9.0
    """
    kernel_fn = empirical_kernel_fn(f, trace_axes, diagonal_axes)
    return lambda x1, x2, params, **kw: kernel_fn(x1, x2, "nngp", params, **kw)


def empirical_ntk_vp_fn(
    f: ApplyFn, x1: Any, x2: Any, params: Any, **apply_fn_kwargs: Any
) -> Callable[[Any], Any]:
    """``ntk_vp_fn(cotangents)``: NTK-vector products of ``f`` at ``params``, no NTK formed.

    ``cotangents`` has the shape (and tree) of ``f(params, x2)``; the product
    ``sum_p df(x1)/dp <df(x2)/dp, cotangents>`` has that of ``f(params, x1)``. One
    ``vjp`` and one ``jvp``: the cost of a few forward passes, the memory of one
    backward pass. ``x2=None`` means ``x1``; ``apply_fn_kwargs`` are split between
    ``x1`` and ``x2`` as in :func:`empirical_kernel_fn` (pairs, ``rng``).

    Example:
        >>> f = lambda p, x: x @ p
        >>> x1, x2 = jnp.ones((2, 3)), jnp.ones((4, 3))
        >>> ntk_vp_fn = empirical_ntk_vp_fn(f, x1, x2, jnp.ones((3, 5)))
        >>> ntk_vp_fn(jnp.ones((4, 5))).tolist()[0]  # (x1 x2^T) ct = 3 * 4 per entry
        [12.0, 12.0, 12.0, 12.0, 12.0]
    """
    kw1, kw2 = _kwargs_pair(apply_fn_kwargs, x2 is not None)
    x2, kw2 = (x1, kw1) if x2 is None else (x2, kw2)
    return ntk_vp(lambda p: f(p, x1, **kw1), lambda p: f(p, x2, **kw2), params)


def _tree_sub(a: Any, b: Any) -> Any:
    return jax.tree_util.tree_map(lambda x, y: x - y, a, b)


def linearize(f: ApplyFn, params: Any) -> ApplyFn:
    """``f_lin(p, *args, **kwargs) = f(params) + J(params) (p - params)``: first order in ``p``.

    Example:
        >>> f_lin = linearize(lambda p, x: jnp.sin(p * x), 0.0)
        >>> float(f_lin(0.5, 2.0))  # sin(0) + cos(0) * 2 * 0.5
        1.0
    """

    def f_lin(p: Any, *args: Any, **kwargs: Any) -> Any:
        out, tangent = jax.jvp(lambda q: f(q, *args, **kwargs), (params,), (_tree_sub(p, params),))
        return jax.tree_util.tree_map(jnp.add, out, tangent)

    return f_lin


def taylor_expand(f: ApplyFn, params: Any, degree: int) -> ApplyFn:
    """``f_tayl(p, *args, **kwargs)``: the Taylor polynomial of ``f`` in ``p`` of order ``degree``.

    ``sum_k D^k f(params)[p - params]^k / k!`` for ``k = 0 .. degree``, by nested
    forward-mode derivatives along ``p - params``.

    Example:
        >>> f3 = taylor_expand(lambda p, x: jnp.exp(p * x), 0.0, 3)
        >>> round(float(f3(1.0, 1.0)), 6)  # 1 + 1 + 1/2 + 1/6
        2.666667
    """
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"degree: expected a non-negative integer, got {degree!r}")

    def f_tayl(p: Any, *args: Any, **kwargs: Any) -> Any:
        direction = _tree_sub(p, params)
        g = lambda q: f(q, *args, **kwargs)  # noqa: E731
        total = g(params)
        for k in range(1, degree + 1):
            g = _derivative_along(g, direction)
            total = jax.tree_util.tree_map(
                lambda t, d, k=k: t + d / math.factorial(k), total, g(params)
            )
        return total

    return f_tayl


def _derivative_along(g: Callable[[Any], Any], direction: Any) -> Callable[[Any], Any]:
    return lambda q: jax.jvp(g, (q,), (direction,))[1]
