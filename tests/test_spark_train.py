"""Training and tuning on a real Spark standalone cluster on loopback (the test run's shared one,
``spark_cluster`` in conftest.py: a master and two one-core workers, started inside a local S3
server's block so the executors inherit the standard AWS variables):

- ``nowcast train --engine spark --num-processes 2``, stopped and resumed with its run folder in
  s3://, ends with exactly the weights of ``nowcast train --nproc 2`` (torchrun) for the same
  seed: the ranks run as Spark tasks in the workers' executors (TorchDistributor), with the same
  partition-local readers;
- ``nowcast tune --engine spark`` runs its trials as Spark tasks and records them.

Spark ingest writing to s3:// is in test_clusters.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nowcast import objstore
from nowcast.checkpoint import load_checkpoint
from nowcast.cli import app
from nowcast.store import write_mock_store

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "mock.zarr"
    write_mock_store(str(path), n_times=64, shape=(48, 48), chunk_time=8, missing=(20,))
    return path


def tiny_yaml(folder: Path, store: Path) -> Path:
    config = folder / "tiny.yaml"
    config.write_text(
        f"data: {{stores: ['{store}'], crop_size: 32, val_fraction: 0.2, chunks_in_memory: 1}}\n"
        "model: {num_input_frames: 3, num_output_frames: 2, stem_channels: 4, hidden_channels: [4, 8],"
        " kernel_sizes: [3, 3], downsample: [2]}\n"
        "optim: {warmup_steps: 2, max_steps: 6, batch_size: 4, num_workers: 1}\n"
        "run: {val_every: 3, ckpt_every: 100}\n"
    )
    return config


def test_spark_training_gives_torchrun_weights_and_resumes(spark_cluster, store, tmp_path):
    master, work = spark_cluster.master, spark_cluster.work_dir
    config = tiny_yaml(tmp_path, store)
    torchrun = [sys.executable, "-m", "nowcast", "train", "--config", str(config), "--nproc", "2"]
    result = subprocess.run(
        [*torchrun, f"run.out_dir={tmp_path / 'torchrun'}"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    # the Spark run keeps its checkpoints in the object store, as it would on a cluster
    spark = ["train", "--config", str(config), "--engine", "spark", "--master", master, "--num-processes", "2"]
    out = "run.out_dir=s3://nowcast/spark-runs"
    for extra in (["--stop-at", "3"], ["--resume"]):
        result = CliRunner().invoke(app, [*spark, *extra, out])
        assert result.exit_code == 0, result.output
    objstore.download("s3://nowcast/spark-runs/default/last.pt", tmp_path / "spark" / "default" / "last.pt")
    a, b = (load_checkpoint(tmp_path / d / "default" / "last.pt") for d in ("torchrun", "spark"))
    assert a["step"] == b["step"] == 6
    for key in a["model"]:
        torch.testing.assert_close(b["model"][key], a["model"][key], rtol=0, atol=0)
    assert b["metrics"]["csi_1mm_mean"] == a["metrics"]["csi_1mm_mean"]
    # the ranks ran in the workers' executors, not in this process
    assert len(list(work.glob("work*/app-*/*/stderr"))) >= 2

    # a second launch into the same run folder stops before Spark starts, naming the fix
    result = CliRunner().invoke(app, [*spark, out])
    assert result.exit_code == 2 and "already holds a run" in result.output


def test_tune_on_spark_runs_trials_as_tasks(spark_cluster, store, tmp_path):
    master = spark_cluster.master
    tune = tmp_path / "tune.yaml"
    tune.write_text(
        f"train_config: {ROOT / 'configs/train/debug.yaml'}\n"
        f"fixed: {{data.stores: ['{store}']}}\n"
        "budget_steps: 4\n"
        "search: {sampler: grid, space: {optim.lr: {choices: [0.003, 0.01]}}}\n"
        f"out_dir: {tmp_path}\n"
        "name: spark\n"
        "threads_per_trial: 1\n"
    )
    result = CliRunner().invoke(app, ["tune", "--config", str(tune), "--master", master])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "spark" / "results.md").read_text().splitlines()
    assert lines[0].startswith("# spark: 2 trials (2 complete, 0 failed)")
    assert {line.split(" | ")[1] for line in lines[4:6]} == {"0", "1"}
    assert os.path.exists(tmp_path / "spark" / "best.yaml")
