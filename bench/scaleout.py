"""Beyond one process, measured side by side in one run.

1. training launched by Spark (TorchDistributor, master local[2]: two barrier tasks, one rank
   each) against torchrun, both 2 DDP processes of one thread, same config and seed, launches
   alternating: throughput once running (samples/s as rank 0 measures it, whole run, process
   start-up excluded), and wall time of the whole launch, start-up included. Goal: Spark's >= 0.9x.
2. ``nowcast tune``, 8 short random trials (40 steps of the debug config) on a Dask LocalCluster,
   2 workers against 1, one thread per trial, each run end to end (cluster start-up included);
   the speed-up beside this machine's ceiling for 2 processes of pure CPU work.
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
BATCH = 4  # global batch of the training runs
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
        "optim": {"batch_size": BATCH, "num_workers": 1, "max_steps": 24 if quick else 60, "warmup_steps": 5},
        "run": {"log_every": 1, "val_every": 10_000, "ckpt_every": 10_000, "seed": 0},
    }
    path = out_dir / "scaleout-train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _throughput(run_dir: Path) -> float:
    """Samples/s over the whole run as rank 0 measured it: each train row holds the rate since its
    epoch began, so an epoch's last row gives that epoch's time; the runs' totals are compared."""
    with (run_dir / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    last_of_epoch: dict[int, dict] = {}
    steps_in_epoch: dict[int, int] = {}
    for r in rows:
        epoch = int(r["epoch"])
        last_of_epoch[epoch] = r
        steps_in_epoch[epoch] = steps_in_epoch.get(epoch, 0) + 1  # log_every is 1
    steps = sum(steps_in_epoch.values())
    seconds = sum(n * BATCH / float(last_of_epoch[e]["samples_per_s"]) for e, n in steps_in_epoch.items())
    return steps * BATCH / seconds


def _launch(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "nowcast", *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"nowcast {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return time.perf_counter() - start


def bench_spark_training(out_dir: Path, quick: bool) -> list[dict]:
    """torchrun and Spark launches alternate (torchrun, spark, torchrun, spark, ...) so load drift
    on a shared machine hits both; the ratio is the median of the rounds' ratios."""
    store = out_dir / "scaleout-store.zarr"
    if not store.exists():
        write_mock_store(str(store), n_times=96 if quick else 240, shape=(128, 128), chunk_time=12, missing=(30,))
    config = _train_yaml(out_dir, store, quick)
    runs = out_dir / "scaleout-runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launchers = {"torchrun": ["--nproc", "2"], "spark": ["--engine", "spark", "--num-processes", "2"]}
    rates: dict[str, list[float]] = {name: [] for name in launchers}
    walls: dict[str, list[float]] = {name: [] for name in launchers}
    for _ in range(1 if quick else 3):
        for name, args in launchers.items():
            shutil.rmtree(runs / name, ignore_errors=True)
            common = ["train", "--config", str(config), f"run.out_dir={runs}", f"run.name={name}"]
            walls[name].append(_launch([*common, *args], env))
            rates[name].append(_throughput(runs / name))
    ratio = statistics.median(s / t for s, t in zip(rates["spark"], rates["torchrun"]))
    rounds = len(rates["spark"])
    return [
        {
            "name": "training samples/s, torchrun 2 processes",
            "value": statistics.median(rates["torchrun"]),
            "unit": "samples/s",
        },
        {
            "name": "training samples/s, Spark TorchDistributor 2 tasks (local[2])",
            "value": statistics.median(rates["spark"]),
            "unit": "samples/s",
        },
        {
            "name": f"Spark-launched / torchrun training throughput (median of {rounds} alternating rounds)",
            "value": ratio,
            "unit": "x",
            "goal": f">= {GOAL}",
            "ok": ratio >= GOAL,
        },
        {
            "name": "wall time of a launch, torchrun (start-up included)",
            "value": statistics.median(walls["torchrun"]),
            "unit": "s",
        },
        {
            "name": "wall time of a launch, Spark (session start-up included)",
            "value": statistics.median(walls["spark"]),
            "unit": "s",
        },
    ]


def bench_tune(out_dir: Path, quick: bool) -> list[dict]:
    from nowcast.config import validate
    from nowcast.tune.config import TuneConfig
    from nowcast.tune.run import run_tune

    store = out_dir / "scaleout-tune-store.zarr"
    if not store.exists():
        write_mock_store(str(store), n_times=64, shape=(48, 48), chunk_time=8, missing=(20,))
    seconds: dict[int, float] = {}
    trial_seconds: dict[int, float] = {}  # the trials' own time, summed: the work, start-up excluded
    for workers in (1, 2):
        folder = out_dir / f"scaleout-tune-{workers}"
        shutil.rmtree(folder, ignore_errors=True)
        cfg = validate(
            TuneConfig,
            {
                "train_config": str(ROOT / "configs/train/debug.yaml"),
                "fixed": {"data.stores": [str(store)]},
                "budget_steps": 8 if quick else 40,  # trials of several seconds: the work, not start-up
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
        trial_seconds[workers] = sum(r["seconds"] for r in summary.results)
    ceiling = cpu_scaling_ceiling(2)
    speedup = seconds[1] / seconds[2]
    return [
        {"name": "tune, 8 trials, Dask 1 worker (cluster start-up included)", "value": seconds[1], "unit": "s"},
        {"name": "tune, 8 trials, Dask 2 workers", "value": seconds[2], "unit": "s"},
        {"name": "tune speed-up, 2 workers vs 1", "value": speedup, "unit": "x"},
        {"name": "tune, trial seconds summed, 1 worker", "value": trial_seconds[1], "unit": "s"},
        {
            "name": "tune, trial seconds summed, 2 workers (work per trial when two share the CPUs)",
            "value": trial_seconds[2],
            "unit": "s",
        },
        {"name": "this machine's ceiling: 2 processes of pure CPU work vs 1", "value": ceiling, "unit": "x"},
        {"name": "tune 2-worker speed-up as a share of that ceiling", "value": speedup / ceiling, "unit": ""},
    ]


def run(quick: bool, out_dir: Path) -> list[dict]:
    logging.getLogger("nowcast").setLevel(logging.WARNING)
    return bench_spark_training(out_dir, quick) + bench_tune(out_dir, quick)
