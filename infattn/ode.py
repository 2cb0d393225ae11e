"""Function-space gradient descent on any loss, by an ODE solver.

A network linearised around its initialisation moves its outputs on the training set
``f`` along ``df/dt = -K grad_f loss(f, y)`` under gradient flow (``K``: its NTK on
the training set), and its outputs on other inputs along ``df*/dt = -K*
grad_f loss(f, y)`` (``K*``: test-train NTK). For the MSE loss this linear ODE has
the closed form of :func:`infattn.predict.gradient_descent_mse`; for any other loss
(cross-entropy, hinge, ...) :func:`gradient_descent` integrates it with JAX's
adaptive Dormand-Prince solver (``jax.experimental.ode.odeint``).

Gradient descent with momentum ``m`` and step ``eta`` (``v <- m v - eta K g``,
``f <- f + v``) is integrated as its continuous-time limit in units of ``sqrt(eta)``:
with ``q = v / sqrt(eta)`` and ``tau = sqrt(eta) * steps``,
``df/dtau = q`` and ``dq/dtau = -K g - (1 - m) / sqrt(eta) q``. The state then also
holds ``q`` (the ``qx_*`` fields of :class:`ODEState`).

Kernels are interleaved ``(N1, N2, *B)`` with the outputs' ``trace_axes`` absent
(``K (x) I`` along them), as in :mod:`infattn.predict`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.ode import odeint

from infattn.linalg import Outputs, flatten_kernel

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class ODEState:
    """The state of function-space gradient descent: outputs and momenta.

    ``fx_train`` ``(N, ...)`` and ``fx_test`` ``(M, ...)`` are the outputs on the
    training and test inputs; ``qx_train``, ``qx_test`` their momenta (only with
    ``momentum``). ``None`` leaves a field out.

    Example:
      >>> ODEState(jnp.zeros((2, 1))).fx_test is None
      True
    """

    fx_train: Any = None
    fx_test: Any = None
    qx_train: Any = None
    qx_test: Any = None


jax.tree_util.register_dataclass(
    ODEState, data_fields=["fx_train", "fx_test", "qx_train", "qx_test"], meta_fields=[]
)


def gradient_descent(
    loss: Callable[[Array, Array], Any],
    k_train_train: Array,
    y_train: Array,
    learning_rate: float = 1.0,
    momentum: float | None = None,
    trace_axes: int | Sequence[int] = (-1,),
) -> Callable[..., Any]:
    """Outputs of a linearised network trained by gradient descent on ``loss``.

    ``loss(fx_train, y_train)`` is a scalar; ``k_train_train`` ``(N, N, *B)`` the NTK
    (trace axes absent); ``y_train`` ``(N, *B, K)``. Time ``t`` counts steps of
    ``learning_rate`` (with ``momentum``: the solver runs in units of
    ``sqrt(learning_rate)``, see the module doc).

    Returns ``predict_fn(t, fx_train_or_state_0=0., fx_test_0=None,
    k_test_train=None)``: ``fx_train_t``, ``fx_test_t`` (``fx_train_or_state_0=None``)
    or both, with leading axes ``t.shape`` (``t``: strictly increasing times); given
    an :class:`ODEState` it returns the ``ODEState`` at ``t``. Unlike
    :func:`infattn.predict.gradient_descent_mse`, ``t`` must be finite: a general
    loss need not converge, and integrating to infinity would not end.

    Example:
      >>> mse = lambda fx, y: 0.5 * jnp.mean((fx - y) ** 2)
      >>> k, y = jnp.eye(2), jnp.array([[1.0], [3.0]])
      >>> predict_fn = gradient_descent(mse, k, y)
      >>> fx = predict_fn(jnp.array([2.0]), jnp.zeros((2, 1)))  # f = y (1 - exp(-t / 2))
      >>> [round(v, 6) for v in fx.ravel().tolist()]
      [0.632121, 1.896362]
    """
    y_train = jnp.asarray(y_train)
    k_dd = jnp.asarray(k_train_train)
    outputs = Outputs.of(y_train, trace_axes)
    rows = y_train.size // math.prod(outputs.trace_shape)
    if flatten_kernel(k_dd).shape != (rows, rows):
        raise ValueError(
            f"k_train_train: expected the NTK of y_train's {rows} untraced entries, "
            f"interleaved (N, N, ...), got shape {k_dd.shape} for y_train {y_train.shape}"
        )
    grad_loss = jax.grad(lambda fx: loss(fx, y_train))
    scale = learning_rate if momentum is None else learning_rate**0.5
    friction = None if momentum is None else (1.0 - momentum) / scale

    def pull(k: Array, g: Array) -> Array:
        """``-K g`` for a kernel ``(M, N, ...)`` and flat loss gradients ``(rows, c)``."""
        return -outputs.unflatten(flatten_kernel(k) @ g, k.shape[::2])

    def velocity(k_td: Array | None) -> Callable[[ODEState, Array], ODEState]:
        def dstate(state: ODEState, _: Array) -> ODEState:
            g = outputs.flatten(grad_loss(state.fx_train))
            d_train = pull(k_dd, g)
            d_test = None if state.fx_test is None else pull(k_td, g)
            if friction is None:
                return ODEState(d_train, d_test)
            d_train = d_train - friction * state.qx_train
            if d_test is not None:
                d_test = d_test - friction * state.qx_test
            return ODEState(state.qx_train, state.qx_test, d_train, d_test)

        return dstate

    def predict_fn(
        t: Any = None,
        fx_train_or_state_0: Any = 0.0,
        fx_test_0: Any = None,
        k_test_train: Array | None = None,
    ) -> Any:
        as_state = isinstance(fx_train_or_state_0, ODEState)
        state = _initial_state(
            fx_train_or_state_0, fx_test_0, k_test_train, y_train, outputs, momentum, k_dd.dtype
        )
        times = _times(t, k_dd.dtype) * scale
        path = odeint(velocity(k_test_train), state, _from_zero(times.reshape(-1)))
        path = jax.tree.map(lambda a: a[1:].reshape(times.shape + a.shape[1:]), path)
        if as_state:
            return path
        if fx_train_or_state_0 is None:
            return path.fx_test
        return path.fx_train if fx_test_0 is None else (path.fx_train, path.fx_test)

    return predict_fn


def _times(t: Any, dtype: Any) -> Array:
    """``t`` as an array; finite, strictly increasing where it can be checked."""
    if t is None:
        raise ValueError(
            "t: gradient_descent integrates to finite times only (t=None means infinite "
            "time); pass the times, or use predict.gradient_descent_mse for converged MSE"
        )
    times = jnp.asarray(t, dtype)
    if not isinstance(times, jax.core.Tracer):
        flat = np.asarray(times).reshape(-1)
        increasing = flat.size > 0 and np.all(np.diff(flat) > 0)
        if not (increasing and np.all(np.isfinite(flat)) and flat[0] >= 0):
            raise ValueError(f"t: expected finite, non-negative, increasing times, got {t!r}")
    return times


def _from_zero(times: Array) -> Array:
    """Prepend the initial time: 0, or just below 0 when the first time asked is 0."""
    start = jnp.where(times[0] == 0, -1e-24, 0.0).astype(times.dtype)
    return jnp.concatenate([start[None], times])


def _initial_state(
    fx_train_or_state_0: Any,
    fx_test_0: Any,
    k_test_train: Array | None,
    y_train: Array,
    outputs: Outputs,
    momentum: float | None,
    k_dtype: Any,
) -> ODEState:
    """The state at ``t = 0``: missing outputs are zero, missing momenta too."""
    if isinstance(fx_train_or_state_0, ODEState):
        if fx_test_0 is not None:
            raise ValueError("fx_test_0: must be None when an ODEState is given (it holds fx_test)")
        s = fx_train_or_state_0
    else:
        s = ODEState(fx_train_or_state_0, fx_test_0)
    if s.fx_train is None and s.fx_test is None:
        raise ValueError("fx_train_0 and fx_test_0 are both None: nothing to predict")
    if s.fx_test is not None and k_test_train is None:
        raise ValueError("k_test_train: test predictions need the test-train kernel")
    if momentum is None and (s.qx_train is not None or s.qx_test is not None):
        raise ValueError("momentum: the state holds momenta (qx_*) but momentum is None")
    dtype = k_dtype

    def fill(value: Any, shape: tuple[int, ...]) -> Array:
        return jnp.zeros(shape, dtype) if value is None else jnp.broadcast_to(value, shape)

    fx_train = fill(s.fx_train, y_train.shape)
    fx_test = None
    if s.fx_test is not None:
        batch = jnp.shape(k_test_train)[::2]
        flat = jax.ShapeDtypeStruct((math.prod(batch), math.prod(outputs.trace_shape)), dtype)
        shape = jax.eval_shape(lambda f: outputs.unflatten(f, batch), flat).shape
        fx_test = fill(s.fx_test, shape)
    if momentum is None:
        return ODEState(fx_train, fx_test)
    qx_test = None if fx_test is None else fill(s.qx_test, fx_test.shape)
    return ODEState(fx_train, fx_test, fill(s.qx_train, y_train.shape), qx_test)
