"""Ingest throughput: the Dask engine with 1 and 2 workers against a plain serial loop.

All three run the same code path (``run_ingest`` mapping ``ingest_chunk``) on the same
synthetic archive, one after the other in this run. Peak memory (driver plus workers) is
compared for 1,000 and 4,000 scans: it must be bounded by chunk size, not archive size.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bench.common import PeakMemory, cpu_scaling_ceiling, synthetic_archive
from nowcast.config import validate
from nowcast.ingest.config import EngineConfig, IngestConfig
from nowcast.ingest.engines import open_engine
from nowcast.ingest.run import run_ingest


def _ingest(files: list[Path], store: Path, engine: str, n_workers: int = 1) -> tuple[float, float]:
    """Seconds and peak bytes of one ingest into a fresh store."""
    shutil.rmtree(store, ignore_errors=True)
    config = validate(
        IngestConfig,
        {
            "source": {"paths": [str(f) for f in files]},
            "store": {"path": str(store)},
            "engine": {"name": engine, "n_workers": n_workers},
        },
    )
    with PeakMemory() as memory:
        start = time.perf_counter()
        summary = run_ingest(config, progress=False)
        seconds = time.perf_counter() - start
    assert summary.counts["ingested"] == len(files), summary.counts
    shutil.rmtree(store, ignore_errors=True)
    return seconds, memory.peak_bytes


def _startup_s(n_workers: int) -> float:
    """Seconds to start and stop a Dask local cluster: the fixed cost inside every Dask run."""
    start = time.perf_counter()
    with open_engine(EngineConfig(name="dask", n_workers=n_workers)):
        pass
    return time.perf_counter() - start


def run(quick: bool, out_dir: Path) -> list[dict]:
    n_scans, size = (200, 128) if quick else (2000, 512)
    n_small, n_large = (100, 400) if quick else (1000, 4000)
    archive = synthetic_archive(out_dir / f"archive-{n_large}x{size}", n_large, size)
    files = archive[:n_scans]
    store = out_dir / "ingest-bench.zarr"

    serial_s, _ = _ingest(files, store, "serial")
    dask1_s, _ = _ingest(files, store, "dask", 1)
    dask2_s, _ = _ingest(files, store, "dask", 2)
    _, mem_small = _ingest(archive[:n_small], store, "dask", 2)
    _, mem_large = _ingest(archive[:n_large], store, "dask", 2)
    startup1_s = _startup_s(1)
    ceiling = cpu_scaling_ceiling(2)
    overhead = dask1_s / serial_s - 1
    speedup = serial_s / dask2_s
    running_overhead = (dask1_s - startup1_s) / serial_s - 1
    growth = mem_large / mem_small - 1
    return [
        {"name": f"serial loop, {n_scans} scans of {size}x{size}", "value": n_scans / serial_s, "unit": "scans/s"},
        {"name": "dask 1 worker", "value": n_scans / dask1_s, "unit": "scans/s"},
        {"name": "dask 2 workers", "value": n_scans / dask2_s, "unit": "scans/s"},
        {
            "name": "dask overhead at 1 worker vs serial",
            "value": 100 * overhead,
            "unit": "%",
            "goal": "<= 10",
            "ok": overhead <= 0.10,
        },
        {"name": "dask local cluster start-up and shut-down (1 worker)", "value": startup1_s, "unit": "s"},
        {
            "name": "dask overhead at 1 worker vs serial, start-up excluded",
            "value": 100 * running_overhead,
            "unit": "%",
        },
        {
            "name": "dask speed-up at 2 workers vs serial",
            "value": speedup,
            "unit": "x",
            "goal": ">= 1.8",
            "ok": speedup >= 1.8,
        },
        {"name": "this machine's ceiling: 2 processes of pure CPU work vs 1", "value": ceiling, "unit": "x"},
        {"name": "dask 2-worker speed-up as a share of that ceiling", "value": speedup / ceiling, "unit": ""},
        {"name": f"peak memory, {n_small} scans (dask 2 workers)", "value": mem_small / 2**20, "unit": "MiB"},
        {"name": f"peak memory, {n_large} scans (dask 2 workers)", "value": mem_large / 2**20, "unit": "MiB"},
        {
            "name": f"peak memory growth {n_small} -> {n_large} scans",
            "value": 100 * growth,
            "unit": "%",
            "goal": "<= 10",
            "ok": growth <= 0.10,
        },
    ]
