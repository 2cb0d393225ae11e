"""infattn: infinite-width and infinite-head limits of attention networks.

``infattn.stax`` (layers and their kernels), :class:`Kernel` and
:func:`monte_carlo_kernel_fn` are imported with the package; ``infattn.limits``,
``infattn.diagnostics`` and ``infattn.logits`` are loaded on first use (they pull in
SciPy), so ``import infattn`` stays light.
"""

import importlib
from typing import Any

from infattn import predict, stax
from infattn.batching import batch
from infattn.empirical import NtkImplementation, monte_carlo_kernel_fn
from infattn.empirical.single import (
    empirical_kernel_fn,
    empirical_nngp_fn,
    empirical_ntk_fn,
    empirical_ntk_vp_fn,
    linearize,
    taylor_expand,
)
from infattn.kernel import Kernel

__version__ = "0.1.0"

_LAZY = ("diagnostics", "limits", "logits")

__all__ = [
    "Kernel",
    "NtkImplementation",
    "__version__",
    "batch",
    "empirical_kernel_fn",
    "empirical_nngp_fn",
    "empirical_ntk_fn",
    "empirical_ntk_vp_fn",
    "linearize",
    "monte_carlo_kernel_fn",
    "predict",
    "stax",
    "taylor_expand",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"infattn.{name}")
    raise AttributeError(f"module 'infattn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
