"""Spark local[2] against Dask with 2 workers on the same synthetic archive, in one run.

Start-up is measured apart from throughput: each engine is started once (timed), warmed up
with a few file reads on every worker (not timed), then ingests the whole archive into its
own fresh store, the engines taking turns; throughput is files per second of that ingest
(best of the rounds, against noise from other processes on the machine). Goal: once
running, Spark's per-file throughput within 15% of Dask's.
"""

from __future__ import annotations

import functools
import re
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

from bench.common import synthetic_archive
from nowcast.config import validate
from nowcast.ingest.config import EngineConfig, IngestConfig, ReaderOptions
from nowcast.ingest.engines import open_engine
from nowcast.ingest.readers import read_scan
from nowcast.ingest.run import run_ingest

N_WORKERS = 2
GOAL = 0.85  # Spark's files/s over Dask's


def _archive(out_dir: Path, n_scans: int, size: int) -> list[Path]:
    """The first ``n_scans`` files of a complete synthetic archive of this size (reused if any)."""
    for folder in sorted(out_dir.glob(f"archive-*x{size}")):
        for marker in folder.glob(f".complete-*-{size}-0"):
            if int(re.match(r"\.complete-(\d+)-", marker.name).group(1)) >= n_scans:
                return sorted(folder.glob("*.nc"))[:n_scans]
    return synthetic_archive(out_dir / f"archive-{n_scans}x{size}", n_scans, size)


def _ingest_config(files: list[Path], store: Path, engine: dict) -> IngestConfig:
    return validate(
        IngestConfig, {"source": {"paths": [str(f) for f in files]}, "store": {"path": str(store)}, "engine": engine}
    )


def _start_dask(stack: ExitStack) -> dict:
    """A local cluster like the Dask engine's own, kept running so ingests connect to it warm."""
    import logging

    from dask.distributed import LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # as the Dask engine does
    cluster = stack.enter_context(
        LocalCluster(
            n_workers=N_WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    )
    return {"name": "dask", "address": cluster.scheduler_address}


def _start_spark(stack: ExitStack) -> dict:
    """A local[2] session; the Spark engine reuses a running context on the same master."""
    engine = {"name": "spark", "spark": {"master": f"local[{N_WORKERS}]"}}
    stack.enter_context(open_engine(EngineConfig(**engine)))
    return engine


def _warm_up(engine: dict, files: list[Path]) -> None:
    """Read a few files on every worker: process start-up and imports stay out of throughput."""
    read = functools.partial(read_scan, options=ReaderOptions())
    with open_engine(EngineConfig(**engine)) as running:
        for path, outcome in running.map_unordered(read, [str(f) for f in files[: 4 * N_WORKERS]]):
            if isinstance(outcome, Exception):
                raise RuntimeError(f"warm-up read of {path} failed on {running.name}") from outcome


def _ingest_seconds(files: list[Path], store: Path, engine: dict) -> float:
    shutil.rmtree(store, ignore_errors=True)
    start = time.perf_counter()
    summary = run_ingest(_ingest_config(files, store, engine), progress=False)
    seconds = time.perf_counter() - start
    assert summary.ok and summary.counts["ingested"] == len(files), summary.counts
    shutil.rmtree(store, ignore_errors=True)
    return seconds


def run(quick: bool, out_dir: Path) -> list[dict]:
    n_scans, size = (200, 128) if quick else (2000, 512)
    rounds = 1 if quick else 2
    files = _archive(out_dir, n_scans, size)
    startup: dict[str, float] = {}
    best: dict[str, float] = {}
    with ExitStack() as stack:
        engines = {}
        for name, start in (("spark", _start_spark), ("dask", _start_dask)):
            t0 = time.perf_counter()
            engines[name] = start(stack)
            startup[name] = time.perf_counter() - t0
            _warm_up(engines[name], files)
        for _ in range(rounds):
            for name, engine in engines.items():
                seconds = _ingest_seconds(files, out_dir / f"spark-bench-{name}.zarr", engine)
                best[name] = min(best.get(name, seconds), seconds)
    spark_fps, dask_fps = n_scans / best["spark"], n_scans / best["dask"]
    ratio = spark_fps / dask_fps
    label = f"{n_scans} scans of {size}x{size}, {N_WORKERS} workers"
    return [
        {"name": "spark local[2] start-up", "value": startup["spark"], "unit": "s"},
        {"name": "dask local cluster start-up", "value": startup["dask"], "unit": "s"},
        {"name": f"spark throughput, {label}", "value": spark_fps, "unit": "files/s"},
        {"name": f"dask throughput, {label}", "value": dask_fps, "unit": "files/s"},
        {
            "name": "spark / dask throughput once running",
            "value": ratio,
            "unit": "x",
            "goal": f">= {GOAL}",
            "ok": ratio >= GOAL,
        },
    ]
