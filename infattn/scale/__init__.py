"""Kernels at scale: tiled, resumable, multi-device and Dask-distributed, stored in zarr.

* :func:`compute_kernels` (``infattn.scale.kernels``): the entry point.
* :class:`KernelStore` (``infattn.scale.store``): the on-disk layout, manifest and done flags.
* ``infattn.scale.memory``: memory budgets and tile sizing.
* ``infattn.scale.job``: what one tile computes; ``local`` and ``cluster`` run tiles
  on this process's devices or as Dask tasks.

zarr (and distributed, for Dask) are imported when used: install the ``scale`` extra.
"""

from infattn.scale.kernels import compute_kernels
from infattn.scale.memory import parse_size
from infattn.scale.store import IncompleteStoreError, KernelStore, StoreMismatchError

__all__ = [
    "IncompleteStoreError",
    "KernelStore",
    "StoreMismatchError",
    "compute_kernels",
    "parse_size",
]
