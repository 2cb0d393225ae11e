"""Monte Carlo estimates of NNGP and NTK kernels of finite networks, with standard errors.

:func:`monte_carlo_kernel_fn` is a drop-in for ``neural_tangents.monte_carlo_kernel_fn``
(same signature, same meaning, same output layout) that

* runs random initialisations ("draws") in memory-bounded chunks, each chunk one
  compiled step (:mod:`~infattn.empirical.chunks`), sharded over devices;
* computes the NNGP of a draw from one forward pass and its NTK by one strategy
  chosen once per call (:class:`Strategy`): parameter taps for ``infattn.stax``
  models whose outputs are traced to ``(N1, N2)`` (no Jacobian is formed),
  otherwise contracted Jacobians or NTK-vector products
  (:mod:`~infattn.empirical.draws`, :mod:`~infattn.empirical.derivatives`);
* keeps running means and standard errors (:mod:`~infattn.empirical.running`, on
  the device or in host memory) and returns, on request, the standard error of
  every kernel entry (``kernel_fn(..., return_se=True)`` gives a
  :class:`MonteCarloEstimate` with ``nngp_se``/``ntk_se``);
* shows a progress bar for long runs and keeps the finished draws on Ctrl-C
  (:class:`Interrupted`);
* validates its inputs and outputs (errors name the argument).

Draw ``i`` uses the key ``jax.random.fold_in(key, i)``, so an estimate depends
only on ``key`` and the number of draws, never on ``chunk_size``, ``batch_size``
or on which other counts ``n_samples`` lists. ``init_fn`` runs under
``jax.threefry_partitionable(False)`` (threefry's original block layout, two
32-bit words per block: half the cost of JAX's default layout, the same law), so a
key's parameters differ from those of ``init_fn(key, ...)`` called under JAX's
default, and from those of infattn releases before this change
(:func:`~infattn.empirical.draws.draw_params`).

Kernel layout (neural-tangents', :mod:`~infattn.empirical.layout`): for outputs
``f(x1)`` of shape ``(N1, *S, C)`` and the default ``trace_axes=(-1,)``, kernels are
``(N1, N2, s1, s1, s2, s2, ...)`` (e.g. ``(N1, N2, L, L)`` for sequence outputs,
``(N1, N2)`` after pooling)::

    NNGP = <f(x1), f(x2)>_trace / size(trace_axes)
    NTK  = sum_params <df(x1)/dp, df(x2)/dp>_trace / size(trace_axes)
"""

from infattn.empirical.chunks import DEFAULT_MEMORY_BUDGET, PARALLEL_PARAMETER_BYTES
from infattn.empirical.draws import NtkImplementation, Strategy
from infattn.empirical.estimate import Interrupted, MonteCarloEstimate, MonteCarloKernel
from infattn.empirical.monte_carlo import (
    DEFAULT_NTK_IMPLEMENTATION,
    PROGRESS_DELAY,
    empirical_kernel_draws,
    monte_carlo_kernel_fn,
    ntk_strategy,
)

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "DEFAULT_NTK_IMPLEMENTATION",
    "PARALLEL_PARAMETER_BYTES",
    "PROGRESS_DELAY",
    "Interrupted",
    "MonteCarloEstimate",
    "MonteCarloKernel",
    "NtkImplementation",
    "Strategy",
    "empirical_kernel_draws",
    "monte_carlo_kernel_fn",
    "ntk_strategy",
]
