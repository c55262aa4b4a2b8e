"""Ingest on real clusters on loopback: a Spark standalone master with two workers, and a Dask
scheduler with two worker processes. Each test starts its cluster, ingests a small archive
through it, checks the store against the known fields, and stops every process it started.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nowcast import store
from nowcast.config import validate
from nowcast.ingest.config import IngestConfig
from nowcast.ingest.run import run_ingest
from tests.cf_archive import write_archive
from tests.clusters import dask_cluster, spark_standalone

pytestmark = pytest.mark.slow


def ingest_config(src: Path, dst: Path, engine: dict) -> IngestConfig:
    return validate(
        IngestConfig,
        {
            "source": {"paths": [str(src)]},
            "store": {"path": str(dst), "chunk_time": 3, "chunk_space": 16},
            "engine": engine,
        },
    )


def check_store(path: Path, fields: dict[int, np.ndarray], n_times: int) -> None:
    reader = store.StoreReader(str(path))
    assert reader.valid.tolist() == [i in fields for i in range(n_times)]
    data = reader.read(0, n_times)
    for i, expected in fields.items():
        np.testing.assert_allclose(data[i], expected, atol=0.005)
        assert np.array_equal(np.isnan(data[i]), np.isnan(expected))


def test_ingest_on_a_spark_standalone_cluster(tmp_path):
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:
        pytest.skip("a local SparkContext from another test module is still running in this process")
    fields = write_archive(tmp_path / "src", 9, missing=(5,))
    with spark_standalone(tmp_path / "spark", n_workers=2) as master:
        config = ingest_config(
            tmp_path / "src",
            tmp_path / "s.zarr",
            {"name": "spark", "spark": {"master": master, "executor_memory": "512m", "executor_cores": 1}},
        )
        summary = run_ingest(config, progress=False)
        assert SparkContext._active_spark_context is None  # the engine stopped the session it started
    assert summary.ok and summary.counts["ingested"] == 8
    check_store(tmp_path / "s.zarr", fields, 9)
    # the executors ran in the workers' folders, not in this process
    assert list((tmp_path / "spark").glob("work*/app-*/*/stderr"))


def test_ingest_on_a_dask_cluster(tmp_path):
    fields = write_archive(tmp_path / "src", 9, missing=(2,))
    with dask_cluster(tmp_path / "dask", n_workers=2) as address:
        summary = run_ingest(
            ingest_config(tmp_path / "src", tmp_path / "d.zarr", {"name": "dask", "address": address}), progress=False
        )
        from dask.distributed import Client

        with Client(address) as client:
            assert len(client.nthreads()) == 2  # the run used the cluster's own workers
    assert summary.ok and summary.counts["ingested"] == 8
    check_store(tmp_path / "d.zarr", fields, 9)
