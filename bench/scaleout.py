"""Beyond one process, measured side by side in one run.

1. training launched by Spark (TorchDistributor, master local[2]: two barrier tasks, one rank
   each) against torchrun, both 2 DDP processes of one thread, same config and seed: throughput
   once running (samples/s as rank 0 logs it per epoch, the first epoch left out), and wall time
   of the whole launch, start-up included. Goal: Spark's throughput >= 0.9x torchrun's.
2. ``nowcast tune``, 8 short random trials on a Dask LocalCluster, 2 workers against 1, one thread
   per trial; the speed-up beside this machine's ceiling for 2 processes of pure CPU work.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench.common import cpu_scaling_ceiling
from nowcast.store import write_mock_store

GOAL = 0.9
ROOT = Path(__file__).resolve().parents[1]


def _train_yaml(out_dir: Path, store: Path, quick: bool) -> Path:
    config = {
        "data": {"stores": [str(store)], "crop_size": 64, "val_fraction": 0.1, "chunks_in_memory": 2},
        "model": {
            "num_input_frames": 6,
            "num_output_frames": 6,
            "stem_channels": 8,
            "hidden_channels": [16, 32] if quick else [32, 64],
            "kernel_sizes": [3, 3],
            "downsample": [2],
        },
        "optim": {"batch_size": 4, "num_workers": 1, "max_steps": 24 if quick else 60, "warmup_steps": 5},
        "run": {"log_every": 1, "val_every": 10_000, "ckpt_every": 10_000, "seed": 0},
    }
    path = out_dir / "scaleout-train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _throughput(run_dir: Path) -> float:
    """Median samples/s over the train rows after the first epoch (rank 0's own measurement)."""
    with (run_dir / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    later = [float(r["samples_per_s"]) for r in rows if int(r["epoch"]) > 0] or [
        float(r["samples_per_s"]) for r in rows
    ]
    return statistics.median(later)


def _launch(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "nowcast", *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"nowcast {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return time.perf_counter() - start


def bench_spark_training(out_dir: Path, quick: bool) -> list[dict]:
    store = out_dir / "scaleout-store.zarr"
    if not store.exists():
        write_mock_store(str(store), n_times=96 if quick else 240, shape=(128, 128), chunk_time=12, missing=(30,))
    config = _train_yaml(out_dir, store, quick)
    runs = out_dir / "scaleout-runs"
    shutil.rmtree(runs, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["train", "--config", str(config), f"run.out_dir={runs}"]
    wall = {
        "torchrun": _launch([*common, "run.name=torchrun", "--nproc", "2"], env),
        "spark": _launch([*common, "run.name=spark", "--engine", "spark", "--num-processes", "2"], env),
    }
    rate = {name: _throughput(runs / name) for name in wall}
    ratio = rate["spark"] / rate["torchrun"]
    return [
        {"name": "training samples/s, torchrun 2 processes", "value": rate["torchrun"], "unit": "samples/s"},
        {
            "name": "training samples/s, Spark TorchDistributor 2 tasks (local[2])",
            "value": rate["spark"],
            "unit": "samples/s",
        },
        {
            "name": "Spark-launched / torchrun training throughput",
            "value": ratio,
            "unit": "x",
            "goal": f">= {GOAL}",
            "ok": ratio >= GOAL,
        },
        {"name": "wall time of the launch, torchrun (start-up included)", "value": wall["torchrun"], "unit": "s"},
        {"name": "wall time of the launch, Spark (session start-up included)", "value": wall["spark"], "unit": "s"},
    ]


def bench_tune(out_dir: Path, quick: bool) -> list[dict]:
    from nowcast.config import validate
    from nowcast.tune.config import TuneConfig
    from nowcast.tune.run import run_tune

    store = out_dir / "scaleout-tune-store.zarr"
    if not store.exists():
        write_mock_store(str(store), n_times=64, shape=(48, 48), chunk_time=8, missing=(20,))
    seconds = {}
    for workers in (1, 2):
        folder = out_dir / f"scaleout-tune-{workers}"
        shutil.rmtree(folder, ignore_errors=True)
        cfg = validate(
            TuneConfig,
            {
                "train_config": str(ROOT / "configs/train/debug.yaml"),
                "fixed": {"data.stores": [str(store)]},
                "budget_steps": 6 if quick else 12,
                "search": {
                    "sampler": "random",
                    "n_trials": 8,
                    "space": {"optim.lr": {"low": 1e-3, "high": 1e-2, "log": True}},
                },
                "out_dir": str(folder),
                "name": "bench",
                "engine": {"name": "dask", "n_workers": workers},
                "threads_per_trial": 1,
            },
            "bench",
        )
        start = time.perf_counter()
        summary = run_tune(cfg, "bench")
        seconds[workers] = time.perf_counter() - start
        if summary.n_complete != 8:
            raise RuntimeError(f"tune with {workers} worker(s): {summary.n_failed} trials failed")
    ceiling = cpu_scaling_ceiling(2)
    speedup = seconds[1] / seconds[2]
    return [
        {"name": "tune, 8 trials, Dask 1 worker (cluster start-up included)", "value": seconds[1], "unit": "s"},
        {"name": "tune, 8 trials, Dask 2 workers", "value": seconds[2], "unit": "s"},
        {"name": "tune speed-up, 2 workers vs 1", "value": speedup, "unit": "x"},
        {"name": "this machine's ceiling: 2 processes of pure CPU work vs 1", "value": ceiling, "unit": "x"},
        {"name": "tune 2-worker speed-up as a share of that ceiling", "value": speedup / ceiling, "unit": ""},
    ]


def run(quick: bool, out_dir: Path) -> list[dict]:
    logging.getLogger("nowcast").setLevel(logging.WARNING)
    return bench_spark_training(out_dir, quick) + bench_tune(out_dir, quick)
