"""Finite networks trained by full-batch gradient descent on MSE, over an ensemble.

:func:`gradient_descent` trains ``n_models`` independent initialisations of an
``infattn.stax`` model (NTK parameterisation) at once (``jax.vmap``) on the loss
``||f(x_train) - y_train||^2 / (2 n)``, ``n = y_train.size``, the loss whose
gradient flow :func:`infattn.predict.gradient_descent_mse` predicts, and records
train/test outputs and losses every ``record_every`` steps, so a wide network's
training curve can be put next to the NTK's prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = Any


class Trajectory(NamedTuple):
    """Recorded training: ``steps`` ``(T,)``; outputs ``(T, M, N, K)``; losses ``(T, M)``."""

    steps: Array
    fx_train: Array
    fx_test: Array
    train_loss: Array
    test_loss: Array


def mse(fx: Array, y: Array) -> Array:
    """``||fx - y||^2 / (2 y.size)`` over the last ``y.ndim`` axes.

    Example:
      >>> float(mse(jnp.array([[1.0], [3.0]]), jnp.array([[0.0], [1.0]])))
      1.25
    """
    axes = tuple(range(fx.ndim - y.ndim, fx.ndim))
    return jnp.sum((fx - y) ** 2, axis=axes) / (2 * y.size)


def gradient_descent(
    init_fn: Callable,
    apply_fn: Callable,
    key: Array,
    x_train: Array,
    y_train: Array,
    x_test: Array,
    y_test: Array,
    *,
    learning_rate: float,
    steps: int,
    n_models: int = 1,
    record_every: int = 1,
    apply_kwargs: dict | None = None,
) -> Trajectory:
    """Train ``n_models`` initialisations for ``steps`` steps of full-batch GD.

    Records at steps ``0, record_every, ...`` up to ``steps`` (``steps`` must be a
    multiple of ``record_every``). ``x_train``: ``(N, ...)``; ``y_train``: ``(N, K)``.

    Example:
      >>> from infattn import stax
      >>> init_fn, apply_fn, _ = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
      >>> x, y = jnp.ones((3, 2)), jnp.ones((3, 1))
      >>> tr = gradient_descent(init_fn, apply_fn, jax.random.PRNGKey(0), x, y, x, y,
      ...                       learning_rate=0.5, steps=4, n_models=2, record_every=2)
      >>> tr.fx_train.shape, tr.train_loss.shape
      ((3, 2, 3, 1), (3, 2))
    """
    if steps % record_every:
        raise ValueError(f"steps: expected a multiple of record_every={record_every}, got {steps}")
    kw = apply_kwargs or {}
    x_train, y_train = jnp.asarray(x_train), jnp.asarray(y_train)
    x_test, y_test = jnp.asarray(x_test), jnp.asarray(y_test)
    keys = jax.random.split(key, n_models)
    params = jax.vmap(lambda k: init_fn(k, x_train.shape)[1])(keys)

    def step(p: Any, _: None) -> tuple[Any, None]:
        grads = jax.grad(lambda q: mse(apply_fn(q, x_train, **kw), y_train))(p)
        return jax.tree_util.tree_map(lambda a, g: a - learning_rate * g, p, grads), None

    def record(p: Any) -> tuple[Array, Array]:
        return apply_fn(p, x_train, **kw), apply_fn(p, x_test, **kw)

    def chunk(p: Any, _: None) -> tuple[Any, tuple[Array, Array]]:
        p = jax.lax.scan(step, p, None, length=record_every)[0]
        return p, record(p)

    def one(p: Any) -> tuple[Array, Array]:
        first = record(p)
        rest = jax.lax.scan(chunk, p, None, length=steps // record_every)[1]
        return tuple(jnp.concatenate([f[None], r]) for f, r in zip(first, rest, strict=True))

    fx_train, fx_test = jax.jit(jax.vmap(one))(params)  # (M, T, N, K)
    fx_train, fx_test = jnp.swapaxes(fx_train, 0, 1), jnp.swapaxes(fx_test, 0, 1)
    return Trajectory(
        steps=jnp.arange(0, steps + 1, record_every),
        fx_train=fx_train,
        fx_test=fx_test,
        train_loss=mse(fx_train, y_train),
        test_loss=mse(fx_test, y_test),
    )
