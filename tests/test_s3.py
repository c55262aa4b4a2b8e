"""Object storage for real: a local S3 server (moto's server mode, on loopback, the test run's
shared one: ``s3`` in conftest.py) holds the store, the checkpoints and the forecast. Ingest with
the Dask engine writes the store to s3://, training reads it and checkpoints to s3:// (stopped and
resumed to the weights of an uninterrupted run), predict reads store and checkpoint from s3:// and
writes its forecast there. The credentials (from the standard AWS variables) appear in no file
written and no log line. Spark ingest to s3:// is in test_clusters.py.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

from nowcast import objstore
from nowcast.checkpoint import load_checkpoint
from nowcast.cli import app
from nowcast.config import validate
from nowcast.ingest.config import IngestConfig
from nowcast.ingest.run import run_ingest
from nowcast.store import StoreReader, is_store
from nowcast.train.remote import run_training
from tests.cf_archive import write_archive

pytestmark = pytest.mark.slow

STORE = "s3://nowcast/radar/synthetic.zarr"
RUNS = "s3://nowcast/runs"


def test_ingest_train_predict_through_s3(s3, tmp_path, caplog, tiny_config):
    caplog.set_level(logging.INFO)
    fields = write_archive(tmp_path / "src", 40, missing=(17,))
    config = validate(
        IngestConfig,
        {
            "source": {"paths": [str(tmp_path / "src")]},
            "store": {"path": STORE, "chunk_time": 8, "chunk_space": 16},
            "engine": {"name": "dask", "n_workers": 2},
        },
    )
    summary = run_ingest(config, progress=False)
    assert summary.ok and summary.counts["ingested"] == 39
    assert is_store(STORE) and not os.path.exists("s3:")  # in the bucket, not a folder named "s3:"
    reader = StoreReader(STORE)
    assert reader.valid.tolist() == [i in fields for i in range(40)]
    data = reader.read(0, 40)
    for i, expected in fields.items():
        np.testing.assert_allclose(data[i], expected, atol=0.005)
        assert np.array_equal(np.isnan(data[i]), np.isnan(expected))
    assert "synthetic.zarr" in objstore.list_names("s3://nowcast/radar")

    # training reads the store from s3 and keeps its run folder there; stopped and resumed ...
    cfg = tiny_config(STORE, RUNS, optim={"max_steps": 6}, run={"name": "t", "val_every": 3, "ckpt_every": 3})
    first = run_training(cfg, stop_at=3)
    assert first["run_dir"] == f"{RUNS}/t" and first["step"] == 3
    names = objstore.list_names(f"{RUNS}/t")
    assert {"last.pt", "best.pt", "step_00000003.pt", "metrics.csv", "config.yaml"} <= set(names)
    with pytest.raises(Exception, match="already holds a run"):
        run_training(cfg)
    assert run_training(cfg, resume=True)["step"] == 6
    # ... to the weights of an uninterrupted run (local run folder, same store)
    whole = run_training(tiny_config(STORE, tmp_path / "runs", optim={"max_steps": 6}, run={"name": "t"}))
    resumed = load_checkpoint(objstore.download(f"{RUNS}/t/last.pt", tmp_path / "resumed.pt"))
    reference = load_checkpoint(Path(whole["run_dir"]) / "last.pt")
    assert resumed["step"] == reference["step"] == 6
    for key, value in reference["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=0, atol=0)

    # predict: store and checkpoint from s3, forecast (and pictures) to s3
    out = "s3://nowcast/forecasts/latest.nc"
    result = CliRunner().invoke(
        app, ["predict", "--input", STORE, "--checkpoint", f"{RUNS}/t/best.pt", "--out", out, "--plot"]
    )
    assert result.exit_code == 0, result.output
    assert set(objstore.list_names("s3://nowcast/forecasts")) == {"latest.nc", "latest.png", "latest.gif"}
    with xr.open_dataset(objstore.download(out, tmp_path / "latest.nc")) as ds:
        assert ds["rainfall_rate"].dims == ("time", "y", "x") and ds.sizes["time"] == 2
        assert ds.attrs["model_checkpoint"] == f"{RUNS}/t/best.pt"
        attrs_text = str(ds.attrs)

    # the credentials are in no file written and no log line
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    key_id = os.environ["AWS_ACCESS_KEY_ID"]
    written = [
        objstore.download(f"{RUNS}/t/config.yaml", tmp_path / "config.yaml").read_text(),
        objstore.download(f"{STORE}/ingest-config.yaml", tmp_path / "ingest-config.yaml").read_text(),
        attrs_text,
        caplog.text,
        result.output,
    ]
    assert not any(secret in text or key_id in text for text in written)
