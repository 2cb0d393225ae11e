"""Finite networks trained by full-batch gradient descent on MSE, over an ensemble.

:func:`gradient_descent` trains ``n_models`` independent initialisations of an
``infattn.stax`` model (NTK parameterisation) at once (``jax.vmap``) on the loss
``||f(x_train) - y_train||^2 / (2 n)``, ``n = y_train.size``, the loss whose
gradient flow :func:`infattn.predict.gradient_descent_mse` predicts, and records
train/test outputs and losses every ``record_every`` steps, so a wide network's
training curve can be put next to the NTK's prediction; :func:`ntk_comparison` does
that for a family of widths (notebook 03 and the paper figures use it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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


class NTKComparison(NamedTuple):
    """Finite networks' training next to the NTK's prediction (:func:`ntk_comparison`).

    ``steps`` ``(T,)``; ``learning_rate``: the step size used; ``ntk_fx_test``
    ``(T, N_test, K)`` and ``ntk_test_loss`` ``(T,)``: the infinite-width ensemble mean's
    test outputs and loss; ``runs``: ``{width: Trajectory}`` of the finite ensembles.
    """

    steps: np.ndarray
    learning_rate: float
    ntk_fx_test: np.ndarray
    ntk_test_loss: np.ndarray
    runs: dict[int, Trajectory]

    def gaps(self) -> dict[int, float]:
        """``{width: max |ensemble mean - NTK|}`` of the test outputs over the recorded steps."""
        return {
            w: float(np.max(np.abs(np.asarray(r.fx_test).mean(axis=1) - self.ntk_fx_test)))
            for w, r in self.runs.items()
        }


def ntk_comparison(
    model: Callable[[int], tuple],
    widths: tuple[int, ...],
    key: Array,
    x_train: Array,
    y_train: Array,
    x_test: Array,
    y_test: Array,
    *,
    steps: int,
    n_models: int,
    record_every: int,
    lr_fraction: float = 0.5,
    progress: bool = False,
) -> NTKComparison:
    """Train ensembles of ``model(width)`` for each width and predict them with the NTK.

    The step size is ``lr_fraction`` times :func:`infattn.predict.max_learning_rate` of
    the NTK on ``x_train``; the NTK prediction is the mean over initialisations of the
    infinitely wide network (:func:`infattn.predict.gradient_descent_mse_ensemble`).
    Width ``w`` trains from ``fold_in(key, w)``. Outputs ``(N, K)``.

    Example:
      >>> from infattn import stax
      >>> def model(w):
      ...     return stax.serial(stax.Dense(w), stax.Relu(), stax.Dense(1))
      >>> x, y = jnp.ones((3, 2)) * jnp.arange(3.0)[:, None], jnp.ones((3, 1))
      >>> c = ntk_comparison(model, (8, 64), jax.random.PRNGKey(0), x, y, x, y,
      ...                    steps=4, n_models=2, record_every=2)
      >>> c.steps.tolist(), c.ntk_test_loss.shape, sorted(c.gaps())
      ([0, 2, 4], (3,), [8, 64])
    """
    from tqdm.auto import tqdm

    from infattn import predict

    kernel_fn = model(max(widths))[2]
    ntk = kernel_fn(x_train, None, "ntk")
    lr = float(lr_fraction * predict.max_learning_rate(ntk, jnp.asarray(y_train).size))
    runs = {}
    for w in tqdm(widths, desc="widths", disable=not progress, leave=False):
        init_fn, apply_fn, _ = model(w)
        runs[w] = gradient_descent(
            init_fn,
            apply_fn,
            jax.random.fold_in(key, w),
            x_train,
            y_train,
            x_test,
            y_test,
            learning_rate=lr,
            steps=steps,
            n_models=n_models,
            record_every=record_every,
        )
    t = runs[widths[0]].steps
    ensemble = predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y_train, learning_rate=lr)
    fx_test = np.asarray(ensemble(x_test=x_test, get="ntk", t=t))
    return NTKComparison(
        np.asarray(t), lr, fx_test, np.asarray(mse(fx_test, jnp.asarray(y_test))), runs
    )
