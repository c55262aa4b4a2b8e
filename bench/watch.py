"""Real time: scan-to-forecast latency of ``nowcast watch``, its memory over many scans, and one-shot
``nowcast predict`` against a pySTEPS script on the same files.

1. Latency: a watcher (shipped model, 12 leads, 2 CPU threads) runs in its own process; scans of
   a synthetic 700x700 archive (quick: 128x128) are renamed into its folder one at a time, each
   once the previous forecast is out. Latency = from the rename to ``OUT/<init time>.nc``
   existing (the writer renames a complete file into place), p50 and p95 over >= 30 scans.
   Goal: p50 <= 1.5 s, p95 <= 3 s.
2. Memory: the same on a 128x128 archive (quick: 64x64) over >= 200 scans: the watcher's RSS after
   the 10th forecast against after the last. Goal: growth <= 5 %.
3. One-shot: ``nowcast predict`` on a folder of 4 of the 700x700 files against a pySTEPS script
   (Lucas-Kanade + semi-Lagrangian, 12 leads, written as NetCDF) on the same folder, whole-process
   wall time, runs alternating, medians. Goal: predict <= 0.8x the script.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from bench.common import synthetic_archive

THREADS = 2
# the sizes of a full run; a machine too busy for 30 forecasts at 700x700 can measure smaller
# ones (BENCH_WATCH_SIZE, BENCH_WATCH_MEMORY_SIZE) and says so in each measurement's name
SIZE = int(os.environ.get("BENCH_WATCH_SIZE", "700"))
MEMORY_SIZE = int(os.environ.get("BENCH_WATCH_MEMORY_SIZE", "128"))
N_LEADS = 12
ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "OMP_NUM_THREADS": str(THREADS),
    "MKL_NUM_THREADS": str(THREADS),
    "NOWCAST_LOG_LEVEL": "WARNING",
}

PYSTEPS_SCRIPT = """
import glob, sys
import numpy as np, xarray as xr
from pysteps import extrapolation, motion
from pysteps.utils import transformation
files = sorted(glob.glob(sys.argv[1] + "/*.nc"))[-4:]
rain = np.stack([xr.open_dataset(f)["rainfall_rate"].values.squeeze() for f in files]).astype(float)
db, meta = transformation.dB_transform(rain, threshold=0.1, zerovalue=-15.0)
db[~np.isfinite(db)] = meta["zerovalue"]
velocity = motion.get_method("LK")(db)
forecast = extrapolation.get_method("semilagrangian")(db[-1], velocity, 12)
forecast, _ = transformation.dB_transform(forecast, meta, inverse=True)
with xr.open_dataset(files[-1]) as last:
    coords = {"y": last["y"].values, "x": last["x"].values}
xr.Dataset({"rainfall_rate": (("time", "y", "x"), forecast.astype("float32"))}, coords=coords).to_netcdf(sys.argv[2])
"""


def _stamp(path: Path) -> str:
    from nowcast.ingest.sources import time_from_name
    from nowcast.watch.outputs import stamp

    t = time_from_name(str(path))
    assert t is not None, path
    return stamp(t)


def _deliver(path: Path, folder: Path) -> float:
    """Copy under a hidden name, rename into place; returns the time of the rename (monotonic)."""
    tmp = folder / f".{path.name}.part"
    shutil.copyfile(path, tmp)
    os.replace(tmp, folder / path.name)
    return time.monotonic()


def _wait_file(path: Path, timeout: float = 300.0) -> float:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            raise TimeoutError(f"no {path} after {timeout:g} s")
        time.sleep(0.002)
    return time.monotonic()


class Watcher:
    """``nowcast watch`` in its own process on fresh folders under ``work``."""

    def __init__(self, work: Path, log: Path):
        self.incoming, self.out = work / "incoming", work / "out"
        self.incoming.mkdir(parents=True)
        command = [
            sys.executable,
            "-m",
            "nowcast",
            "watch",
            "--incoming",
            str(self.incoming),
            "--store",
            str(work / "store.zarr"),
            "--out",
            str(self.out),
            "max_input_age_s=null",
            f"predict.leads={N_LEADS}",
            "keep_forecasts=1000",
        ]
        self.cpu: list[float] = []
        self.log = open(log, "w")  # one line per scan and per forecast, with the stages' seconds
        self.process = subprocess.Popen(command, env={**ENV, "NOWCAST_LOG_LEVEL": "INFO"}, stderr=self.log)

    def prime(self, files: list[Path]) -> None:
        """Deliver the frames before the first whole window (no forecast to wait for)."""
        for path in files:
            _deliver(path, self.incoming)

    def feed(self, files: list[Path]) -> list[float]:
        """Deliver each file once the previous forecast is out; seconds from rename to forecast, per file.

        The watcher's CPU seconds for each scan go to ``self.cpu``: on a shared machine the wall
        time is mostly waiting for a core, the CPU time is the work.
        """
        latencies = []
        process = psutil.Process(self.process.pid)
        for path in files:
            before = sum(process.cpu_times()[:2])
            landed = _deliver(path, self.incoming)
            latencies.append(_wait_file(self.out / f"{_stamp(path)}.nc") - landed)
            self.cpu.append(sum(process.cpu_times()[:2]) - before)
        return latencies

    def rss(self) -> int:
        return psutil.Process(self.process.pid).memory_info().rss

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(120)
        self.log.close()


def _latency(files: list[Path], work: Path, log: Path) -> tuple[list[float], list[float]]:
    """Seconds from rename to forecast, and the watcher's CPU seconds, per scan."""
    watcher = Watcher(work, log)
    try:
        watcher.prime(files[:3])
        watcher.feed(files[3:4])  # the first window; start-up and warm-up are not timed
        watcher.cpu.clear()
        return watcher.feed(files[4:]), watcher.cpu
    finally:
        watcher.close()


def _memory(files: list[Path], work: Path, log: Path) -> tuple[int, int, int]:
    watcher = Watcher(work, log)
    try:
        watcher.prime(files[:3])
        watcher.feed(files[3:14])
        early = watcher.rss()
        peak = early
        for path in files[14:]:
            watcher.feed([path])
            peak = max(peak, watcher.rss())
        return early, watcher.rss(), peak
    finally:
        watcher.close()


def _wall(command: list[str]) -> tuple[float, float]:
    """Wall seconds of a whole process, and the CPU seconds (user + system) it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _one_shot(files: list[Path], work: Path, repeats: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(wall, CPU) medians of predict and of the pySTEPS script."""
    folder = work / "four"
    folder.mkdir()
    for path in files[:4]:
        shutil.copyfile(path, folder / path.name)
    script = work / "pysteps_lk.py"
    script.write_text(PYSTEPS_SCRIPT)
    predict = [sys.executable, "-m", "nowcast", "predict", "--input", str(folder), "--leads", str(N_LEADS)]
    mine, theirs = [], []
    for i in range(repeats):  # alternating, so both see the same machine
        mine.append(_wall([*predict, "--out", str(work / f"predict-{i}.nc")]))
        theirs.append(_wall([sys.executable, str(script), str(folder), str(work / f"pysteps-{i}.nc")]))
    return _medians(mine), _medians(theirs)


def _medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def run(quick: bool, out_dir: Path) -> list[dict]:
    size, n_latency = (128, 5) if quick else (SIZE, 30)
    small, n_memory = (64, 20) if quick else (MEMORY_SIZE, 200)
    latency_files = synthetic_archive(out_dir / f"watch-archive-{size}", 4 + n_latency, size)
    memory_files = synthetic_archive(out_dir / f"watch-archive-{small}", 14 + n_memory, small)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        work = Path(tmp)
        wall, cpu = _latency(latency_files, work / "latency", out_dir / "watch-latency.log")
        seconds = np.array(wall)
        p50, p95 = float(np.percentile(seconds, 50)), float(np.percentile(seconds, 95))
        label = f"{size}x{size}, {len(seconds)} scans, shipped model, {N_LEADS} leads, {THREADS} threads"
        rows += [
            {"name": f"watch: scan renamed in -> forecast file, p50 ({label})", "value": p50, "unit": "s",
             "goal": "<= 1.5", "ok": p50 <= 1.5},
            {"name": f"watch: scan renamed in -> forecast file, p95 ({label})", "value": p95, "unit": "s",
             "goal": "<= 3", "ok": p95 <= 3.0},
            {"name": f"watch: the watcher's CPU seconds per scan, median ({size}x{size})",
             "value": float(np.median(cpu)), "unit": "s"},
            {"name": "watch: load average (1 min) at the end of the latency run", "value": os.getloadavg()[0],
             "unit": ""},
        ]  # fmt: skip
        early, last, peak = _memory(memory_files, work / "memory", out_dir / "watch-memory.log")
        growth = 100.0 * (last - early) / early
        rows += [
            {"name": f"watch: RSS after 10 forecasts ({small}x{small})", "value": early / 2**20, "unit": "MiB"},
            {"name": f"watch: RSS after {n_memory + 10} forecasts (peak {peak / 2**20:.0f} MiB)",
             "value": last / 2**20, "unit": "MiB"},
            {"name": f"watch: RSS growth over {n_memory} scans", "value": growth, "unit": "%", "goal": "<= 5",
             "ok": growth <= 5.0},
        ]  # fmt: skip
        (mine, mine_cpu), (theirs, theirs_cpu) = _one_shot(latency_files, work, 1 if quick else 3)
        ratio = mine / theirs
        rows += [
            {"name": f"one-shot nowcast predict, 4 files {size}x{size}, whole process, wall", "value": mine,
             "unit": "s"},
            {"name": "pySTEPS LK + extrapolation script, same files, whole process, wall", "value": theirs,
             "unit": "s"},
            {"name": "one-shot predict / pySTEPS script, wall", "value": ratio, "unit": "x", "goal": "<= 0.8",
             "ok": ratio <= 0.8},
            {"name": "one-shot predict, CPU seconds (user + system)", "value": mine_cpu, "unit": "s"},
            {"name": "pySTEPS script, CPU seconds (user + system)", "value": theirs_cpu, "unit": "s"},
            {"name": "one-shot predict / pySTEPS script, CPU", "value": mine_cpu / theirs_cpu, "unit": "x"},
        ]  # fmt: skip
    return rows
