"""Run a store's pending tiles on this process's JAX devices, with a progress bar.

One worker thread per device pulls tiles from a shared queue (so fast devices take
more), computes each tile on its device, writes it and flags it done. The main
thread only waits, in short slices, so Ctrl-C is handled within a fraction of a
second: it tells the workers to stop taking tiles and raises at once; a tile being
computed is finished and written in the background (or, if the process exits first,
recomputed by the next run), so no finished tile is lost. Should the interpreter
exit while a worker is still inside XLA, an exit hook ends the process at once
(exit status 130 after Ctrl-C, 1 after an error) instead of letting interpreter
shutdown kill the thread mid-computation, which aborts the process.
"""

from __future__ import annotations

import atexit
import os
import queue
import sys
import threading
from collections.abc import Sequence

import jax
from tqdm.auto import tqdm

from infattn.scale.job import TileJob
from infattn.scale.store import Tile

POLL_SECONDS = 0.1
"""How often the main thread wakes while waiting for tiles (bounds Ctrl-C latency)."""


def run_local(
    job: TileJob,
    tiles: Sequence[Tile],
    devices: Sequence[jax.Device],
    progress: tqdm,
) -> None:
    """Compute and write ``tiles``, spread over ``devices``; ``progress`` advances per tile.

    The bar's postfix counts the tiles each device computed (``cpu:0=12 cpu:1=11``).

    Example (recomputing one tile of a finished store changes nothing):
      >>> import tempfile
      >>> import numpy as np
      >>> from infattn import stax
      >>> from infattn.scale.kernels import compute_kernels
      >>> _, _, kernel_fn = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1))
      >>> x = np.random.default_rng(0).standard_normal((5, 3))
      >>> path = tempfile.mkdtemp() + "/k"
      >>> store = compute_kernels(kernel_fn, x, None, path, tile_size=4, progress=False)
      >>> before = store.load("ntk", "train_train")
      >>> job = TileJob(kernel_fn, x, x[:0], store.layout, ("nngp", "ntk"), None, path)
      >>> run_local(job, [Tile("train_train", 0, 1)], jax.devices(), tqdm(disable=True))
      >>> bool((store.load("ntk", "train_train") == before).all())
      True

    Raises the first error of any tile (the other workers stop after their
    current tile) and ``KeyboardInterrupt`` on Ctrl-C.
    """
    todo: queue.SimpleQueue[Tile] = queue.SimpleQueue()
    for tile in tiles:
        todo.put(tile)
    finished: queue.SimpleQueue[jax.Device | BaseException] = queue.SimpleQueue()
    per_device = dict.fromkeys(devices, 0)
    stop = threading.Event()

    def work(device: jax.Device) -> None:
        while not stop.is_set():
            try:
                tile = todo.get_nowait()
            except queue.Empty:
                return
            try:
                job.run(tile, device)
                finished.put(device)
            except BaseException as error:  # handed to the main thread, which re-raises
                finished.put(error)
                return

    workers = [
        threading.Thread(target=work, args=(d,), name=f"infattn-tiles-{d}", daemon=True)
        for d in devices
    ]
    status = 1
    try:
        for worker in workers:
            worker.start()
        for _ in range(len(tiles)):
            item = _next(finished)
            if isinstance(item, BaseException):
                raise item
            per_device[item] += 1
            progress.set_postfix_str(
                " ".join(f"{d.platform}:{d.id}={n}" for d, n in per_device.items()), refresh=False
            )
            progress.update(1)
        status = 0
    except KeyboardInterrupt:
        status = 130
        raise
    finally:
        stop.set()
        if status and any(w.is_alive() for w in workers):
            atexit.register(_leave_at_exit, workers, status)


def _leave_at_exit(workers: Sequence[threading.Thread], status: int) -> None:
    """At interpreter exit, end the process now if a worker is still computing a tile."""
    if any(w.is_alive() for w in workers):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _next(finished: queue.SimpleQueue) -> jax.Device | BaseException:
    """The device that finished a tile, or an error (waits in slices to let signals in)."""
    while True:
        try:
            return finished.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
