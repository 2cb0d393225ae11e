"""Run a store's pending tiles as Dask distributed tasks, one task per tile.

``"local"`` starts a ``LocalCluster`` bound to 127.0.0.1 with its dashboard off;
any other string is the address of a running scheduler (``tcp://host:port``); a
``distributed.Client`` is used as given. The :class:`~infattn.scale.job.TileJob`
(model, inputs, store path) is sent to every worker once (``Client.scatter`` with
``broadcast=True``), pickled by cloudpickle: closures such as ``infattn.stax``
kernel functions travel by value, so workers need only the same ``infattn`` and
JAX installed, not the caller's script. Each task computes its tile on one of its
worker's JAX devices (by tile, round robin) and writes it straight to the store, so
the store's path must be the same shared directory on every worker machine.
Dask schedules, retries lost tasks and reports failures; nothing here schedules.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import jax
from tqdm.auto import tqdm

from infattn.scale.job import TileJob
from infattn.scale.store import Tile


def run_dask(
    job: TileJob,
    tiles: Sequence[Tile],
    dask: Any,
    progress: tqdm,
    local_workers: int = 1,
) -> None:
    """Compute and write ``tiles`` on the Dask cluster ``dask``; ``progress`` advances per tile.

    ``dask``: ``"local"``, a scheduler address or a ``distributed.Client``;
    ``local_workers``: worker processes of a ``"local"`` cluster (one thread each).
    On error or Ctrl-C the remaining tasks are cancelled and the error is raised.

    Example (an in-process cluster; ``compute_kernels(..., dask=...)`` does this):
      >>> import tempfile
      >>> import numpy as np
      >>> from distributed import Client, LocalCluster
      >>> from infattn import stax
      >>> from infattn.scale.kernels import compute_kernels
      >>> _, _, kernel_fn = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1))
      >>> x = np.random.default_rng(0).standard_normal((5, 3))
      >>> path = tempfile.mkdtemp() + "/k"
      >>> store = compute_kernels(kernel_fn, x, None, path, tile_size=4, progress=False)
      >>> job = TileJob(kernel_fn, x, x[:0], store.layout, ("nngp", "ntk"), None, path)
      >>> loopback = {"protocol": "tcp://", "host": "127.0.0.1", "dashboard_address": None}
      >>> with LocalCluster(processes=False, **loopback) as cluster, Client(cluster) as client:
      ...     run_dask(job, store.layout.tiles(), client, tqdm(disable=True))
      >>> store.pending()
      []
    """
    from distributed import as_completed

    with dask_client(dask, local_workers) as client:
        shared = client.scatter(job, broadcast=True, hash=False)
        futures = client.map(_run_tile, tiles, job=shared, pure=False)
        try:
            for future in as_completed(futures):
                future.result()
                progress.update(1)
        finally:
            client.cancel(futures)


def _run_tile(tile: Tile, job: TileJob) -> Tile:
    """A Dask task: compute ``tile`` on one of the worker's local devices and write it."""
    devices = jax.local_devices()
    return job.run(tile, devices[(tile.row + tile.col) % len(devices)])


@contextlib.contextmanager
def dask_client(dask: Any, local_workers: int):
    """A ``distributed.Client`` for ``dask``, closed on exit if made here.

    ``dask``: ``"local"`` (a cluster of ``local_workers`` single-threaded worker
    processes on 127.0.0.1, no dashboard), a scheduler address, or a
    ``distributed.Client`` (used as is, left open).

    Example:
        >>> with dask_client(7, 1):  # doctest: +ELLIPSIS
        ...     pass
        Traceback (most recent call last):
        ...
        TypeError: dask: expected 'local', a scheduler address or a distributed.Client, got 7
    """
    from distributed import Client, LocalCluster

    if isinstance(dask, Client):
        yield dask
        return
    if not isinstance(dask, str):
        raise TypeError(
            f"dask: expected 'local', a scheduler address or a distributed.Client, got {dask!r}"
        )
    if dask == "local":
        cluster = LocalCluster(
            n_workers=local_workers,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            processes=True,
        )
        with cluster, Client(cluster) as client:
            yield client
        return
    with Client(dask) as client:
        yield client
