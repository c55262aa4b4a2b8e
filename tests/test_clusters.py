"""Ingest on real clusters on loopback: a Spark standalone master with two workers (the test
run's shared one, ``spark_cluster`` in conftest.py), writing its store to a local S3 server, and
a Dask scheduler with two worker processes, started and stopped by its test. Each ingests a
small archive through its cluster and checks the store against the known fields.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from nowcast import objstore, store
from nowcast.config import validate
from nowcast.ingest.config import IngestConfig
from nowcast.ingest.run import run_ingest
from tests.cf_archive import write_archive
from tests.clusters import dask_cluster

pytestmark = pytest.mark.slow


def ingest_config(src: Path, dst: Path | str, engine: dict) -> IngestConfig:
    return validate(
        IngestConfig,
        {
            "source": {"paths": [str(src)]},
            "store": {"path": str(dst), "chunk_time": 3, "chunk_space": 16},
            "engine": engine,
        },
    )


def check_store(path: str, fields: dict[int, np.ndarray], n_times: int) -> None:
    reader = store.StoreReader(path)
    assert reader.valid.tolist() == [i in fields for i in range(n_times)]
    data = reader.read(0, n_times)
    for i, expected in fields.items():
        np.testing.assert_allclose(data[i], expected, atol=0.005)
        assert np.array_equal(np.isnan(data[i]), np.isnan(expected))


def test_spark_ingest_on_a_standalone_cluster_writes_to_s3(tmp_path, spark_cluster):
    """The executors write the chunks straight into the bucket, with the AWS variables they inherited."""
    from pyspark import SparkContext

    fields = write_archive(tmp_path / "src", 9, missing=(5,))
    url = "s3://nowcast/clusters/spark.zarr"
    engine = {"name": "spark", "spark": {"master": spark_cluster.master, "executor_memory": "512m"}}
    summary = run_ingest(ingest_config(tmp_path / "src", url, engine), progress=False)
    assert summary.ok and summary.counts["ingested"] == 8
    # the run reused the session on that master, and left it running for its owner
    assert SparkContext._active_spark_context is spark_cluster.engine.sc
    assert store.is_store(url) and not os.path.exists("s3:")  # in the bucket, not a folder named "s3:"
    check_store(url, fields, 9)
    # the executors ran in the workers' folders, not in this process
    assert list(spark_cluster.work_dir.glob("work*/app-*/*/stderr"))
    # the credentials are in neither the store nor any cluster log (launch commands included)
    secret, key_id = os.environ["AWS_SECRET_ACCESS_KEY"], os.environ["AWS_ACCESS_KEY_ID"]
    logs = [*spark_cluster.work_dir.glob("*.log"), *spark_cluster.work_dir.glob("work*/app-*/*/std*")]
    texts = [p.read_text(errors="replace") for p in logs]
    texts.append(objstore.download(f"{url}/ingest-config.yaml", tmp_path / "ingest-config.yaml").read_text())
    assert len(logs) >= 5 and not any(secret in text or key_id in text for text in texts)


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
    check_store(str(tmp_path / "d.zarr"), fields, 9)
