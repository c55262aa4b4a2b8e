"""Fixtures shared across test modules: a small training store and config, a tiny checkpoint, the CLI.

Helpers that are data or file writers stay plain modules, always imported as ``tests.<module>``:
``tests.predict_helpers`` (tiny models and checkpoints), ``tests.readers_helpers`` (real and
hand-made radar files), ``tests.cf_archive`` (archives of CF files), ``tests.clusters``
(Spark and Dask clusters), ``tests.mutants`` (damaged files).

The local S3 server and the Spark cluster are started once per test run, by the first test that
asks for them, and stopped at its end: a Spark start costs tens of seconds here, and one process
can hold only one SparkContext anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from nowcast.train.config import TrainConfig

# imports are inside the fixtures: a test module that needs none of them does not pay for torch


def _tiny_config(store, out_dir, **sections) -> TrainConfig:
    from nowcast.config import validate
    from nowcast.train.config import TrainConfig

    data = {"stores": [str(store)], "crop_size": 32, "val_fraction": 0.2, "val_stride": 2, "chunks_in_memory": 1}
    cfg = {
        "data": {**data, **sections.get("data", {})},
        "model": {
            "num_input_frames": 3,
            "num_output_frames": 2,
            "stem_channels": 4,
            "hidden_channels": [4, 8],
            "kernel_sizes": [3, 3],
            "downsample": [2],
            **sections.get("model", {}),
        },
        "optim": {
            "lr": 3e-3,
            "warmup_steps": 2,
            "max_steps": 6,
            "batch_size": 2,
            "num_workers": 0,
            **sections.get("optim", {}),
        },
        "run": {
            "out_dir": str(out_dir),
            "name": "t",
            "log_every": 1,
            "val_every": 3,
            "ckpt_every": 3,
            **sections.get("run", {}),
        },
        "loss": sections.get("loss", {}),
    }
    return validate(TrainConfig, cfg, "test")


@pytest.fixture
def tiny_config():
    """``tiny_config(store, out_dir, data={...}, model={...}, ...)``: a TrainConfig that trains in
    seconds (6 steps of a 2-layer ConvLSTM on 32-pixel crops), sections updated by the keywords."""
    return _tiny_config


@pytest.fixture(scope="session")
def train_store(tmp_path_factory) -> Path:
    """A mock store to train on: 64 five-minute times of 48 x 48 pixels in time chunks of 8, times 20 and 41 missing."""
    from nowcast.store import write_mock_store

    path = tmp_path_factory.mktemp("train-store") / "mock.zarr"
    write_mock_store(str(path), n_times=64, shape=(48, 48), chunk_time=8, missing=(20, 41))
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """``tests.predict_helpers.write_checkpoint`` with its defaults: 1 km, 5 minutes, 3 inputs, 4 leads."""
    from tests.predict_helpers import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("checkpoint") / "tiny.pt")


@pytest.fixture
def cli():
    """``cli(*args)``: run ``nowcast`` in-process (arguments may be paths); wide, so messages do not wrap."""
    from typer.testing import CliRunner

    from nowcast.cli import app

    runner = CliRunner(env={"COLUMNS": "250"})
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="session")
def s3(tmp_path_factory) -> str:
    """A local S3 server (moto's server mode on loopback) with the bucket ``nowcast``, for the whole
    run; the standard AWS variables point at it meanwhile. Tests keep to their own key prefixes."""
    from tests.clusters import moto_s3

    with moto_s3(tmp_path_factory.mktemp("moto")) as endpoint:
        yield endpoint


@dataclass
class SparkCluster:
    master: str  # spark://127.0.0.1:PORT
    work_dir: Path  # the master's and workers' logs, and the executors' folders (work*/app-*/)
    engine: Any  # the ingest engine on the shared SparkContext


@pytest.fixture(scope="session")
def spark_cluster(s3, tmp_path_factory) -> SparkCluster:
    """A Spark standalone master with two one-core workers on loopback, and one SparkContext on it,
    for the whole run. Every ``open_spark`` on this master (ingest, ``train --engine spark``,
    ``tune``) reuses the context instead of starting its own. Started inside the S3 server's block,
    so the executors inherit the AWS variables. Tasks are not retried, as in local mode."""
    from nowcast.ingest.config import EngineConfig
    from nowcast.ingest.engines import open_engine
    from tests.clusters import spark_standalone

    work = tmp_path_factory.mktemp("spark")
    spark = {"executor_memory": "512m", "conf": {"spark.task.maxFailures": "1"}}
    with spark_standalone(work, n_workers=2) as master:
        with open_engine(EngineConfig(name="spark", spark={"master": master, **spark})) as engine:
            yield SparkCluster(master, work, engine)
