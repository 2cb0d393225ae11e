"""One draw: a random initialisation of a finite network and its empirical kernels.

The NTK strategy (:class:`Strategy`) is chosen once per call by
:func:`choose_strategy` from the ``implementation`` argument, the model and the
inputs; :func:`one_draw` then follows it.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from infattn.empirical import derivatives
from infattn.empirical.layout import canonical_axes, contract, trace_and_diagonal
from infattn.stax.masking import check_layout, unmask

Array = jax.Array
Axes = int | Sequence[int]


class NtkImplementation(enum.IntEnum):
    """How the per-draw NTK is computed (neural-tangents' names and values).

    * ``AUTO`` (0): ``STRUCTURED_DERIVATIVES`` where it applies, else
      ``JACOBIAN_CONTRACTION``.
    * ``JACOBIAN_CONTRACTION`` (1): Jacobians by reverse mode (``vmap`` of a
      ``vjp`` over output cotangents; forward mode when there are fewer
      parameters than outputs), contracted over parameters. The forward pass is
      shared with the NNGP.
    * ``NTK_VECTOR_PRODUCTS`` (2): ``Theta e_k = J1 (J2^T e_k)`` by a ``vjp`` then a
      ``jvp`` for every output entry ``k`` of ``f(x2)``; never contracts over
      parameters. Ignores ``vmap_axes``.
    * ``STRUCTURED_DERIVATIVES`` (3): parameter taps (:mod:`infattn.stax.taps`):
      one forward and one backward pass over ``x1`` and ``x2`` together per
      output entry of an example, each parameter's contribution from Gram
      matrices of its inputs and output cotangents; no Jacobian is formed.
      Applies to models built from ``infattn.stax`` whose kernel traces every
      non-batch output axis (e.g. outputs ``(N, C)`` with the default
      ``trace_axes``), with ``x1``, ``x2`` of equal shapes apart from ``N`` and
      no per-input ``apply_fn`` keywords; elsewhere it runs
      ``JACOBIAN_CONTRACTION``. ``vmap_axes`` is not needed (the layers keep
      examples independent).
    """

    AUTO = 0
    JACOBIAN_CONTRACTION = 1
    NTK_VECTOR_PRODUCTS = 2
    STRUCTURED_DERIVATIVES = 3


class Strategy(enum.Enum):
    """What one draw computes: the outputs alone, or the NTK by one of three routes."""

    FORWARD = "forward"
    """Only the NNGP is requested: one forward pass."""
    TAPS = "taps"
    """NTK from parameter taps (:func:`derivatives.tapped_ntk`)."""
    JACOBIANS = "jacobians"
    """NTK as a contraction of Jacobians (:func:`derivatives.jacobian`)."""
    VECTOR_PRODUCTS = "vector_products"
    """NTK from products with it (:func:`derivatives.ntk_vector_products`)."""


class Network(NamedTuple):
    """A finite network: ``init_fn(rng, input_shape)``, ``apply_fn(params, x, **kwargs)``."""

    init_fn: Callable[..., tuple[Any, Any]]
    apply_fn: Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class Config:
    """The options of :func:`~infattn.empirical.monte_carlo_kernel_fn` that shape a draw."""

    trace_axes: Axes = (-1,)
    diagonal_axes: Axes = ()
    vmap_axes: Any = None
    implementation: NtkImplementation = NtkImplementation.AUTO
    draws_in_parallel: int | None = None


def output(net: Network, params: Any, x: Array, kw: dict) -> Array:
    """``apply_fn``'s outputs as an array; a ``MaskedArray`` has its padding zeroed.

    Example:
        >>> from infattn import stax
        >>> init_fn, apply_fn, _ = stax.Dense(2)
        >>> _, params = init_fn(jax.random.PRNGKey(0), (1, 3))
        >>> output(Network(init_fn, apply_fn), params, jnp.ones((1, 3)), {}).shape
        (1, 2)
    """
    out = net.apply_fn(params, x, **kw)
    if kw.get("mask_constant") is not None:
        check_layout(net.apply_fn, x)
    out = unmask(out)
    if not isinstance(out, jax.Array | np.ndarray):
        raise TypeError(f"apply_fn: expected an array or a MaskedArray output, got {type(out)}")
    return out


def split_kwargs(kwargs: dict[str, Any], has_x2: bool) -> tuple[dict, dict]:
    """neural-tangents' rule: a pair ``(v1, v2)`` splits between ``x1`` and ``x2``.

    Example:
        >>> split_kwargs({"mask_constant": (0.0, 1.0)}, True)
        ({'mask_constant': 0.0}, {'mask_constant': 1.0})
    """
    k1, k2 = {}, {}
    for k, v in kwargs.items():
        if has_x2 and isinstance(v, tuple) and len(v) == 2:
            k1[k], k2[k] = v
        else:
            k1[k] = k2[k] = v
    return k1, k2


def input_shape(x: Any) -> Any:
    """``x.shape``, or a tuple of shapes for a tuple of inputs (one per ``parallel`` branch).

    Example:
        >>> input_shape((jnp.ones((2, 3)), jnp.ones((2, 4))))
        ((2, 3), (2, 4))
    """
    if isinstance(x, tuple):
        return tuple(a.shape for a in x)
    return x.shape


def param_shapes(net: Network, x1: Array) -> Any:
    """The parameters' shapes and dtypes for inputs like ``x1``, without drawing them.

    Example:
        >>> from infattn import stax
        >>> init_fn, apply_fn, _ = stax.Dense(2)
        >>> param_shapes(Network(init_fn, apply_fn), jnp.ones((1, 3)))[0].shape
        (3, 2)
    """
    key = jax.eval_shape(jax.random.PRNGKey, 0)  # abstract: nothing runs or compiles
    return jax.eval_shape(lambda k: net.init_fn(k, input_shape(x1))[1], key)


def choose_strategy(
    net: Network, cfg: Config, x1: Array, x2: Array | None, kw: dict, get: tuple[str, ...]
) -> Strategy:
    """The route to the NTK for these inputs (see :class:`NtkImplementation`).

    Taps apply to ``infattn.stax`` models whose kernel traces every non-batch
    output axis (and keeps at most the batch diagonal), with ``x2`` shaped like
    ``x1`` and no per-input keywords.

    Example:
        >>> from infattn import stax
        >>> init_fn, apply_fn, _ = stax.serial(stax.Dense(2), stax.Relu(), stax.Dense(1))
        >>> choose_strategy(Network(init_fn, apply_fn), Config(), jnp.ones((2, 3)), None, {},
        ...                 ("nngp", "ntk"))
        <Strategy.TAPS: 'taps'>
    """
    if "ntk" not in get:
        return Strategy.FORWARD
    impl = cfg.implementation
    if impl == NtkImplementation.NTK_VECTOR_PRODUCTS:
        return Strategy.VECTOR_PRODUCTS
    tappable = impl in (NtkImplementation.AUTO, NtkImplementation.STRUCTURED_DERIVATIVES)
    if tappable and _tappable(net, cfg, x1, x2, kw):
        return Strategy.TAPS
    return Strategy.JACOBIANS


def _tappable(net: Network, cfg: Config, x1: Array, x2: Array | None, kw: dict) -> bool:
    if getattr(net.apply_fn, "layer", None) is None or isinstance(x1, tuple):
        return False  # not an infattn.stax model, or inputs per branch (taps need one array)
    if x2 is not None and (
        x2.shape[1:] != x1.shape[1:]
        or x2.dtype != x1.dtype
        or any(isinstance(v, tuple) and len(v) == 2 for v in kw.values())
    ):
        return False
    kw1, _ = split_kwargs(kw, x2 is not None)
    try:
        out = jax.eval_shape(lambda p: output(net, p, x1, kw1), param_shapes(net, x1))
    except Exception:  # the Jacobian path raises the model's own error
        return False
    trace = canonical_axes(cfg.trace_axes, out.ndim, "trace_axes")
    diag = canonical_axes(cfg.diagonal_axes, out.ndim, "diagonal_axes")
    if diag and x2 is not None and x2.shape[0] != x1.shape[0]:
        return False  # the Jacobian path reports the mismatch
    return trace == tuple(range(1, out.ndim)) and diag in ((), (0,))


def draw_params(net: Network, key: Array, input_shape: tuple[int, ...]) -> tuple[Any, Array]:
    """The parameters of the draw with ``key`` and the key of its ``apply_fn`` randomness.

    ``init_fn`` runs with JAX's threefry generator in its original block layout
    (``jax.threefry_partitionable(False)``: one threefry block gives two 32-bit
    words, not one), which draws the parameters in about 40% less CPU time; they
    are i.i.d. draws of the same law as under JAX's default layout, but a given
    ``key`` gives other values than ``init_fn(key, ...)`` called directly under
    that default. Typed keys of other implementations
    (``jax.random.key(seed, impl="rbg")``) are used as given.

    Example:
        >>> from infattn import stax
        >>> params, _ = draw_params(Network(*stax.Dense(2)[:2]), jax.random.PRNGKey(0), (1, 3))
        >>> params[0].shape
        (3, 2)
    """
    init_key, apply_key = jax.random.split(key)
    with jax.threefry_partitionable(False):
        params = net.init_fn(init_key, input_shape)[1]
    return params, apply_key


def with_rng(net: Network, kw: dict, rng: Array) -> dict:
    """``kw`` with ``rng=rng`` when ``apply_fn`` accepts it and the caller gave none.

    Example:
        >>> from infattn import stax
        >>> sorted(with_rng(Network(*stax.Dense(2)[:2]), {}, jax.random.PRNGKey(0)))
        ['rng']
    """
    if "rng" in kw:
        return kw
    try:
        params = inspect.signature(net.apply_fn).parameters.values()
    except (TypeError, ValueError):
        return dict(kw, rng=rng)
    if any(p.kind is p.VAR_KEYWORD or p.name == "rng" for p in params):
        return dict(kw, rng=rng)
    return kw


def _check_outputs(out1: Array, out2: Array, trace: tuple, diag: tuple) -> None:
    if out1.ndim != out2.ndim:
        raise ValueError(
            f"x2: expected outputs f(x2) with as many axes as f(x1) {out1.shape}, got {out2.shape}"
        )
    if set(trace) & set(diag):
        raise ValueError(f"diagonal_axes: expected no overlap with trace_axes {trace}, got {diag}")
    for i in trace + diag:
        if out1.shape[i] != out2.shape[i]:
            name = "trace_axes" if i in trace else "diagonal_axes"
            raise ValueError(
                f"x2: outputs f(x1) {out1.shape} and f(x2) {out2.shape} differ on axis {i} "
                f"of {name}; expected equal sizes"
            )


def one_draw(
    net: Network,
    cfg: Config,
    strategy: Strategy,
    key: Array,
    x1: Array,
    x2: Array | None,
    kw: dict,
    get: tuple[str, ...],
) -> dict[str, Array]:
    """The kernels ``get`` of the network initialised with ``key``: ``{kind: kernel}``.

    Example:
        >>> from infattn import stax
        >>> net = Network(*stax.Dense(2)[:2])
        >>> k = one_draw(net, Config(), Strategy.FORWARD, jax.random.PRNGKey(0),
        ...              jnp.ones((3, 4)), None, {}, ("nngp",))
        >>> k["nngp"].shape
        (3, 3)
    """
    params, apply_key = draw_params(net, key, input_shape(x1))
    kw1, kw2 = split_kwargs(kw, x2 is not None)
    kw1 = with_rng(net, kw1, apply_key)
    kw2 = with_rng(net, kw2, jax.random.fold_in(apply_key, 1))
    return kernels_at(net, cfg, strategy, params, x1, x2, kw1, kw2, get)


def kernels_at(
    net: Network,
    cfg: Config,
    strategy: Strategy,
    params: Any,
    x1: Array,
    x2: Array | None,
    kw1: dict,
    kw2: dict,
    get: tuple[str, ...],
) -> dict[str, Array]:
    """The kernels ``get`` of the network at ``params``, ``apply_fn`` keywords ``kw1``/``kw2``.

    Example:
        >>> from infattn import stax
        >>> init_fn, apply_fn, _ = stax.Dense(2)
        >>> _, params = init_fn(jax.random.PRNGKey(0), (3, 4))
        >>> k = kernels_at(Network(init_fn, apply_fn), Config(), Strategy.JACOBIANS, params,
        ...                jnp.ones((3, 4)), None, {}, {}, ("ntk",))
        >>> k["ntk"].shape
        (3, 3)
    """

    def f(p: Any, x: Array, k: dict) -> Array:
        return output(net, p, x, k)

    if strategy is Strategy.TAPS:
        out1, out2, tapped = derivatives.tapped_ntk(f, params, x1, x2, kw1)
    elif strategy is Strategy.JACOBIANS:
        out1, j1 = derivatives.jacobian(f, params, x1, kw1, cfg.vmap_axes)
        out2, j2 = (
            (out1, j1) if x2 is None else derivatives.jacobian(f, params, x2, kw2, cfg.vmap_axes)
        )
    else:
        out1 = f(params, x1, kw1)
        out2 = out1 if x2 is None else f(params, x2, kw2)
    ndim = out1.ndim
    trace = canonical_axes(cfg.trace_axes, ndim, "trace_axes")
    diag = canonical_axes(cfg.diagonal_axes, ndim, "diagonal_axes")
    _check_outputs(out1, out2, trace, diag)
    res: dict[str, Array] = {}
    if "nngp" in get:
        res["nngp"] = contract(out1, out2, ndim, trace, diag)
    if strategy is Strategy.TAPS:
        res["ntk"] = jnp.diagonal(tapped) if diag else tapped
    elif strategy is Strategy.JACOBIANS:
        pairs = zip(jax.tree_util.tree_leaves(j1), jax.tree_util.tree_leaves(j2), strict=True)
        res["ntk"] = sum(contract(a, b, ndim, trace, diag) for a, b in pairs)
    elif strategy is Strategy.VECTOR_PRODUCTS:
        full = derivatives.ntk_vector_products(f, params, x1, x2, kw1, kw2)
        res["ntk"] = trace_and_diagonal(full, ndim, trace, diag)
    return res
