"""Inference with infinite-width kernels: a drop-in for ``neural_tangents.predict``.

``from infattn import predict`` offers neural-tangents 0.6.5's functions with the
same names, arguments, defaults and return types:

* :func:`gp_inference`: the exact posterior of the NNGP (a Bayesian network of
  infinite width), of the NTK (an infinite ensemble of infinitely wide networks
  trained to convergence by gradient flow on MSE) and of the NTK-GP.
* :func:`gradient_descent_mse`: the outputs of a linearised network trained by
  gradient flow on ``1 / (2 n) ||f(x_train) - y_train||^2`` (``n = y_train.size``)
  at times ``t`` (``t = None``: converged), given its kernel and initial outputs.
* :func:`gradient_descent_mse_ensemble`: the mean (and covariance) of the outputs
  of the infinite ensemble over initialisations at times ``t``, from a ``kernel_fn``.
* :func:`max_learning_rate`: the largest stable gradient-descent step.
* :func:`gradient_descent` and :class:`ODEState`: training on any loss (with or
  without momentum) by an ODE solver, from :mod:`infattn.ode`.

Kernels ``(N1, N2, *B)`` are interleaved as in :mod:`infattn.kernel` and traced
over ``trace_axes`` of the outputs (see :mod:`infattn.linalg`). Converged
predictions solve with a Cholesky factorisation, finite times with an
eigendecomposition of the train kernel, both in the kernel's dtype and computed
once per predictor. A numerically singular train kernel gets escalating jitter
with a warning (:func:`infattn.linalg.cholesky`).

Beyond neural-tangents: a zero eigenvalue of the train kernel contributes nothing
at finite time (neural-tangents returns NaN there); ``gradient_descent`` refuses
``t=None`` (neural-tangents then integrates towards infinity and does not return).
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from infattn import linalg
from infattn.linalg import Outputs, flatten_kernel, zip_square
from infattn.ode import ODEState as ODEState  # re-exported: neural-tangents names
from infattn.ode import gradient_descent as gradient_descent

Array = jax.Array
Get = str | Sequence[str] | None


class Gaussian(NamedTuple):
    """A ``(mean, covariance)`` pair.

    ``mean`` has the shape of the outputs; ``covariance`` that of the test-test
    kernel (interleaved, trace axes absent), with any leading time axes of both.
    """

    mean: Array
    covariance: Array


# --------------------------------------------------------------------------- get and kernels


def _canonical_get(get: Get, allowed: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """``(names, single)``: lower-case unique names, and whether ``get`` was one string."""
    if get is None:
        return ("nngp", "ntk"), False
    single = isinstance(get, str)
    names = (get,) if single else tuple(get)
    if not names:
        raise ValueError("get: must be non-empty")
    names = tuple(str(g).lower() for g in names)
    if len(set(names)) < len(names):
        raise ValueError(f"get: entries must be unique, got {names}")
    for g in names:
        if g not in allowed:
            raise NotImplementedError(f"get: {g!r} is not supported; expected one of {allowed}")
    return names, single


@functools.lru_cache(maxsize=16)
def _gaussians(names: tuple[str, ...]) -> type:
    return collections.namedtuple("Gaussians", names)


def _format(out: dict[str, Any], names: tuple[str, ...], single: bool) -> Any:
    """One value for a string ``get``, else a ``Gaussians`` namedtuple in ``get``'s order."""
    if single:
        return out[names[0]]
    return _gaussians(names)(*(out[g] for g in names))


def _entry(k: Any, g: str, name: str) -> Array:
    """Kernel ``g`` of ``k``: an array is every kernel, else ``k.nngp`` / ``k.ntk``."""
    if isinstance(k, np.ndarray | jax.Array):
        return jnp.asarray(k)
    value = getattr(k, g, None)
    if value is None:
        raise ValueError(f"{name}: has no {g!r} kernel; compute it with get including {g!r}")
    return jnp.asarray(value)


def _has(k: Any, g: str) -> bool:
    return not isinstance(k, np.ndarray | jax.Array) and getattr(k, g, None) is not None


def _first(k: Any) -> Array:
    """The first of ``nngp``, ``ntk`` present in ``k`` (or ``k`` itself)."""
    for g in ("nngp", "ntk"):
        if isinstance(k, np.ndarray | jax.Array) or _has(k, g):
            return _entry(k, g, "kernel")
    raise ValueError("kernel: has neither an 'nngp' nor an 'ntk' kernel")


# --------------------------------------------------------------------------- GP posterior


def _cho_solver(k_dd: Array, diag_reg: float, absolute: bool) -> Callable[[Array], Array]:
    """``b -> (K + reg I)^{-1} b`` for a flat train kernel, factorised once."""
    factor = linalg.cholesky(linalg.regularize(flatten_kernel(k_dd), diag_reg, absolute))
    return lambda b: linalg.cho_solve(factor, b)


def gp_inference(
    k_train_train: Any,
    y_train: Array,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes: int | Sequence[int] = (-1,),
) -> Callable[..., Any]:
    """The posterior of the NNGP, the NTK (trained to convergence) and the NTK-GP.

    ``k_train_train``: ``(N, N, *B)`` array, or a ``Kernel`` / namedtuple with
    ``nngp`` and/or ``ntk``; ``y_train``: ``(N, *B, K)`` targets (with
    ``trace_axes=(-1,)``). ``diag_reg`` adds ``diag_reg * mean(diag K)`` (or
    ``diag_reg`` with ``diag_reg_absolute_scale``) to the train kernel's diagonal.

    Returns ``predict_fn(get=None, k_test_train=None, k_test_test=None)``: ``get``
    in ``"nngp"``, ``"ntk"``, ``"ntkgp"`` or a tuple (``None``: nngp and ntk);
    ``k_test_train`` ``(M, N, *B)`` (``None``: the train set, whose outputs are
    ``y_train`` with zero covariance); with ``k_test_test`` ``(M, M, *B)`` (the
    NNGP; the NTK for ntkgp) it returns :class:`Gaussian` ``(mean, covariance)``,
    else the mean ``(M, *B, K)``. The NTK covariance needs the ``nngp`` of both
    ``k_train_train`` and ``k_test_train``. One value for a string ``get``, a
    ``Gaussians`` namedtuple for a tuple.

    Example:
      >>> k = jnp.array([[2.0, 1.0], [1.0, 2.0]])
      >>> predict_fn = gp_inference(k, jnp.array([[1.0], [-1.0]]))
      >>> predict_fn("nngp", jnp.array([[1.0, 0.0]])).round(4).tolist()
      [[1.0]]
    """
    y_train = jnp.asarray(y_train)
    outputs = Outputs.of(y_train, trace_axes)
    y_flat = outputs.flatten(y_train)

    @functools.cache
    def solve(g: str) -> Callable[[Array], Array]:
        k_dd = _entry(k_train_train, g, "k_train_train")
        return _cho_solver(k_dd, diag_reg, diag_reg_absolute_scale)

    @functools.cache
    def k_inv_y(g: str) -> Array:
        return solve(g)(y_flat)

    def posterior(g: str, k_test_train: Any, k_test_test: Any) -> Any:
        k = "ntk" if g == "ntkgp" else g
        k_dd = _entry(k_train_train, k, "k_train_train")
        if k_test_train is None:
            mean = y_train.astype(k_dd.dtype)
            return mean if k_test_test is None else Gaussian(mean, jnp.zeros_like(k_dd))
        k_td = _entry(k_test_train, k, "k_test_train")
        batch = k_td.shape[::2]
        k_td = flatten_kernel(k_td)
        mean = outputs.unflatten(k_td @ k_inv_y(k), batch)
        if k_test_test is None:
            return mean
        prior = "ntk" if g == "ntkgp" else "nngp"
        k_tt = flatten_kernel(_entry(k_test_test, prior, "k_test_test"))
        if g != "ntk":
            cov = k_tt - k_td @ solve(k)(k_td.T)
        else:
            if not (_has(k_train_train, "nngp") and _has(k_test_train, "nngp")):
                raise ValueError(
                    "the NTK posterior covariance needs both the NTK and the NNGP in "
                    "k_train_train and k_test_train: pass kernels with nngp and ntk"
                )
            nngp_td = flatten_kernel(_entry(k_test_train, "nngp", "k_test_train"))
            nngp_dd = flatten_kernel(_entry(k_train_train, "nngp", "k_train_train"))
            a = solve("ntk")(k_td.T)  # Theta^{-1} Theta_dt: (N, M)
            cross = k_td @ solve("ntk")(nngp_td.T)  # Theta_td Theta^{-1} K_dt
            cov = k_tt + a.T @ nngp_dd @ a - cross - cross.T
        return Gaussian(mean, zip_square(cov, batch))

    def predict_fn(get: Get = None, k_test_train: Any = None, k_test_test: Any = None) -> Any:
        names, single = _canonical_get(get, ("nngp", "ntk", "ntkgp"))
        out = {g: posterior(g, k_test_train, k_test_test) for g in names}
        return _format(out, names, single)

    return predict_fn


# --------------------------------------------------------------------------- one network


def gradient_descent_mse(
    k_train_train: Array,
    y_train: Array,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes: int | Sequence[int] = (-1,),
) -> Callable[..., Any]:
    """Outputs of a linearised network trained by gradient flow on MSE.

    Training minimises ``||f(x_train) - y_train||^2 / (2 n)`` with ``n =
    y_train.size``; time ``t`` counts steps of ``learning_rate``. ``k_train_train``:
    ``(N, N, *B)`` (the network's NTK, trace axes absent); ``y_train``: ``(N, *B, K)``.

    Returns ``predict_fn(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None)``
    giving ``fx_train_t`` (``fx_test_0=None``), ``fx_test_t`` (``fx_train_0=None``)
    or both, with leading axes ``t.shape``; ``t=None`` is converged training. The
    train outputs at ``t=None`` are ``y_train`` (unregularised).

    Example:
      >>> predict_fn = gradient_descent_mse(jnp.eye(2), jnp.array([[1.0], [3.0]]))
      >>> predict_fn(t=jnp.inf, fx_train_0=jnp.zeros((2, 1))).ravel().tolist()
      [1.0, 3.0]
    """
    y_train = jnp.asarray(y_train)
    outputs = Outputs.of(y_train, trace_axes)
    flow = _Flow(jnp.asarray(k_train_train), y_train, outputs, diag_reg, diag_reg_absolute_scale)

    def predict_fn(
        t: Any = None,
        fx_train_0: Any = 0.0,
        fx_test_0: Any = None,
        k_test_train: Array | None = None,
    ) -> Any:
        if fx_train_0 is None and fx_test_0 is None:
            raise ValueError("fx_train_0 and fx_test_0 are both None: nothing to predict")
        if fx_test_0 is not None and k_test_train is None:
            raise ValueError("fx_test_0: test predictions need k_test_train")
        if t is None:
            return flow.converged(fx_train_0, fx_test_0, k_test_train)
        return flow.at_times(jnp.asarray(t) * learning_rate, fx_train_0, fx_test_0, k_test_train)

    return predict_fn


class _Flow:
    """Gradient flow of one linearised network: the regularised train NTK
    ``(N, N, *B)`` flattened, factorised on first use (Cholesky for converged
    training, eigendecomposition for finite times) and kept for later calls."""

    def __init__(
        self,
        k_train_train: Array,
        y_train: Array,
        outputs: Outputs,
        diag_reg: float,
        absolute: bool,
    ) -> None:
        self.k, self.y, self.outputs = k_train_train, y_train, outputs
        self.flat = linalg.regularize(flatten_kernel(k_train_train), diag_reg, absolute)

    @functools.cached_property
    def solve(self) -> Callable[[Array], Array]:
        factor = linalg.cholesky(self.flat)
        return lambda b: linalg.cho_solve(factor, b)

    @functools.cached_property
    def eigen(self) -> tuple[Array, Array]:
        return linalg.spectrum(self.flat)

    def converged(self, fx_train_0: Any, fx_test_0: Any, k_test_train: Any) -> Any:
        fx_train = self.y.astype(self.k.dtype)
        if fx_test_0 is None:
            return fx_train
        residual = self.y if fx_train_0 is None else self.y - fx_train_0
        k_td = jnp.asarray(k_test_train)
        delta = flatten_kernel(k_td) @ self.solve(self.outputs.flatten(residual))
        fx_test = fx_test_0 + self.outputs.unflatten(delta, k_td.shape[::2])
        return fx_test if fx_train_0 is None else (fx_train, fx_test)

    def at_times(self, t: Array, fx_train_0: Any, fx_test_0: Any, k_test_train: Any) -> Any:
        lead, s, out = t.shape, t.reshape(-1) / self.y.size, []
        residual = -self.y if fx_train_0 is None else fx_train_0 - self.y
        evals, evecs = self.eigen
        r_eig = evecs.T @ self.outputs.flatten(residual)  # (n, c)
        if fx_train_0 is not None:
            delta = jnp.einsum("ji,ti,ic->tjc", evecs, linalg.decay(evals, s), r_eig)
            batch = self.k.shape[::2]
            out.append(_expand(fx_train_0, lead) + self.outputs.unflatten(delta, batch, lead))
        if fx_test_0 is not None:
            k_td = jnp.asarray(k_test_train)
            coef = jnp.einsum("ji,ti,ic->tjc", evecs, linalg.decay_over_eval(evals, s), r_eig)
            delta = jnp.einsum("mj,tjc->tmc", flatten_kernel(k_td), coef)
            out.append(
                _expand(fx_test_0, lead) + self.outputs.unflatten(delta, k_td.shape[::2], lead)
            )
        return tuple(out) if len(out) == 2 else out[0]


def _expand(f0: Any, lead: tuple[int, ...]) -> Array:
    """Initial outputs with ``len(lead)`` leading singleton axes (broadcast over times)."""
    f0 = jnp.asarray(f0)
    return f0.reshape((1,) * len(lead) + f0.shape)


# --------------------------------------------------------------------------- infinite ensemble


class KernelPair(NamedTuple):
    """An NNGP and an NTK array (either may be ``None``): a ``k_*`` argument of
    :func:`gp_inference` built from arrays, not a :class:`~infattn.kernel.Kernel`."""

    nngp: Array | None = None
    ntk: Array | None = None


def _dependency(names: tuple[str, ...], compute_cov: bool) -> tuple[str, ...]:
    """Kernels needed: the NTK covariance also needs the NNGP (the prior at initialisation)."""
    nngp = "nngp" in names or (compute_cov and "ntk" in names)
    return ("nngp",) * nngp + ("ntk",) * ("ntk" in names)


def _merge_kwargs(train: dict[str, Any], test: dict[str, Any]) -> tuple[dict, dict]:
    """Keyword arguments of ``kernel_fn`` for the test-train and test-test kernels."""
    for key, value in test.items():
        if isinstance(value, np.ndarray | jax.Array | tuple):
            raise NotImplementedError(
                f"{key}: array-valued kernel_fn arguments are not supported by "
                "gradient_descent_mse_ensemble"
            )
        if key in train and train[key] != value:
            raise ValueError(
                f"{key}: kernel_fn gets {train[key]!r} for the train set and {value!r} for "
                "the test set; the test-train kernel needs one value"
            )
    merged = {**train, **test}
    return merged, merged


def gradient_descent_mse_ensemble(
    kernel_fn: Callable[..., Any],
    x_train: Array,
    y_train: Array,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes: int | Sequence[int] = (-1,),
    **kernel_fn_train_train_kwargs: Any,
) -> Callable[..., Any]:
    """Mean and covariance of an infinite ensemble of infinitely wide networks trained on MSE.

    Networks start at their random initialisation (mean 0, covariance the NNGP)
    and follow gradient flow on ``||f(x_train) - y_train||^2 / (2 n)``
    (``n = y_train.size``) for time ``t`` (in steps of ``learning_rate``).
    ``kernel_fn(x1, x2, get, **kwargs)`` gives the kernels (e.g. an
    ``infattn.stax`` model's, with ``mask_constant=`` passed through kwargs).

    Returns ``predict_fn(t=None, x_test=None, get=None, compute_cov=False,
    **kernel_fn_test_test_kwargs)``: ``get`` ``"nngp"`` (Bayesian posterior when
    ``t=None``), ``"ntk"`` (trained networks) or both; ``x_test=None`` predicts the
    train set. Returns the mean ``(*t.shape, M, *B, K)``, or with ``compute_cov``
    :class:`Gaussian` ``(mean, covariance (*t.shape, M, M, *B))``.

    Example:
      >>> from infattn import stax
      >>> _, _, kernel_fn = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> predict_fn = gradient_descent_mse_ensemble(kernel_fn, x, jnp.array([[1.0], [-1.0]]))
      >>> predict_fn(t=None, x_test=x, get="ntk").round(6).ravel().tolist()
      [1.0, -1.0]
    """
    y_train = jnp.asarray(y_train)
    outputs = Outputs.of(y_train, trace_axes)
    reg = (diag_reg, diag_reg_absolute_scale)
    train = _TrainKernels(kernel_fn, x_train, kernel_fn_train_train_kwargs, reg)

    @functools.cache
    def converged(needed: tuple[str, ...]) -> Callable[..., Any]:
        return gp_inference(train(needed), y_train, *reg, trace_axes)

    def predict_fn(
        t: Any = None,
        x_test: Array | None = None,
        get: Get = None,
        compute_cov: bool = False,
        **kernel_fn_test_test_kwargs: Any,
    ) -> Any:
        names, single = _canonical_get(get, ("nngp", "ntk"))
        needed = _dependency(names, compute_cov)
        kw_td, kw_tt = _merge_kwargs(kernel_fn_train_train_kwargs, kernel_fn_test_test_kwargs)
        k_dd = train(needed)
        if x_test is None:
            k_td, nngp_tt = None, (True if compute_cov else None)
        else:
            k_td = kernel_fn(x_test, x_train, needed, **kw_td)
            nngp_tt = kernel_fn(x_test, None, "nngp", **kw_tt) if compute_cov else None
        if t is None:
            return converged(needed)(get=get, k_test_train=k_td, k_test_test=nngp_tt)
        t = jnp.asarray(t) * learning_rate
        flows = {g: _EnsembleFlow(g, train.spectrum(g), y_train, outputs) for g in names}
        out = {g: flow.at(t, k_dd, k_td, nngp_tt) for g, flow in flows.items()}
        return _format(out, names, single)

    return predict_fn


class _TrainKernels:
    """The train-train kernels of an ensemble predictor, computed once per name (only
    those asked for), and their regularised spectra, kept across calls."""

    def __init__(
        self, kernel_fn: Callable[..., Any], x_train: Array, kwargs: dict, reg: tuple[float, bool]
    ) -> None:
        self.kernel_fn, self.x_train, self.kwargs, self.reg = kernel_fn, x_train, kwargs, reg
        self.cache: dict[str, Array] = {}
        self.spectra: dict[str, tuple[Array, Array]] = {}

    def __call__(self, needed: tuple[str, ...]) -> KernelPair:
        missing = tuple(g for g in needed if g not in self.cache)
        if missing:
            k = self.kernel_fn(self.x_train, None, missing, **self.kwargs)
            self.cache.update({g: _entry(k, g, "kernel_fn(x_train)") for g in missing})
        return KernelPair(**{g: self.cache[g] for g in needed})

    def spectrum(self, g: str) -> tuple[Array, Array]:
        if g not in self.spectra:
            flat = linalg.regularize(flatten_kernel(self.cache[g]), *self.reg)
            self.spectra[g] = linalg.spectrum(flat)
        return self.spectra[g]


class _EnsembleFlow(NamedTuple):
    """Mean (and covariance) at times ``t`` of the ensemble trained with kernel ``g``
    (``"nngp"`` or ``"ntk"``), given that kernel's regularised train spectrum."""

    g: str
    spectrum: tuple[Array, Array]
    y_train: Array
    outputs: Outputs

    def at(self, t: Array, k_dd: KernelPair, k_td: Any, nngp_tt: Any) -> Any:
        g, outputs = self.g, self.outputs
        s = t.reshape(-1) / self.y_train.size
        evals, evecs = self.spectrum
        ktd = None if k_td is None else flatten_kernel(_entry(k_td, g, "kernel_fn(x_test)"))
        batch = (getattr(k_dd, g) if k_td is None else _first(k_td)).shape[::2]
        y_flat = outputs.flatten(self.y_train)
        mean = outputs.unflatten(_ensemble_mean(evals, evecs, s, y_flat, ktd), batch, t.shape)
        if nngp_tt is None:
            return mean
        nngp_dd = flatten_kernel(k_dd.nngp)
        if ktd is None:
            cov = _train_cov(g, evals, evecs, s, nngp_dd)
        else:
            nngp_td = flatten_kernel(_entry(k_td, "nngp", "kernel_fn(x_test)"))
            cov = _test_cov(g, evals, evecs, s, nngp_dd, ktd, nngp_td, flatten_kernel(nngp_tt))
        return Gaussian(mean, zip_square(cov, batch, lead=t.ndim))


def _ensemble_mean(evals: Array, evecs: Array, s: Array, y: Array, ktd: Array | None) -> Array:
    """Mean outputs ``(T, rows, c)`` at times ``s`` (``(T,)``, in units of ``n``).

    ``evals``, ``evecs``: the train kernel's spectrum; ``y``: ``(n, c)`` targets;
    ``ktd``: ``(M, n)`` test-train kernel, or ``None`` for the train set.
    """
    coef = evecs.T @ y
    if ktd is None:
        return jnp.einsum("ji,ti,ic->tjc", evecs, -linalg.decay(evals, s), coef)
    weights = -linalg.decay_over_eval(evals, s)
    return jnp.einsum("mj,ji,ti,ic->tmc", ktd, evecs, weights, coef)


def _train_cov(g: str, evals: Array, evecs: Array, s: Array, nngp_dd: Array) -> Array:
    """Covariance ``(T, n, n)`` of the train outputs: initial NNGP pushed through training."""
    stay = 1.0 + linalg.decay(evals, s)  # e^{-lambda s}
    if g == "nngp":
        return jnp.einsum("ji,ti,ki->tjk", evecs, evals * (1.0 + linalg.decay(evals, 2 * s)), evecs)
    e = jnp.einsum("ji,ti,ki->tjk", evecs, stay, evecs)
    return e @ nngp_dd @ e


def _test_cov(
    g: str,
    evals: Array,
    evecs: Array,
    s: Array,
    nngp_dd: Array,
    ktd: Array,
    nngp_td: Array,
    nngp_tt: Array,
) -> Array:
    """Covariance ``(T, M, M)`` of the test outputs (flat kernels, ``ktd`` of kernel ``g``)."""
    p = evecs.T @ ktd.T  # (n, M): the test-train kernel in the train eigenbasis
    if g == "nngp":
        gain = -linalg.decay_over_eval(evals, 2 * s)
        return nngp_tt[None] - jnp.einsum("im,ti,il->tml", p, gain, p)
    a = jnp.einsum("ji,ti,im->tjm", evecs, -linalg.decay_over_eval(evals, s), p)  # (T, n, M)
    cross = jnp.swapaxes(a, 1, 2) @ nngp_td.T  # Theta_td Theta^{-1}(1 - e^{-Theta s}) K_dt
    return jnp.swapaxes(a, 1, 2) @ nngp_dd @ a - cross - jnp.swapaxes(cross, 1, 2) + nngp_tt[None]


def max_learning_rate(
    ntk_train_train: Array,
    y_train_size: int | None = None,
    momentum: float = 0.0,
    eps: float = 1e-12,
) -> float:
    """The largest learning rate at which gradient descent on MSE converges (wide networks).

    For the loss ``||f - y||^2 / (2 n)`` (``n = y_train_size``; default: the flat
    kernel's size, i.e. ``trace_axes=()``) one step multiplies the train residual
    by ``I - lr * Theta / n``, a contraction iff ``lr < 2 n / lambda_max(Theta)``;
    heavy-ball momentum ``m`` allows ``(1 + m)`` times more.

    Example:
      >>> max_learning_rate(jnp.diag(jnp.array([1.0, 4.0])), eps=0.0)
      1.0
    """
    flat = flatten_kernel(ntk_train_train)
    n = flat.shape[0] if y_train_size is None else y_train_size
    top = float(jnp.linalg.eigvalsh(flat)[-1])
    return 2 * (1 + momentum) * n / (top + eps)
