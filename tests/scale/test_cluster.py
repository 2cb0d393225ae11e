"""Tiles as Dask tasks: workers in other processes write the same arrays."""

from __future__ import annotations

import numpy as np
import pytest

from infattn.scale import compute_kernels
from infattn.scale.cluster import dask_client
from tests.scale.runner import inputs, model


def test_dask_worker_processes_write_the_single_process_arrays(built, tmp_path):
    from distributed import LocalCluster

    _, _, arrays = built
    x_train, x_test = inputs()
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,  # the model and inputs really travel by (cloud)pickle
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        store = compute_kernels(
            model(),  # a fresh closure: nothing is shared with the worker but the pickle
            x_train,
            x_test,
            tmp_path / "dask",
            tile_size=3,
            dask=cluster.scheduler_address,
            progress=False,
        )
    assert not store.pending()
    for (kind, part), value in arrays.items():
        np.testing.assert_array_equal(store.load(kind, part), value)


def test_local_cluster_listens_on_loopback_only(monkeypatch):
    import distributed

    started = {}

    class Cluster:
        def __init__(self, **kwargs):
            started.update(kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class Client(Cluster):
        def __init__(self, cluster):
            started["client_of"] = cluster

    monkeypatch.setattr(distributed, "LocalCluster", Cluster)
    monkeypatch.setattr(distributed, "Client", Client)
    with dask_client("local", 2) as client:
        assert isinstance(client, Client)
    assert started["host"] == "127.0.0.1"
    assert started["dashboard_address"] is None
    assert started["n_workers"] == 2
    with pytest.raises(TypeError, match="dask: expected 'local'"), dask_client(7, 1):
        pass
