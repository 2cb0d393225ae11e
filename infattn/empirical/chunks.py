"""Draws in chunks: one compiled step per chunk, sized to a memory budget, sharded over devices.

A chunk of ``size`` draws is one call of a compiled function (``jax.lax.map`` over
the draws, ``draws_in_parallel`` of them ``vmap``-ed together), compiled once per
model, configuration and chunk shape and reused across calls. Draw ``i`` uses
``jax.random.fold_in(key, i)``, so results do not depend on the chunking.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infattn.empirical.draws import Config, Network, Strategy, one_draw, output, param_shapes
from infattn.empirical.draws import split_kwargs as _split_kwargs

Array = jax.Array

DEFAULT_MEMORY_BUDGET = 512 * 2**20
"""Bytes one chunk may hold (live Jacobians + per-draw kernels) when ``chunk_size=None``."""

PARALLEL_PARAMETER_BYTES = 32 * 2**20
"""Parameter bytes of the draws ``vmap``-ed together by default (``draws_in_parallel=None``
without Jacobians): 4 draws of the 1.85M-parameter benchmark transformer, 1 draw of a
6.5M-parameter attention layer; both measured fastest on a 2-core CPU."""


def draws_in_parallel(cfg: Config, params: Any, jacobians: bool) -> int:
    """Draws ``vmap``-ed together: the user's choice, else 1 with Jacobians, else as
    many as keep :data:`PARALLEL_PARAMETER_BYTES` of ``params`` live (1 to 4).

    Example:
        >>> draws_in_parallel(Config(), {"w": jnp.ones((10, 10))}, jacobians=False)
        4
    """
    if cfg.draws_in_parallel is not None:
        return cfg.draws_in_parallel
    if jacobians:
        return 1
    size = sum(p.size * p.dtype.itemsize for p in jax.tree_util.tree_leaves(params))
    return int(min(4, max(1, PARALLEL_PARAMETER_BYTES // max(size, 1))))


def split_static(kwargs: dict) -> tuple[dict, tuple]:
    """``apply_fn`` keywords split into arrays (traced) and hashable values (static).

    Example:
        >>> split_static({"mask_constant": 0.0})
        ({}, (('mask_constant', 0.0),))
    """
    dyn, static = {}, []
    for k, v in kwargs.items():
        if isinstance(v, jax.Array | np.ndarray) or (
            isinstance(v, tuple) and any(isinstance(u, jax.Array | np.ndarray) for u in v)
        ):
            dyn[k] = v
        else:
            try:
                hash(v)
            except TypeError as e:
                raise ValueError(
                    f"{k}: expected an array or a hashable apply_fn keyword, got {type(v)}"
                ) from e
            static.append((k, v))
    return dyn, tuple(sorted(static, key=lambda kv: kv[0]))


def draws_per_chunk(
    net: Network,
    cfg: Config,
    strategy: Strategy,
    x1: Array,
    x2: Array | None,
    kwargs: dict,
    get: tuple[str, ...],
    budget: int = DEFAULT_MEMORY_BUDGET,
) -> int:
    """Draws per chunk that keep one chunk's memory within ``budget`` bytes.

    Within a chunk ``draws_in_parallel`` draws are live at once, each holding its
    Jacobians (``outputs x parameters``; none with taps) and activations (a few
    times the parameters); every draw of the chunk keeps its kernels (exact sizes
    from :func:`jax.eval_shape`). Between 1 and 256.

    Example:
        >>> from infattn import stax
        >>> net = Network(*stax.Dense(2)[:2])
        >>> draws_per_chunk(net, Config(), Strategy.FORWARD, jnp.ones((3, 4)), None, {},
        ...                 ("nngp",))
        256
    """
    params = param_shapes(net, x1)
    n_params = sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(params))
    kw1, _ = _split_kwargs(kwargs, x2 is not None)
    itemsize = jnp.dtype(jax.tree_util.tree_leaves(x1)[0].dtype).itemsize
    dyn, static = split_static(kwargs)
    kw = dict(dyn, **dict(static))
    try:
        out = jax.eval_shape(lambda p: output(net, p, x1, kw1), params)
        kern = jax.eval_shape(
            lambda k: one_draw(net, cfg, strategy, k, x1, x2, kw, get), jax.random.PRNGKey(0)
        )
    except Exception:  # let the real call raise its own error
        return 1
    n_out = math.prod(out.shape) * (1 if x2 is None else 2)
    jacobians = strategy is Strategy.JACOBIANS
    live = (n_out * (n_params if jacobians else 1) + 4 * n_params) * itemsize
    per_draw = sum(math.prod(v.shape) for v in kern.values()) * itemsize
    free = budget - draws_in_parallel(cfg, params, jacobians) * live
    return int(min(256, max(1, free // max(per_draw, 1))))


def _chunk(
    net: Network,
    cfg: Config,
    keys: Array,
    x1: Array,
    x2: Array | None,
    dyn_kw: dict,
    get: tuple[str, ...],
    static_kw: tuple,
    strategy: Strategy,
) -> dict[str, Array]:
    """``{kind: (size, *kernel)}``: the kernels of the draws ``keys`` ``(size, 2)``."""
    one = functools.partial(
        one_draw, net, cfg, strategy, x1=x1, x2=x2, kw=dict(dyn_kw, **dict(static_kw)), get=get
    )
    parallel = draws_in_parallel(cfg, param_shapes(net, x1), strategy is Strategy.JACOBIANS)
    if parallel >= keys.shape[0]:
        return jax.vmap(one)(keys)
    return jax.lax.map(one, keys, batch_size=parallel)


_COMPILED: collections.OrderedDict = collections.OrderedDict()


def _hashable(x: Any) -> Any:
    if isinstance(x, Config):
        return tuple(_hashable(getattr(x, f.name)) for f in dataclasses.fields(x))
    if isinstance(x, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in x.items()))
    if isinstance(x, list | tuple):
        return tuple(_hashable(v) for v in x)
    return x


def compiled_chunk(
    net: Network, cfg: Config, compiler_options: dict[str, Any] | None = None
) -> Callable[..., dict[str, Array]]:
    """The compiled chunk step of a model and configuration (the last 32 are kept).

    Returns ``step(keys, x1, x2, kwargs, get, strategy) -> {kind: (size, *kernel)}``.
    ``compiler_options`` are XLA options for this step only (``jax.jit``'s).

    Example:
        >>> from infattn import stax
        >>> step = compiled_chunk(Network(*stax.Dense(2)[:2]), Config())
        >>> keys = jax.random.split(jax.random.PRNGKey(0), 3)
        >>> step(keys, jnp.ones((2, 4)), None, {}, ("nngp",), Strategy.FORWARD)["nngp"].shape
        (3, 2, 2)
    """
    try:
        cache_key = (net, _hashable(cfg), _hashable(compiler_options or {}))
        hash(cache_key)
    except TypeError:
        cache_key = None
    if cache_key is None or cache_key not in _COMPILED:
        jitted = jax.jit(
            functools.partial(_chunk, net, cfg),
            static_argnames=("get", "static_kw", "strategy"),
            compiler_options=compiler_options,
        )
        if cache_key is None:
            return _with_static_split(jitted)
        _COMPILED[cache_key] = _with_static_split(jitted)
        if len(_COMPILED) > 32:
            _COMPILED.popitem(last=False)
    _COMPILED.move_to_end(cache_key)
    return _COMPILED[cache_key]


def _with_static_split(jitted: Callable) -> Callable[..., dict[str, Array]]:
    def step(keys, x1, x2, kwargs, get, strategy):
        dyn, static = split_static(kwargs)
        return jitted(keys, x1, x2, dyn, get=get, static_kw=static, strategy=strategy)

    return step


def schedule(n_max: int, limit: int, n_devices: int) -> tuple[int, int]:
    """``(size, n_chunks)``: ``n_max`` draws in chunks of at most about ``limit``.

    Chunks are balanced (the last one is not mostly padding) and a multiple of
    ``n_devices`` draws, so that they shard evenly.

    Example:
        >>> schedule(100, 64, 1)
        (50, 2)
    """
    n_chunks = math.ceil(n_max / min(limit, n_max))
    size = math.ceil(n_max / n_chunks)
    size = math.ceil(size / n_devices) * n_devices
    return size, math.ceil(n_max / size)


@functools.partial(jax.jit, static_argnums=2)
def _fold_range(key: Array, start: Array, size: int) -> Array:
    """``fold_in(key, i)`` for ``i`` in ``start .. start + size - 1``, stacked."""
    index = start + jnp.arange(size, dtype=jnp.uint32)
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(index)


def device_list(device_count: int) -> list:
    """The devices draws are sharded over: ``-1`` all, ``0`` or ``1`` one, else the first ``n``.

    Example:
        >>> len(device_list(0))
        1
    """
    devices = jax.devices()
    if device_count in (0, 1):
        return devices[:1]
    if device_count == -1:
        return devices
    if device_count < 0 or device_count > len(devices):
        raise ValueError(
            f"device_count: expected -1, 0 or an integer in 1..{len(devices)}, got {device_count}"
        )
    return devices[:device_count]


def draw_keys(key: Array, start: int, size: int, devices: list) -> Array:
    """Keys ``(size, ...)`` of draws ``start .. start + size - 1``, sharded over ``devices``.

    One compiled program per chunk size, the same with 64-bit types on or off (the
    keys are 32-bit either way), so a first ``float64`` run compiles nothing here.

    Example:
        >>> draw_keys(jax.random.PRNGKey(0), 4, 2, device_list(0)).shape
        (2, 2)
    """
    with jax.enable_x64(False):
        keys = _fold_range(key, np.uint32(start), size)
    if len(devices) > 1:
        mesh = jax.sharding.Mesh(np.array(devices), ("draws",))
        keys = jax.device_put(
            keys, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("draws"))
        )
    return keys
