"""Helpers shared by the benchmarks: synthetic archives and peak memory of a process tree."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil


def synthetic_archive(folder: Path, n_scans: int, size: int, seed: int = 0) -> list[Path]:
    """A synthetic archive of ``n_scans`` CF files of size x size, reused when already there."""
    from nowcast.synth import SynthConfig, write_archive

    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(folder.glob("*.nc"))
    marker = folder / f".complete-{n_scans}-{size}-{seed}"
    if marker.exists():
        return files
    for old in files:
        old.unlink()
    config = SynthConfig(n_scans=n_scans, height=size, width=size, seed=seed, missing_fraction=0.0)
    files = sorted(write_archive(folder, config, progress=True))
    marker.touch()
    return files


class PeakMemory:
    """Peak resident memory of this process and all its children, sampled every 20 ms."""

    def __init__(self, interval_s: float = 0.02):
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _spin(n: int) -> None:
    x = 0
    for i in range(n):
        x += i * i


def cpu_scaling_ceiling(n_procs: int = 2, work: int = 20_000_000, repeats: int = 3) -> float:
    """Throughput of ``n_procs`` processes of pure CPU work relative to one, on this machine.

    The most any engine can gain from more processes here: virtual cores that share a physical
    core (or a throttled host) give far less than ``n_procs`` times one core.
    """
    from multiprocessing import get_context

    ctx = get_context("spawn")

    def timed(n: int) -> float:
        procs = [ctx.Process(target=_spin, args=(work,)) for _ in range(n)]
        start = time.perf_counter()
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        return time.perf_counter() - start

    ratios = sorted(n_procs * timed(1) / timed(n_procs) for _ in range(repeats))
    return ratios[len(ratios) // 2]
