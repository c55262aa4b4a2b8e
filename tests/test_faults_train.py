"""Training killed with SIGKILL mid-step and mid-checkpoint-write resumes exactly.

`nowcast train` runs as a real child process and is killed at chosen moments: right after a
checkpoint lands, while a checkpoint is being written (a temporary file exists), and between
checkpoints. `--resume` must continue from the last complete checkpoint, never a half-written
one, and finish with the same weights as a run that was never interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from nowcast.checkpoint import load_checkpoint
from nowcast.errors import CheckpointError
from nowcast.store import write_mock_store

pytestmark = pytest.mark.slow
MAX_STEPS = 24


def train_config(tmp_path: Path, store: Path, name: str) -> Path:
    cfg = {
        "data": {"stores": [str(store)], "crop_size": 32, "val_fraction": 0.2, "val_stride": 4, "chunks_in_memory": 1},
        "model": {
            "num_input_frames": 3,
            "num_output_frames": 2,
            "stem_channels": 4,
            "hidden_channels": [4, 8],
            "kernel_sizes": [3, 3],
            "downsample": [2],
        },
        "optim": {"lr": 3e-3, "warmup_steps": 2, "max_steps": MAX_STEPS, "batch_size": 2, "num_workers": 0},
        "run": {"out_dir": str(tmp_path / "runs"), "name": name, "log_every": 1, "val_every": 6, "ckpt_every": 2},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_train(config: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nowcast", "train", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=600,
    )


def kill_when(config: Path, ready, resume: bool) -> bool:
    """Start training, SIGKILL it when ``ready()``; False if it finished first."""
    args = [sys.executable, "-m", "nowcast", "train", "--config", str(config)] + (["--resume"] if resume else [])
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                return True
            time.sleep(0.001)
        raise AssertionError("training neither finished nor reached the kill point")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def last_step(run_dir: Path) -> int:
    try:
        return int(load_checkpoint(run_dir / "last.pt")["step"])
    except (CheckpointError, FileNotFoundError):
        return -1


def test_killed_training_resumes_to_the_same_weights(tmp_path):
    store = tmp_path / "mock.zarr"
    write_mock_store(str(store), n_times=64, shape=(48, 48), chunk_time=8, missing=(20,))
    whole = run_train(train_config(tmp_path, store, "whole"))
    assert whole.returncode == 0, whole.stderr[-2000:]

    config = train_config(tmp_path, store, "killed")
    run_dir = tmp_path / "runs" / "killed"
    kills = [
        ("after the first checkpoint", lambda: last_step(run_dir) >= 2),
        ("while a checkpoint is written", lambda: any(run_dir.glob(".*.tmp")) and last_step(run_dir) >= 4),
        ("mid-step, between checkpoints", lambda: last_step(run_dir) >= 10),
        ("while a checkpoint is written, later", lambda: any(run_dir.glob(".*.tmp")) and last_step(run_dir) >= 14),
    ]
    killed = []
    for name, ready in kills:
        if kill_when(config, ready, resume=(run_dir / "last.pt").exists()):
            killed.append((name, last_step(run_dir)))
    assert len(killed) >= 3, killed
    # a stray half-written checkpoint must never be taken for one
    (run_dir / ".last.pt.crash.tmp").write_bytes(b"PK\x03\x04 half a zip")
    done = run_train(config, "--resume")
    assert done.returncode == 0, done.stderr[-2000:]

    a = load_checkpoint(tmp_path / "runs" / "whole" / "last.pt")
    b = load_checkpoint(run_dir / "last.pt")
    assert a["step"] == b["step"] == MAX_STEPS
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)


def test_damaged_last_checkpoint_is_refused_with_its_name(tmp_path):
    store = tmp_path / "mock.zarr"
    write_mock_store(str(store), n_times=48, shape=(48, 48), chunk_time=8, missing=())
    config = train_config(tmp_path, store, "damaged")
    run_dir = tmp_path / "runs" / "damaged"
    assert run_train(config, "--stop-at", "4").returncode == 0
    target = (run_dir / "last.pt").resolve()
    data = target.read_bytes()
    (run_dir / "last.pt").unlink()
    (run_dir / "last.pt").write_bytes(data[: len(data) // 2])  # as if the disk lost half of it
    done = run_train(config, "--resume")
    assert done.returncode != 0
    assert "last.pt" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
