"""Derivatives of a finite network's outputs with respect to its parameters.

Three ways to the NTK of one draw, ``sum_params <df(x1)/dp, df(x2)/dp>``:

* :func:`jacobian`: Jacobian leaves ``(*out, *param_shape)`` (reverse mode, or
  forward mode with fewer parameters than outputs), per example when
  ``vmap_axes`` certifies that examples are independent; contracted afterwards.
* :func:`ntk_vector_products`: ``Theta e_k = J1 (J2^T e_k)`` by one ``vjp`` and one
  ``jvp`` per output entry ``k`` (:func:`ntk_vp`); never forms a Jacobian.
* :func:`tapped_ntk`: parameter taps (:mod:`infattn.stax.taps`): one forward and
  one backward pass per output entry of an example give the traced NTK from Gram
  matrices of each parameter's inputs and output cotangents.

``f(params, x, kw)`` is the network's output ``(N, ..., C)`` for inputs ``x``
and ``apply_fn`` keywords ``kw``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from infattn.stax import taps

Array = jax.Array
OutputFn = Callable[[Any, Array, dict], Array]


def value_and_jacobian(f: Callable[[Any], Array], params: Any) -> tuple[Array, Any]:
    """``f(params)`` and its Jacobian leaves ``(*out, *param_shape)``.

    Reverse mode (one ``vjp``, ``vmap``-ed over output cotangents) unless there are
    fewer parameters than outputs.

    Example:
        >>> out, jac = value_and_jacobian(lambda p: 3.0 * p["w"], {"w": jnp.ones(2)})
        >>> jac["w"].tolist()
        [[3.0, 0.0], [0.0, 3.0]]
    """
    out, vjp = jax.vjp(f, params)
    n_out = out.size
    n_params = sum(p.size for p in jax.tree_util.tree_leaves(params))
    if n_params < n_out:
        return out, jax.jacfwd(f)(params)
    basis = jnp.eye(n_out, dtype=out.dtype).reshape((n_out, *out.shape))
    (jac,) = jax.vmap(vjp)(basis)
    jac = jax.tree_util.tree_map(lambda j: j.reshape(out.shape + j.shape[1:]), jac)
    return out, jac


def vmap_triple(vmap_axes: Any) -> tuple[Any, Any, dict] | None:
    """``(in_axes, out_axes, kwargs_axes)`` from neural-tangents' ``vmap_axes`` argument.

    Example:
        >>> vmap_triple(0)
        (0, 0, {})
    """
    if vmap_axes is None:
        return None
    if isinstance(vmap_axes, tuple) and len(vmap_axes) == 3:
        in_axes, out_axes, kw_axes = vmap_axes
        return in_axes, out_axes, dict(kw_axes or {})
    return vmap_axes, vmap_axes, {}


def _expand_dims(x: Any, axes: Any) -> Any:
    """``x`` (an array or a tuple of them) with a unit axis at ``axes`` (one, or one per array)."""
    if isinstance(axes, int):
        return jax.tree_util.tree_map(lambda a: jnp.expand_dims(a, axes), x)
    return jax.tree_util.tree_map(jnp.expand_dims, x, axes)


def jacobian(f: OutputFn, params: Any, x: Array, kw: dict, vmap_axes: Any) -> tuple[Array, Any]:
    """Outputs ``(*out)`` and Jacobian leaves ``(*out, *param_shape)``.

    With ``vmap_axes`` (see :func:`vmap_triple`) the Jacobian of each example is
    taken alone and the cross-example blocks, zero, are never formed.

    Example:
        >>> f = lambda p, x, kw: x * p["w"]
        >>> out, jac = jacobian(f, {"w": jnp.ones(3)}, jnp.ones((2, 3)), {}, 0)
        >>> jac["w"].shape
        (2, 3, 3)
    """
    triple = vmap_triple(vmap_axes)
    if triple is None:
        return value_and_jacobian(lambda p: f(p, x, kw), params)
    in_axes, out_axes, kw_axes = triple
    keys = sorted(kw)
    kw_in = [kw_axes.get(k) for k in keys]

    def single(xi: Array, *vals: Any) -> tuple[Array, Any]:
        kwi = {
            k: (jnp.expand_dims(v, a) if a is not None else v)
            for k, v, a in zip(keys, vals, kw_in, strict=True)
        }
        xi = _expand_dims(xi, in_axes)
        return value_and_jacobian(lambda p: jnp.squeeze(f(p, xi, kwi), out_axes), params)

    return jax.vmap(single, in_axes=(in_axes, *kw_in), out_axes=out_axes)(x, *(kw[k] for k in keys))


def ntk_vp(f1: Callable[[Any], Any], f2: Callable[[Any], Any], params: Any) -> Callable[[Any], Any]:
    """``ct -> J1 (J2^T ct)``: the NTK of ``f1``, ``f2`` at ``params`` times a cotangent.

    ``ct`` has the shape (and tree) of ``f2(params)``, the product that of
    ``f1(params)``; one ``vjp`` of ``f2`` and one ``jvp`` of ``f1``, no Jacobian.

    Example:
        >>> f = lambda p: 2.0 * p
        >>> ntk_vp(f, f, jnp.ones(2))(jnp.array([1.0, 3.0])).tolist()  # 4 I @ ct
        [4.0, 12.0]
    """
    _, vjp2 = jax.vjp(f2, params)

    def product(ct: Any) -> Any:
        (tangent,) = vjp2(ct)
        return jax.jvp(f1, (params,), (tangent,))[1]

    return product


def ntk_vector_products(
    f: OutputFn, params: Any, x1: Array, x2: Array | None, kw1: dict, kw2: dict
) -> Array:
    """Full NTK ``(*out1, *out2)`` as ``J1 (J2^T e_k)`` for every output entry ``k``.

    Example:
        >>> f = lambda p, x, kw: x @ p
        >>> ntk_vector_products(f, jnp.ones((2, 1)), jnp.ones((3, 2)), None, {}, {}).shape
        (3, 1, 3, 1)
    """
    f1 = lambda p: f(p, x1, kw1)  # noqa: E731
    f2 = f1 if x2 is None else lambda p: f(p, x2, kw2)
    out2 = jax.eval_shape(f2, params)
    n2 = math.prod(out2.shape)
    basis = jnp.eye(n2, dtype=out2.dtype).reshape((n2, *out2.shape))
    cols = jax.vmap(ntk_vp(f1, f2, params))(basis)  # (n2, *out1)
    nd1 = cols.ndim - 1
    cols = cols.reshape(out2.shape + cols.shape[1:])
    return jnp.moveaxis(cols, tuple(range(out2.ndim)), tuple(range(nd1, nd1 + out2.ndim)))


def tapped_ntk(
    f: OutputFn, params: Any, x1: Array, x2: Array | None, kw: dict
) -> tuple[Array, Array, Array]:
    """Outputs for ``x1`` and ``x2`` and the ``(N1, N2)`` NTK traced over outputs.

    ``f`` must be an ``infattn.stax`` model's output (its layers read the taps).

    Example:
        >>> from infattn import stax
        >>> init_fn, apply_fn, _ = stax.Dense(2)
        >>> _, params = init_fn(jax.random.PRNGKey(0), (3, 4))
        >>> f = lambda p, x, kw: apply_fn(p, x, **kw)
        >>> out1, out2, ntk = tapped_ntk(f, params, jnp.ones((3, 4)), None, {})
        >>> ntk.shape
        (3, 3)
    """
    n1 = x1.shape[0]
    x = x1 if x2 is None else jnp.concatenate([x1, x2])
    split = None if x2 is None else n1
    shape = (n1, n1 if x2 is None else x2.shape[0])
    accs = jax.tree_util.tree_map(lambda p: jnp.zeros(shape, p.dtype), params)

    def tapped_output(accs: Any) -> Array:
        tapped = jax.tree_util.tree_map(lambda p, a: taps.Tap(p, a, split), params, accs)
        return f(tapped, x, kw)

    out, pullback = jax.vjp(tapped_output, accs)
    n_out = math.prod(out.shape[1:])
    seeds = jnp.broadcast_to(
        jnp.eye(n_out, dtype=out.dtype)[:, None], (n_out, out.shape[0], n_out)
    ).reshape(n_out, *out.shape)
    (grams,) = jax.vmap(pullback)(seeds)  # per leaf (n_out, N1, N2)
    ntk = sum(jnp.sum(g, 0) for g in jax.tree_util.tree_leaves(grams)) / n_out
    return out[:n1], (out if x2 is None else out[n1:]), ntk
