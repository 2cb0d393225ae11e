"""Monte Carlo estimates of NNGP and NTK kernels of finite networks, with standard errors.

:func:`monte_carlo_kernel_fn` is a drop-in for ``neural_tangents.monte_carlo_kernel_fn``
(same signature, same meaning, same output layout) that

* runs random initialisations ("draws") in memory-bounded chunks of
  ``chunk_size`` draws, each chunk one compiled step (``jax.lax.map`` over the
  draws, ``draws_in_parallel`` of them ``vmap``-ed together; compiled once per
  chunk shape and reused across calls);
* computes the NNGP and the NTK of a draw from one forward pass
  (``jax.vjp``), the NTK as a contraction of per-draw Jacobians;
* returns, on request, the standard error of every kernel entry
  (``kernel_fn(..., return_se=True)`` gives a :class:`MonteCarloEstimate`);
* validates its inputs and outputs (``ValueError`` naming the argument).

Draw ``i`` uses the key ``jax.random.fold_in(key, i)``, so an estimate depends
only on ``key`` and the number of draws, never on ``chunk_size``, ``batch_size``
or on which other counts ``n_samples`` lists.

Kernel layout (neural-tangents'): for outputs ``f(x1)`` of shape ``(N1, *S, C)``
and the default ``trace_axes=(-1,)``, kernels are ``(N1, N2, s1, s1, s2, s2, ...)``
(e.g. ``(N1, N2, L, L)`` for sequence outputs, ``(N1, N2)`` after pooling):
axes in ``trace_axes`` are averaged over, axes in ``diagonal_axes`` appear once,
every other axis appears twice (``x1``'s then ``x2``'s), in order.

    NNGP = <f(x1), f(x2)>_trace / size(trace_axes)
    NTK  = sum_params <df(x1)/dp, df(x2)/dp>_trace / size(trace_axes)
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import inspect
import math
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from infattn.stax import taps

Array = jax.Array
InitFn = Callable[..., tuple[Any, Any]]
ApplyFn = Callable[..., Any]
Axes = int | Sequence[int]

_KINDS = ("nngp", "ntk")
DEFAULT_MEMORY_BUDGET = 512 * 2**20
PARALLEL_PARAMETER_BYTES = 32 * 2**20
"""Parameter bytes of the draws ``vmap``-ed together by default (``draws_in_parallel=None``
without Jacobians): 4 draws of the 1.85M-parameter benchmark transformer, 1 draw of a
6.5M-parameter attention layer; both measured fastest on a 2-core CPU."""
"""Bytes one chunk may hold (live Jacobians + per-draw kernels) when ``chunk_size=None``."""


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


DEFAULT_NTK_IMPLEMENTATION = NtkImplementation.AUTO


class MonteCarloKernel(NamedTuple):
    """Kernel means in neural-tangents' ``MonteCarloKernel`` form (``get=None``)."""

    nngp: Array
    ntk: Array


@functools.cache
def _namedtuple(get: tuple[str, ...]) -> type:
    if get == _KINDS:
        return MonteCarloKernel
    return collections.namedtuple("MonteCarloKernel", get)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MonteCarloEstimate:
    """A Monte Carlo kernel estimate with the standard error of every entry.

    Returned by ``kernel_fn(x1, x2, get, return_se=True)``. ``nngp``/``ntk`` are
    the means over ``n_samples`` draws (``None`` when not requested), with the
    layout of :func:`monte_carlo_kernel_fn`'s kernels; ``nngp_se``/``ntk_se`` have
    the same shapes: ``sqrt(s^2 / n)`` with ``s^2`` the unbiased per-entry sample
    variance over draws. Entries are means of ``n`` i.i.d. draws, so for
    ``n >~ 30`` ``(mean - E) / se`` is close to standard normal entrywise.
    """

    nngp: Array | None
    ntk: Array | None
    nngp_se: Array | None
    ntk_se: Array | None
    n_samples: int = dataclasses.field(metadata={"static": True})
    get: tuple[str, ...] = dataclasses.field(default=_KINDS, metadata={"static": True})

    def mean(self, kind: str) -> Array:
        """The mean kernel ``kind`` (``'nngp'`` or ``'ntk'``)."""
        return _field(self, kind, "")

    def se(self, kind: str) -> Array:
        """The standard errors of kernel ``kind``, same shape as :meth:`mean`."""
        return _field(self, kind, "_se")

    def zscores(self, kind: str, reference: Array) -> Array:
        """``(mean - reference) / se`` entrywise (``inf`` where ``se == 0`` and they differ)."""
        mean, se = self.mean(kind), self.se(kind)
        diff = mean - jnp.asarray(reference, mean.dtype)
        return jnp.where(diff == 0, 0.0, diff / jnp.where(se == 0, 0.0, se))

    def kernel(self) -> Any:
        """The means in neural-tangents' return form for this ``get``."""
        return _namedtuple(self.get)(*(self.mean(g) for g in self.get))


def _field(est: MonteCarloEstimate, kind: str, suffix: str) -> Array:
    if kind not in est.get:
        raise ValueError(f"`kind` must be one of {est.get} (requested by `get`); got {kind!r}.")
    return getattr(est, kind + suffix)


# ------------------------------------------------------------------ axes and contractions


def _canonical_axes(axes: Axes, ndim: int, name: str) -> tuple[int, ...]:
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    out = []
    for a in axes:
        if not isinstance(a, int | np.integer) or not -ndim <= a < ndim:
            raise ValueError(
                f"`{name}` = {axes} has an axis out of range for outputs with {ndim} dimensions."
            )
        out.append(int(a) % ndim)
    return tuple(sorted(set(out)))


def _zipped_order(ndim: int, trace: tuple[int, ...], diag: tuple[int, ...]) -> list[tuple]:
    """Output axes of a kernel: per output axis ``(i, side)``, side 0 = x1's, 1 = x2's."""
    order = []
    for i in range(ndim):
        if i in diag:
            order.append((i, 0))
        elif i not in trace:
            order.extend(((i, 0), (i, 1)))
    return order


def _contract(
    a: Array, b: Array, ndim: int, trace: tuple[int, ...], diag: tuple[int, ...]
) -> Array:
    """``<a, b>`` over ``trace`` and over all axes past the first ``ndim``.

    ``a``: ``(*out1, *rest)``, ``b``: ``(*out2, *rest)`` with ``len(out) == ndim``.
    Returns the zipped layout: per output axis ``i``, nothing if ``i in trace``,
    one axis if ``i in diag``, else ``(out1[i], out2[i])``; divided by the size
    of the traced axes. Done as one (batched over ``diag``) matrix product of
    ``(kept, trace * rest)`` matrices: with the default ``trace_axes=(-1,)`` the
    operands need no transposition, so Jacobians are read in place.
    """
    kept = [i for i in range(ndim) if i not in trace and i not in diag]
    rest = list(range(ndim, a.ndim))
    perm = list(diag) + kept + list(trace) + rest
    a_t, b_t = jnp.transpose(a, perm), jnp.transpose(b, perm)
    d_shape = tuple(a.shape[i] for i in diag)
    k1 = tuple(a.shape[i] for i in kept)
    k2 = tuple(b.shape[i] for i in kept)
    d, n1, n2 = math.prod(d_shape), math.prod(k1), math.prod(k2)
    a_m = a_t.reshape(d, n1, -1)
    b_m = b_t.reshape(d, n2, -1)
    g = jax.lax.dot_general(
        a_m, b_m, (((2,), (2,)), ((0,), (0,))), precision=jax.lax.Precision.HIGHEST
    )
    g = g.reshape(d_shape + k1 + k2)
    # current axes: diag..., kept(x1)..., kept(x2)...; move to the zipped order
    pos = {}
    for n, i in enumerate(diag):
        pos[(i, 0)] = n
    for n, i in enumerate(kept):
        pos[(i, 0)] = len(diag) + n
        pos[(i, 1)] = len(diag) + len(kept) + n
    g = jnp.transpose(g, [pos[o] for o in _zipped_order(ndim, trace, diag)])
    size = math.prod(a.shape[i] for i in trace)
    return g / size


def _trace_and_diagonal(
    full: Array, ndim: int, trace: tuple[int, ...], diag: tuple[int, ...]
) -> Array:
    """From a full kernel ``(*out1, *out2)`` to the zipped, traced, diagonal layout."""
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    l1, l2, lo = [], [], []
    for i in range(ndim):
        x = next(letters)
        if i in trace or i in diag:
            l1.append(x)
            l2.append(x)
            if i in diag:
                lo.append(x)
        else:
            y = next(letters)
            l1.append(x)
            l2.append(y)
            lo.extend((x, y))
    size = math.prod(full.shape[i] for i in trace)
    return jnp.einsum(f"{''.join(l1 + l2)}->{''.join(lo)}", full) / size


# ------------------------------------------------------------------ the per-draw kernels


def _unmask(out: Any) -> Array:
    """Outputs as an array; a ``MaskedArray`` has its padding entries zeroed."""
    if hasattr(out, "masked_value") and hasattr(out, "mask"):
        value, mask = out.masked_value, out.mask
        if mask is None:
            return value
        mask = jnp.asarray(mask)
        mask = mask.reshape(mask.shape + (1,) * (value.ndim - mask.ndim))
        return jnp.where(mask, jnp.zeros((), value.dtype), value)
    if not isinstance(out, jax.Array | np.ndarray):
        raise TypeError(f"`apply_fn` must return an array or a MaskedArray; got {type(out)}.")
    return out


def _accepts_kwarg(fn: Callable, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD or p.name == name for p in params)


def _split_kwargs(kwargs: dict[str, Any], has_x2: bool) -> tuple[dict, dict]:
    """neural-tangents' rule: a pair ``(v1, v2)`` splits between ``x1`` and ``x2``."""
    k1, k2 = {}, {}
    for k, v in kwargs.items():
        if has_x2 and isinstance(v, tuple) and len(v) == 2:
            k1[k], k2[k] = v
        else:
            k1[k] = k2[k] = v
    return k1, k2


@dataclasses.dataclass(frozen=True)
class _Config:
    trace_axes: Axes
    diagonal_axes: Axes
    vmap_axes: Any
    implementation: NtkImplementation
    draws_in_parallel: int | None = None


def _vmap_triple(vmap_axes: Any) -> tuple[Any, Any, dict] | None:
    if vmap_axes is None:
        return None
    if isinstance(vmap_axes, tuple) and len(vmap_axes) == 3:
        in_axes, out_axes, kw_axes = vmap_axes
        return in_axes, out_axes, dict(kw_axes or {})
    return vmap_axes, vmap_axes, {}


class _Engine:
    """Compiled per-chunk functions for one ``(init_fn, apply_fn, config)``."""

    def __init__(self, init_fn: InitFn, apply_fn: ApplyFn, cfg: _Config):
        self.init_fn = init_fn
        self.apply_fn = apply_fn
        self.cfg = cfg
        self.pass_rng = _accepts_kwarg(apply_fn, "rng")
        self._chunk = jax.jit(self._chunk_impl, static_argnames=("get", "static_kw"))
        self._reduce = jax.jit(_reduce)

    # -- one draw ---------------------------------------------------------------
    def _f(self, params: Any, x: Array, kw: dict) -> Array:
        return _unmask(self.apply_fn(params, x, **kw))

    def _jacobian(self, params: Any, x: Array, kw: dict) -> tuple[Array, Any]:
        """Outputs ``(*out)`` and Jacobian leaves ``(*out, *param_shape)``."""
        triple = _vmap_triple(self.cfg.vmap_axes)
        if triple is None:
            return _value_and_jacobian(lambda p: self._f(p, x, kw), params)
        in_axes, out_axes, kw_axes = triple
        keys = sorted(kw)
        kw_in = [kw_axes.get(k) for k in keys]

        def single(xi: Array, *vals: Any) -> tuple[Array, Any]:
            kwi = {
                k: (jnp.expand_dims(v, a) if a is not None else v)
                for k, v, a in zip(keys, vals, kw_in, strict=True)
            }
            xi = jnp.expand_dims(xi, in_axes)

            def fi(p: Any) -> Array:
                return jnp.squeeze(self._f(p, xi, kwi), out_axes)

            return _value_and_jacobian(fi, params)

        return jax.vmap(single, in_axes=(in_axes, *kw_in), out_axes=out_axes)(
            x, *(kw[k] for k in keys)
        )

    def _tappable(self, x1: Array, x2: Array | None, kw: dict, get: tuple[str, ...]) -> bool:
        """Whether the NTK can come from parameter taps (see :class:`NtkImplementation`)."""
        if "ntk" not in get or self.cfg.implementation not in (
            NtkImplementation.AUTO,
            NtkImplementation.STRUCTURED_DERIVATIVES,
        ):
            return False
        if getattr(self.apply_fn, "layer", None) is None:  # not an infattn.stax model
            return False
        if x2 is not None and (
            x2.shape[1:] != x1.shape[1:]
            or x2.dtype != x1.dtype
            or any(isinstance(v, tuple) and len(v) == 2 for v in kw.values())
        ):
            return False
        kw1, _ = _split_kwargs(kw, x2 is not None)
        try:
            out = jax.eval_shape(lambda p: self._f(p, x1, kw1), self._param_shapes(x1))
        except Exception:  # the Jacobian path raises the model's own error
            return False
        trace = _canonical_axes(self.cfg.trace_axes, out.ndim, "trace_axes")
        diag = _canonical_axes(self.cfg.diagonal_axes, out.ndim, "diagonal_axes")
        if diag and x2 is not None and x2.shape[0] != x1.shape[0]:
            return False  # the Jacobian path reports the mismatch
        return trace == tuple(range(1, out.ndim)) and diag in ((), (0,))

    def _param_shapes(self, x1: Array) -> Any:
        """The parameters' shapes and dtypes for inputs like ``x1``, without drawing them."""
        return jax.eval_shape(lambda k: self.init_fn(k, x1.shape)[1], jax.random.PRNGKey(0))

    def _parallel(self, params: Any, jacobians: bool) -> int:
        """Draws ``vmap``-ed together: the user's choice, else 1 with Jacobians, else as
        many as keep :data:`PARALLEL_PARAMETER_BYTES` of ``params`` live (1 to 4)."""
        if self.cfg.draws_in_parallel is not None:
            return self.cfg.draws_in_parallel
        if jacobians:
            return 1
        size = sum(p.size * p.dtype.itemsize for p in jax.tree_util.tree_leaves(params))
        return int(min(4, max(1, PARALLEL_PARAMETER_BYTES // max(size, 1))))

    def _tapped_ntk(
        self, params: Any, x1: Array, x2: Array | None, kw: dict
    ) -> tuple[Array, Array, Array]:
        """Outputs for ``x1`` and ``x2`` and the ``(N1, N2)`` NTK, traced over outputs."""
        n1 = x1.shape[0]
        x = x1 if x2 is None else jnp.concatenate([x1, x2])
        split = None if x2 is None else n1
        shape = (n1, n1 if x2 is None else x2.shape[0])
        accs = jax.tree_util.tree_map(lambda p: jnp.zeros(shape, p.dtype), params)

        def f(accs: Any) -> Array:
            tapped = jax.tree_util.tree_map(lambda p, a: taps.Tap(p, a, split), params, accs)
            return self._f(tapped, x, kw)

        out, pullback = jax.vjp(f, accs)
        n_out = math.prod(out.shape[1:])
        seeds = jnp.broadcast_to(
            jnp.eye(n_out, dtype=out.dtype)[:, None], (n_out, out.shape[0], n_out)
        ).reshape(n_out, *out.shape)
        (grams,) = jax.vmap(pullback)(seeds)  # per leaf (n_out, N1, N2)
        ntk = sum(jnp.sum(g, 0) for g in jax.tree_util.tree_leaves(grams)) / n_out
        return out[:n1], (out if x2 is None else out[n1:]), ntk

    def _one_draw(
        self, key: Array, x1: Array, x2: Array | None, kw: dict, get: tuple[str, ...], tapped: bool
    ) -> dict[str, Array]:
        """One draw's kernels; ``tapped``: the NTK from parameter taps (:meth:`_tappable`)."""
        init_key, apply_key = jax.random.split(key)
        _, params = self.init_fn(init_key, x1.shape)
        kw1, kw2 = _split_kwargs(kw, x2 is not None)
        if self.pass_rng and "rng" not in kw:
            kw1 = dict(kw1, rng=apply_key)
            kw2 = dict(kw2, rng=jax.random.fold_in(apply_key, 1))
        impl = self.cfg.implementation
        use_jac = "ntk" in get and not tapped and impl != NtkImplementation.NTK_VECTOR_PRODUCTS
        if tapped:
            out1, out2, ntk = self._tapped_ntk(params, x1, x2, kw1)
        elif use_jac:
            out1, j1 = self._jacobian(params, x1, kw1)
            out2, j2 = (out1, j1) if x2 is None else self._jacobian(params, x2, kw2)
        else:
            out1 = self._f(params, x1, kw1)
            out2 = out1 if x2 is None else self._f(params, x2, kw2)
        if out1.ndim != out2.ndim:
            raise ValueError(
                f"`x2`: outputs f(x1) {out1.shape} and f(x2) {out2.shape} "
                "have different numbers of axes."
            )
        ndim = out1.ndim
        trace = _canonical_axes(self.cfg.trace_axes, ndim, "trace_axes")
        diag = _canonical_axes(self.cfg.diagonal_axes, ndim, "diagonal_axes")
        if set(trace) & set(diag):
            raise ValueError(f"`diagonal_axes` {diag} overlaps `trace_axes` {trace}.")
        for i in trace + diag:
            if out1.shape[i] != out2.shape[i]:
                name = "trace_axes" if i in trace else "diagonal_axes"
                raise ValueError(
                    f"`x2`: outputs f(x1) {out1.shape} and f(x2) {out2.shape} "
                    f"differ on axis {i} of `{name}`."
                )
        res: dict[str, Array] = {}
        if "nngp" in get:
            res["nngp"] = _contract(out1, out2, ndim, trace, diag)
        if "ntk" in get:
            if tapped:
                res["ntk"] = jnp.diagonal(ntk) if diag else ntk
            elif use_jac:
                leaves1 = jax.tree_util.tree_leaves(j1)
                leaves2 = jax.tree_util.tree_leaves(j2)
                res["ntk"] = sum(
                    _contract(a, b, ndim, trace, diag)
                    for a, b in zip(leaves1, leaves2, strict=True)
                )
            else:
                full = _ntk_vector_products(
                    lambda p, x, k: self._f(p, x, k), params, x1, x2, kw1, kw2
                )
                res["ntk"] = _trace_and_diagonal(full, ndim, trace, diag)
        return res

    def _chunk_impl(
        self,
        keys: Array,
        x1: Array,
        x2: Array | None,
        dyn_kw: dict,
        get: tuple[str, ...],
        static_kw: tuple,
    ) -> dict[str, Array]:
        kw = dict(dyn_kw, **dict(static_kw))
        tapped = self._tappable(x1, x2, kw, get)
        one = functools.partial(self._one_draw, x1=x1, x2=x2, kw=kw, get=get, tapped=tapped)
        parallel = self._parallel(self._param_shapes(x1), "ntk" in get and not tapped)
        if parallel >= keys.shape[0]:
            return jax.vmap(one)(keys)
        return jax.lax.map(one, keys, batch_size=parallel)

    # -- public to the module -------------------------------------------------------
    def chunk(
        self, keys: Array, x1: Array, x2: Array | None, kwargs: dict, get: tuple[str, ...]
    ) -> dict[str, Array]:
        dyn, static = _split_static(kwargs)
        return self._chunk(keys, x1, x2, dyn, get=get, static_kw=static)

    def reduce(self, draws: dict[str, Array], weights: Array) -> dict[str, tuple]:
        return self._reduce(draws, weights)

    def draws_per_chunk(
        self,
        x1: Array,
        x2: Array | None,
        kwargs: dict,
        get: tuple[str, ...],
        budget: int = DEFAULT_MEMORY_BUDGET,
    ) -> int:
        """Draws per chunk that keep one chunk's memory within ``budget`` bytes.

        Within a chunk ``draws_in_parallel`` draws are live at once, each holding
        its Jacobians (``outputs x parameters``; none with taps) and activations (a
        few times the parameters); every draw of the chunk keeps its kernels
        (exact sizes from :func:`jax.eval_shape`). Between 1 and 256.
        """
        key = jax.random.PRNGKey(0)
        params = self._param_shapes(x1)
        n_params = sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(params))
        kw1, _ = _split_kwargs(kwargs, x2 is not None)
        itemsize = jnp.dtype(x1.dtype).itemsize
        dyn, static = _split_static(kwargs)
        tapped = self._tappable(x1, x2, kwargs, get)
        try:
            out = jax.eval_shape(lambda p: self._f(p, x1, kw1), params)
            kern = jax.eval_shape(
                lambda k: self._one_draw(k, x1, x2, dict(dyn, **dict(static)), get, tapped), key
            )
        except Exception:  # let the real call raise its own error
            return 1
        n_out = math.prod(out.shape) * (1 if x2 is None else 2)
        jacobians = "ntk" in get and not tapped
        live = (n_out * (n_params if jacobians else 1) + 4 * n_params) * itemsize
        per_draw = sum(math.prod(v.shape) for v in kern.values()) * itemsize
        free = budget - self._parallel(params, jacobians) * live
        return int(min(256, max(1, free // max(per_draw, 1))))


def _split_static(kwargs: dict) -> tuple[dict, tuple]:
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
                    f"apply_fn keyword `{k}` must be an array or hashable; got {type(v)}."
                ) from e
            static.append((k, v))
    return dyn, tuple(sorted(static, key=lambda kv: kv[0]))


def _value_and_jacobian(f: Callable[[Any], Array], params: Any) -> tuple[Array, Any]:
    """``f(params)`` and its Jacobian leaves ``(*out, *param_shape)``.

    Reverse mode (one ``vjp``, ``vmap``-ed over output cotangents) unless there are
    fewer parameters than outputs.
    """
    out, vjp = jax.vjp(f, params)
    n_out = out.size
    n_params = sum(p.size for p in jax.tree_util.tree_leaves(params))
    if n_params < n_out:
        jac = jax.jacfwd(f)(params)
        return out, jac
    basis = jnp.eye(n_out, dtype=out.dtype).reshape((n_out, *out.shape))
    (jac,) = jax.vmap(vjp)(basis)
    jac = jax.tree_util.tree_map(lambda j: j.reshape(out.shape + j.shape[1:]), jac)
    return out, jac


def _ntk_vector_products(
    f: Callable, params: Any, x1: Array, x2: Array | None, kw1: dict, kw2: dict
) -> Array:
    """Full NTK ``(*out1, *out2)`` as ``J1 (J2^T e_k)`` for every output entry ``k``."""
    out2, vjp2 = jax.vjp(
        lambda p: f(p, x2 if x2 is not None else x1, kw2 if x2 is not None else kw1), params
    )
    n2 = out2.size
    basis = jnp.eye(n2, dtype=out2.dtype).reshape((n2, *out2.shape))

    def column(ct: Array) -> Array:
        (tangent,) = vjp2(ct)
        return jax.jvp(lambda p: f(p, x1, kw1), (params,), (tangent,))[1]

    cols = jax.vmap(column)(basis)  # (n2, *out1)
    nd1 = cols.ndim - 1
    cols = cols.reshape(out2.shape + cols.shape[1:])
    return jnp.moveaxis(cols, tuple(range(out2.ndim)), tuple(range(nd1, nd1 + out2.ndim)))


def _reduce(draws: dict[str, Array], weights: Array) -> dict[str, tuple]:
    """Per kind: ``(count, mean, centred sum of squares, all finite)`` of the weighted draws."""
    res = {}
    w_sum = jnp.sum(weights)
    for kind, d in draws.items():
        w = weights.reshape((-1,) + (1,) * (d.ndim - 1)).astype(d.dtype)
        finite = jnp.all(jnp.isfinite(d).reshape(d.shape[0], -1), axis=1)
        safe = jnp.where(w > 0, d, 0.0)
        mean = jnp.sum(w * safe, 0) / jnp.maximum(w_sum, 1)
        m2 = jnp.sum(w * (safe - mean) ** 2, 0)
        res[kind] = (w_sum, mean, m2, jnp.all(finite | (weights == 0)))
    return res


def _combine(a: tuple, b: tuple) -> tuple:
    """Chan et al.'s pairwise update of ``(count, mean, m2)``."""
    na, ma, sa = a
    nb, mb, sb = b
    n = na + nb
    if nb == 0:
        return a
    delta = mb - ma
    mean = ma + delta * (nb / n)
    m2 = sa + sb + delta**2 * (na * nb / n)
    return n, mean, m2


# ------------------------------------------------------------------ the estimator


_ENGINES: collections.OrderedDict = collections.OrderedDict()


def _engine(init_fn: InitFn, apply_fn: ApplyFn, cfg: _Config) -> _Engine:
    """One engine (hence one set of compiled functions) per model and configuration."""
    try:
        key = (init_fn, apply_fn, _hashable(cfg))
        hash(key)
    except TypeError:
        return _Engine(init_fn, apply_fn, cfg)
    if key not in _ENGINES:
        _ENGINES[key] = _Engine(init_fn, apply_fn, cfg)
        if len(_ENGINES) > 32:
            _ENGINES.popitem(last=False)
    _ENGINES.move_to_end(key)
    return _ENGINES[key]


def _hashable(x: Any) -> Any:
    if isinstance(x, _Config):
        return tuple(_hashable(getattr(x, f.name)) for f in dataclasses.fields(x))
    if isinstance(x, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in x.items()))
    if isinstance(x, list | tuple):
        return tuple(_hashable(v) for v in x)
    return x


def _canonical_get(get: Any) -> tuple[bool, tuple[str, ...]]:
    if get is None:
        return False, _KINDS
    if isinstance(get, str):
        single, get = True, (get,)
    else:
        single, get = False, tuple(get)
    if not get:
        raise ValueError("`get` must be non-empty.")
    get = tuple(g.lower() if isinstance(g, str) else g for g in get)
    bad = [g for g in get if g not in _KINDS]
    if bad or len(set(get)) < len(get):
        raise ValueError(f"`get` must be 'nngp', 'ntk' or a tuple of distinct ones; got {get}.")
    return single, get


def _canonical_n_samples(n_samples: Any) -> tuple[tuple[int, ...], bool]:
    if isinstance(n_samples, int | np.integer) and not isinstance(n_samples, bool):
        counts, generator = (int(n_samples),), False
    elif isinstance(n_samples, Iterable) and not isinstance(n_samples, str):
        counts, generator = tuple(n_samples), True
    else:
        raise TypeError(
            f"`n_samples` must be an integer or an iterable of integers; got {type(n_samples)}."
        )
    if not counts or not all(
        isinstance(n, int | np.integer) and not isinstance(n, bool) for n in counts
    ):
        raise ValueError(f"`n_samples` must contain only integers; got {n_samples}.")
    if any(n <= 0 for n in counts):
        raise ValueError(f"`n_samples` must be positive; got {n_samples}.")
    return tuple(sorted({int(n) for n in counts})), generator


def _check_input(x: Any, name: str, mask_constant: Any) -> Array:
    if not isinstance(x, jax.Array | np.ndarray):
        raise ValueError(f"`{name}` must be an array of shape (N, ..., C); got {type(x)}.")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"`{name}` must have shape (N >= 1, ..., C); got {x.shape}.")
    xn = np.asarray(x)
    if np.issubdtype(xn.dtype, np.floating):
        bad = ~np.isfinite(xn)
        if mask_constant is not None:
            mc = float(mask_constant)
            bad &= ~(np.isnan(xn) if np.isnan(mc) else xn == mc)
        if bad.any():
            raise ValueError(
                f"`{name}` has {int(bad.sum())} non-finite entries (NaN/inf) "
                "that are not padding (`mask_constant`)."
            )
    return jnp.asarray(x)


def _device_list(device_count: int) -> list:
    devices = jax.devices()
    if device_count in (0, 1):
        return devices[:1]
    if device_count == -1:
        return devices
    if device_count < 0 or device_count > len(devices):
        raise ValueError(
            f"`device_count` must be -1, 0 or in 1..{len(devices)}; got {device_count}."
        )
    return devices[:device_count]


def monte_carlo_kernel_fn(
    init_fn: InitFn,
    apply_fn: ApplyFn,
    key: Array,
    n_samples: int | Iterable[int],
    batch_size: int = 0,
    device_count: int = -1,
    store_on_device: bool = True,
    trace_axes: Axes = (-1,),
    diagonal_axes: Axes = (),
    vmap_axes: Any = None,
    implementation: int | NtkImplementation = DEFAULT_NTK_IMPLEMENTATION,
    *,
    chunk_size: int | None = None,
    progress: bool = False,
    draws_in_parallel: int | None = None,
) -> Callable[..., Any]:
    """Monte Carlo estimator of the NNGP and NTK of a finite network, with standard errors.

    Same signature and meaning as ``neural_tangents.monte_carlo_kernel_fn``.

    Args:
      init_fn: ``init_fn(rng, input_shape) -> (output_shape, params)``.
      apply_fn: ``apply_fn(params, x, **kwargs)`` returning an array ``(N, ..., C)``
        or a ``MaskedArray`` (its padding entries are zeroed before use). It gets
        ``rng=`` (a per-draw key, as in neural-tangents) when it accepts it.
      key: PRNG key; draw ``i`` uses ``fold_in(key, i)``.
      n_samples: number of draws, or an iterable of counts: then ``kernel_fn``
        returns a generator of the estimates at those counts (ascending,
        duplicates dropped), all from one sequence of draws.
      batch_size: compute the kernel in ``(batch_size, batch_size)`` tiles of
        ``(x1, x2)``; ``0``: the whole kernel at once. Must divide ``N1`` and ``N2``.
        Every tile of a draw uses the same parameters.
      device_count: devices over which the draws of a chunk are sharded; ``-1``:
        all, ``0``: one.
      store_on_device: ``False`` accumulates the estimates in host memory
        (float64 numpy arrays), ``True`` on the device.
      trace_axes: output axes averaged over (default: channels).
      diagonal_axes: output axes kept once (their diagonal).
      vmap_axes: ``None``, an axis, or ``(in_axes, out_axes, kwargs_axes)``
        certifying that ``f(x)[i]`` depends only on ``x[i]`` along those axes,
        as in neural-tangents. NTK Jacobians are then taken per example, which
        is ``N`` times cheaper; every infattn.stax layer qualifies (``0``). Not
        needed with parameter taps (see ``implementation``).
      implementation: see :class:`NtkImplementation`.
      chunk_size: draws per compiled step (a ``jax.lax.map`` over draws; the
        per-draw kernels of a chunk are kept for the standard errors). ``None``:
        as many as fit :data:`DEFAULT_MEMORY_BUDGET` (at most 256), balanced so that
        the last chunk is not mostly padding. Results do not depend on it (up to
        float rounding).
      progress: show a ``tqdm`` progress bar over chunks.
      draws_in_parallel: draws ``vmap``-ed together inside a chunk. ``None``: 1 (a
        sequential ``lax.map``) with Jacobians, which are large; otherwise (taps,
        or only the NNGP) up to 4, as many as keep :data:`PARALLEL_PARAMETER_BYTES`
        of parameters live; measured fastest on CPU. Raise it on accelerators.

    Returns:
      ``kernel_fn(x1, x2=None, get=None, *, return_se=False, **apply_fn_kwargs)``.
      ``get``: ``'nngp'``, ``'ntk'``, a tuple of them, or ``None`` (both). Without
      ``return_se`` it returns what neural-tangents returns: the mean kernel
      (an array for a string ``get``, else a ``MonteCarloKernel`` namedtuple).
      With ``return_se=True`` it returns a :class:`MonteCarloEstimate` (means,
      per-entry standard errors, ``n_samples``), which needs ``n >= 2`` draws.
      Keyword arguments go to ``apply_fn`` (e.g. ``mask_constant``); a pair
      ``(v1, v2)`` gives ``v1`` with ``x1`` and ``v2`` with ``x2``.
      For list-valued ``n_samples`` it returns a generator of those results.

    Raises:
      ValueError: bad ``n_samples``, ``get``, axes, input shapes, non-finite
        inputs or outputs (the message names the argument).
    """
    counts, generator = _canonical_n_samples(n_samples)
    if not isinstance(batch_size, int | np.integer) or batch_size < 0:
        raise ValueError(f"`batch_size` must be a non-negative integer; got {batch_size}.")
    if chunk_size is not None and (not isinstance(chunk_size, int | np.integer) or chunk_size < 1):
        raise ValueError(f"`chunk_size` must be a positive integer or None; got {chunk_size}.")
    try:
        impl = NtkImplementation(int(implementation))
    except (ValueError, TypeError) as e:
        raise ValueError(f"`implementation` must be 0, 1, 2 or 3; got {implementation}.") from e
    devices = _device_list(device_count)
    if draws_in_parallel is not None and (
        not isinstance(draws_in_parallel, int | np.integer) or draws_in_parallel < 1
    ):
        raise ValueError(
            f"`draws_in_parallel` must be a positive integer or None; got {draws_in_parallel}."
        )
    cfg = _Config(
        trace_axes,
        diagonal_axes,
        vmap_axes,
        impl,
        None if draws_in_parallel is None else int(draws_in_parallel),
    )
    engine = _engine(init_fn, apply_fn, cfg)

    def run(
        x1: Any, x2: Any, get: Any, return_se: bool, apply_fn_kwargs: dict
    ) -> Generator[Any, None, None]:
        single, get_t = _canonical_get(get)
        if return_se and counts[0] < 2:
            raise ValueError(f"`n_samples` must be >= 2 for standard errors; got {counts[0]}.")
        mask_constant = apply_fn_kwargs.get("mask_constant")
        x1 = _check_input(x1, "x1", mask_constant)
        if x2 is not None:
            x2 = _check_input(x2, "x2", mask_constant)
            if x2.ndim != x1.ndim or x2.shape[-1] != x1.shape[-1]:
                raise ValueError(
                    f"`x2` of shape {x2.shape} does not match `x1` of shape "
                    f"{x1.shape} (same number of axes and channels needed)."
                )
        tiles = _tiles(x1, x2, batch_size, cfg)
        n_max = counts[-1]
        if chunk_size is None:
            limit = engine.draws_per_chunk(tiles[0].x1, tiles[0].x2, apply_fn_kwargs, get_t)
        else:
            limit = int(chunk_size)
        n_chunks = math.ceil(n_max / min(limit, n_max))
        size = math.ceil(n_max / n_chunks)
        size = math.ceil(size / len(devices)) * len(devices)
        n_chunks = math.ceil(n_max / size)
        sharding = None
        if len(devices) > 1:
            mesh = jax.sharding.Mesh(np.array(devices), ("draws",))
            sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("draws"))
        xp = jnp if store_on_device else np
        states: list[dict[str, tuple]] = [{k: (0, 0.0, 0.0) for k in get_t} for _ in tiles]
        done = 0
        targets = list(counts)
        bar = tqdm(total=n_max, disable=not progress, desc="MC draws", unit="draw")
        try:
            for c in range(n_chunks):
                start = c * size
                keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(
                    jnp.arange(start, start + size)
                )
                if sharding is not None:
                    keys = jax.device_put(keys, sharding)
                draws = [engine.chunk(keys, t.x1, t.x2, apply_fn_kwargs, get_t) for t in tiles]
                pos = start
                while pos < min(start + size, n_max):
                    stop = min(start + size, targets[0])
                    w = (jnp.arange(start, start + size) >= pos) & (
                        jnp.arange(start, start + size) < stop
                    )
                    for t, (tile_draws, state) in enumerate(zip(draws, states, strict=True)):
                        red = engine.reduce(tile_draws, w)
                        for kind in get_t:
                            cnt, mean, m2, finite = red[kind]
                            if not bool(finite):
                                raise ValueError(
                                    f"`apply_fn` produced non-finite (NaN/inf) {kind} for "
                                    f"draws {pos}..{stop - 1} (tile {t}); check `x1`/`x2`, "
                                    "`mask_constant` and the model."
                                )
                            b = (
                                (int(cnt), mean, m2)
                                if store_on_device
                                else (
                                    int(cnt),
                                    np.asarray(mean, np.float64),
                                    np.asarray(m2, np.float64),
                                )
                            )
                            state[kind] = _combine(state[kind], b) if state[kind][0] else b
                    bar.update(stop - pos)
                    pos = stop
                    done = stop
                    if done == targets[0]:
                        targets.pop(0)
                        yield _result(
                            states, tiles, get_t, single, done, return_se, x2 is None, cfg, xp
                        )
                        if not targets:
                            return
        finally:
            bar.close()

    def kernel_fn(
        x1: Array,
        x2: Array | None = None,
        get: Any = None,
        *,
        return_se: bool = False,
        **apply_fn_kwargs: Any,
    ) -> Any:
        gen = run(x1, x2, get, return_se, apply_fn_kwargs)
        if generator:
            return gen
        return next(gen)

    kernel_fn.__doc__ = monte_carlo_kernel_fn.__doc__
    return kernel_fn


@dataclasses.dataclass(frozen=True)
class _Tile:
    x1: Array
    x2: Array | None
    i: int
    j: int


def _tiles(x1: Array, x2: Array | None, batch_size: int, cfg: _Config) -> list[_Tile]:
    if batch_size == 0:
        return [_Tile(x1, x2, 0, 0)]
    n1 = x1.shape[0]
    n2 = n1 if x2 is None else x2.shape[0]
    if n1 % batch_size or n2 % batch_size:
        raise ValueError(f"`batch_size` {batch_size} must divide N1 = {n1} and N2 = {n2}.")
    diag = (cfg.diagonal_axes,) if isinstance(cfg.diagonal_axes, int) else cfg.diagonal_axes
    trace = (cfg.trace_axes,) if isinstance(cfg.trace_axes, int) else cfg.trace_axes
    if 0 in trace:
        raise ValueError(
            "`batch_size` > 0 cannot be combined with the batch axis 0 in `trace_axes`."
        )
    b1, b2 = n1 // batch_size, n2 // batch_size
    x2_ = x1 if x2 is None else x2
    tiles = []
    for i in range(b1):
        for j in range(b2):
            if 0 in diag and i != j:
                continue
            xi = x1[i * batch_size : (i + 1) * batch_size]
            xj = None if (x2 is None and i == j) else x2_[j * batch_size : (j + 1) * batch_size]
            tiles.append(_Tile(xi, xj, i, j))
    return tiles


def _assemble(parts: list[Any], tiles: list[_Tile], cfg: _Config, xp: Any) -> Any:
    if len(tiles) == 1:
        return parts[0]
    diag = (cfg.diagonal_axes,) if isinstance(cfg.diagonal_axes, int) else cfg.diagonal_axes
    if 0 in diag:
        return xp.concatenate(parts, axis=0)
    rows: dict[int, list] = collections.defaultdict(list)
    for t, p in zip(tiles, parts, strict=True):
        rows[t.i].append(p)
    return xp.concatenate([xp.concatenate(rows[i], axis=1) for i in sorted(rows)], axis=0)


def _result(
    states: list[dict],
    tiles: list[_Tile],
    get: tuple[str, ...],
    single: bool,
    n: int,
    return_se: bool,
    symmetric: bool,
    cfg: _Config,
    xp: Any,
) -> Any:
    means, ses = {}, {}
    for kind in get:
        means[kind] = _assemble([s[kind][1] for s in states], tiles, cfg, xp)
        if return_se:
            se = [xp.sqrt(s[kind][2] / (n - 1) / n) for s in states]
            ses[kind] = _assemble(se, tiles, cfg, xp)
    if return_se:
        return MonteCarloEstimate(
            nngp=means.get("nngp"),
            ntk=means.get("ntk"),
            nngp_se=ses.get("nngp"),
            ntk_se=ses.get("ntk"),
            n_samples=n,
            get=get,
        )
    if single:
        return means[get[0]]
    return _namedtuple(get)(*(means[g] for g in get))


def empirical_kernel_draws(
    init_fn: InitFn,
    apply_fn: ApplyFn,
    key: Array,
    n_samples: int,
    x1: Array,
    x2: Array | None = None,
    get: str | tuple[str, ...] = _KINDS,
    *,
    trace_axes: Axes = (-1,),
    diagonal_axes: Axes = (),
    vmap_axes: Any = None,
    implementation: int | NtkImplementation = DEFAULT_NTK_IMPLEMENTATION,
    chunk_size: int | None = None,
    progress: bool = False,
    **apply_fn_kwargs: Any,
) -> dict[str, Array]:
    """The per-draw empirical kernels behind :func:`monte_carlo_kernel_fn`.

    Same draws (draw ``i`` uses ``fold_in(key, i)``) and conventions. Returns
    ``{kind: (n_samples, *kernel_shape)}`` for each kind in ``get``; memory grows
    with ``n_samples``, so this is for small kernels (limit checks, resampling
    statistics) where the mean and standard error are not enough.
    """
    single, get_t = _canonical_get(get)
    del single
    counts, generator = _canonical_n_samples(n_samples)
    if generator:
        raise ValueError("`n_samples` must be an integer here.")
    n = counts[0]
    impl = NtkImplementation(int(implementation))
    engine = _engine(init_fn, apply_fn, _Config(trace_axes, diagonal_axes, vmap_axes, impl))
    mask_constant = apply_fn_kwargs.get("mask_constant")
    x1 = _check_input(x1, "x1", mask_constant)
    if x2 is not None:
        x2 = _check_input(x2, "x2", mask_constant)
    if chunk_size is None:
        chunk_size = engine.draws_per_chunk(x1, x2, apply_fn_kwargs, get_t)
    n_chunks = math.ceil(n / min(chunk_size, n))
    size = math.ceil(n / n_chunks)
    out: dict[str, list] = {k: [] for k in get_t}
    for c in tqdm(range(n_chunks), disable=not progress, desc="MC chunks"):
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(c * size, (c + 1) * size))
        draws = engine.chunk(keys, x1, x2, apply_fn_kwargs, get_t)
        for k in get_t:
            out[k].append(draws[k])
    res = {k: jnp.concatenate(v)[:n] for k, v in out.items()}
    for k, v in res.items():
        if not bool(jnp.all(jnp.isfinite(v))):
            raise ValueError(
                f"`apply_fn` produced non-finite (NaN/inf) {k} draws; check "
                "`x1`/`x2`, `mask_constant` and the model."
            )
    return res
