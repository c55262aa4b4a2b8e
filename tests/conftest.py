"""Fixtures shared across test modules: a small training store and config, a tiny checkpoint, the CLI.

Helpers that are data or file writers stay plain modules, always imported as ``tests.<module>``:
``tests.predict_helpers`` (tiny models and checkpoints), ``tests.readers_helpers`` (real and
hand-made radar files), ``tests.cf_archive`` (archives of CF files), ``tests.clusters``
(Spark and Dask clusters), ``tests.mutants`` (damaged files).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
