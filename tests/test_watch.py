"""``nowcast watch`` with a real watchdog observer on a temp folder, scans delivered as a feed would.

One scenario per test, each on a small grid: the normal feed with its faults (a late scan, a
damaged file repaired later, a duplicate, a gap then the fallback), a real radar folder, and a
service killed with SIGKILL while forecasting, then restarted. Every forecast is compared with
``nowcast predict`` on the same store and time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from nowcast.config import validate
from nowcast.errors import StoreError
from nowcast.predict.loading import load_model
from nowcast.watch import WatchConfig
from nowcast.watch.outputs import LATEST, stamp
from nowcast.watch.replay import deliver, replay
from nowcast.watch.service import watch
from nowcast.watch.status import read_status
from tests.cf_archive import write_archive
from tests.readers_helpers import RMI_DIR, real_files

NOWCAST = [sys.executable, "-m", "nowcast"]
T0 = np.datetime64("2024-06-01T00:00", "s")
STEP = np.timedelta64(300, "s")


def name_of(i: int) -> str:
    return f"radar_{str(T0 + i * STEP).replace('-', '').replace(':', '').replace('T', '')}.nc"


def wait_for(what: Callable[[], bool], timeout: float = 90.0, why: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if what():
                return
        except (OSError, ValueError, KeyError):  # a status file not written yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {why}")


def counts(out: Path) -> dict:
    return read_status(out)["counts"]


def forecast_times(out: Path) -> set[np.datetime64]:
    times = set()
    for path in out.glob("*Z.nc"):
        with xr.open_dataset(path) as ds:
            times.add(np.datetime64(ds["forecast_reference_time"].values, "s"))
    return times


class Service:
    """``watch`` in a thread of this process, stopped as SIGTERM would stop it."""

    def __init__(self, incoming: Path, store: Path, out: Path, checkpoint: Path, **config):
        self.stop = threading.Event()
        cfg = validate(WatchConfig, {"max_input_age_s": None, **config}, "test")
        loaded = load_model(checkpoint)
        self.error: BaseException | None = None

        def run() -> None:
            try:
                watch(incoming, store, out, loaded, cfg, stop=self.stop)
            except BaseException as e:  # noqa: BLE001 - handed to the test
                self.error = e

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive() and self.error is None, self.error


def assert_same_as_predict(cli, store: Path, out: Path, checkpoint: Path, init_time: np.datetime64) -> None:
    """The watcher's forecast from ``init_time`` is what ``nowcast predict`` makes from the same store."""
    mine = out / f"{stamp(init_time)}.nc"
    theirs = out.parent / f"predict-{stamp(init_time)}.nc"
    result = cli("predict", "--input", store, "--time", str(init_time), "--checkpoint", checkpoint, "--out", theirs)
    assert result.exit_code == 0, result.output
    with xr.open_dataset(mine) as a, xr.open_dataset(theirs) as b:
        np.testing.assert_array_equal(a["rainfall_rate"].values, b["rainfall_rate"].values)
        assert a.attrs["forecast_method"] == b.attrs["forecast_method"] == "model"
        np.testing.assert_array_equal(a["time"].values, b["time"].values)


@pytest.mark.slow
def test_feed_with_faults(tmp_path, tiny_checkpoint, cli):
    """Forecast per whole window; late scan, duplicate, damaged-then-repaired file and a gap, counted."""
    archive = tmp_path / "archive"
    write_archive(archive, 8, shape=(24, 28))  # steps 0..7, 5 minutes apart
    incoming, store, out = tmp_path / "incoming", tmp_path / "store.zarr", tmp_path / "out"
    service = Service(incoming, store, out, tiny_checkpoint, max_wait_s=2.0, catch_up_steps=6)
    try:
        for i in (0, 1, 2):
            deliver(archive / name_of(i), incoming)
        wait_for(lambda: counts(out)["forecasts"] == 1, why="the first whole window")
        deliver(archive / name_of(4), incoming)  # step 3 is late: the window ending at 4 waits for it
        wait_for(lambda: counts(out)["scans"] == 4, why="step 4 ingested")
        deliver(archive / name_of(3), incoming)
        wait_for(lambda: counts(out)["forecasts"] == 3, why="the windows ending at 3 and 4")
        (incoming / ".radar.part").write_bytes(b"still copying")  # hidden: never read
        (incoming / name_of(5)).write_bytes(b"\x89HDF\r\n damaged")  # written in place, closed: read, quarantined
        wait_for(lambda: counts(out)["quarantined"] == 1, why="the damaged file quarantined")
        copy = archive / "again" / f"copy_{name_of(4)}"
        copy.parent.mkdir()
        copy.write_bytes((archive / name_of(4)).read_bytes())
        deliver(copy, incoming / "again")  # the same scan under another name, in a new subfolder
        wait_for(lambda: counts(out)["duplicates"] == 1, why="the duplicate")
        deliver(archive / name_of(6), incoming)  # 5 still damaged: the window ending at 7 has a gap
        deliver(archive / name_of(7), incoming)
        wait_for(lambda: counts(out)["fallbacks"] == 1, why="the fallback forecast after max_wait_s")
        deliver(archive / name_of(5), incoming)  # the damaged file repaired: read again, its time filled
        wait_for(lambda: counts(out)["forecasts"] == 6, why="the windows ending at 5 and 6 once repaired")
    finally:
        service.close()

    assert forecast_times(out) == {T0 + i * STEP for i in range(2, 8)}  # one per whole window, and the fallback
    status = read_status(out)
    assert status["state"] == "stopped"
    assert status["counts"] == {
        "scans": 8,
        "forecasts": 6,
        "quarantined": 1,
        "late": 2,  # step 3 after 4, step 5 (repaired) after 7
        "duplicates": 1,
        "fallbacks": 1,
        "skipped": 0,
    }
    with xr.open_dataset(out / f"{stamp(T0 + 7 * STEP)}.nc") as ds:
        assert ds.attrs["forecast_method"] == "extrapolation"
        assert "max_wait_s" in ds.attrs["fallback_reason"] and str(T0 + 5 * STEP) in ds.attrs["fallback_reason"]
    assert os.path.samefile(out / LATEST, out / f"{stamp(T0 + 7 * STEP)}.nc")  # the newest init time
    for i in (2, 3, 4, 5, 6):
        assert_same_as_predict(cli, store, out, tiny_checkpoint, T0 + i * STEP)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_real_radar_folder(tmp_path, tiny_checkpoint, cli):
    """Real RMI composites replayed into the folder (cropped to 48 km): the same forecasts as predict."""
    files = real_files(RMI_DIR, "*.hdf")[:4]
    archive = tmp_path / "archive"
    archive.mkdir()
    for f in files:
        os.symlink(f, archive / Path(f).name)
    incoming, store, out = tmp_path / "incoming", tmp_path / "store.zarr", tmp_path / "out"
    crop = {"x_min": 600_000, "x_max": 648_000, "y_min": 600_000, "y_max": 648_000}
    service = Service(incoming, store, out, tiny_checkpoint, align={"crop": crop})
    try:
        replay(archive, incoming, speed=0)
        wait_for(lambda: counts(out)["forecasts"] == 2, why="two forecasts from four scans")
    finally:
        service.close()
    times = sorted(forecast_times(out))
    assert len(times) == 2
    for t in times:
        assert_same_as_predict(cli, store, out, tiny_checkpoint, t)


@pytest.mark.slow
def test_sigkill_while_forecasting_then_restart(tmp_path, tiny_checkpoint):
    """Killed while writing forecasts, restarted: nothing lost or twice, no partial file; one watcher per store."""
    archive = tmp_path / "archive"
    write_archive(archive, 7, shape=(24, 28))
    incoming, store, out = tmp_path / "incoming", tmp_path / "store.zarr", tmp_path / "out"
    for i in range(6):  # steps 0..5 waiting when the service starts: windows ending at 2..5
        deliver(archive / name_of(i), incoming)
    command = [
        *NOWCAST,
        "watch",
        "--incoming",
        str(incoming),
        "--store",
        str(store),
        "--out",
        str(out),
        "--checkpoint",
        str(tiny_checkpoint),
        "max_input_age_s=null",
        "fallback=none",  # no pysteps to import: the restart is quicker
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    with open(logs[0], "w") as log:
        first = subprocess.Popen(command, env=env, stderr=log)
        try:
            wait_for(
                lambda: any(p.name.endswith(".tmp") or p.name.endswith("Z.nc") for p in out.iterdir()),
                timeout=300,
                why="the first forecast being written",
            )
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        finally:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    # what the killed service finished (it may die between a file's rename and its log line)
    written_before = {str(t) for t in forecast_times(out)}
    deliver(archive / name_of(6), incoming)  # lands while the service is down

    with open(logs[1], "w") as log:
        second = subprocess.Popen(command, env=env, stderr=log)
        try:
            wait_for(lambda: read_status(out)["state"] == "watching", timeout=300, why="the restart")
            with pytest.raises(StoreError, match="lock"):  # one watcher per store
                watch(incoming, store, tmp_path / "other", load_model(tiny_checkpoint), WatchConfig())
            wait_for(lambda: len(list(out.glob("*Z.nc"))) == 5, why="every whole window forecast")
            second.send_signal(signal.SIGTERM)
            second.wait(60)
        finally:
            second.kill()
    assert second.returncode == 0, logs[1].read_text()
    assert forecast_times(out) == {T0 + i * STEP for i in range(2, 7)}  # nothing lost
    after = set(re.findall(r"forecast (\S+): \S+Z\.nc by", logs[1].read_text()))
    assert not written_before & after and len(written_before | after) == 5  # nothing twice
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no partial file
    assert os.path.samefile(out / LATEST, out / f"{stamp(T0 + 6 * STEP)}.nc")
    assert read_status(out)["state"] == "stopped"


def test_no_forecast_from_stale_inputs(tmp_path, tiny_checkpoint):
    """Scans older than max_input_age_s: no forecast, and the status says the feed is late."""
    from nowcast.store import write_mock_store
    from nowcast.watch.cycle import Cycle, ingest_config
    from nowcast.watch.outputs import Outputs
    from nowcast.watch.status import Status

    store = tmp_path / "store.zarr"
    write_mock_store(str(store), n_times=6, shape=(16, 16), chunk_time=4, missing=())  # from 2024
    loaded = load_model(tiny_checkpoint)

    def cycle(**config) -> Cycle:
        cfg = validate(WatchConfig, {"warm_up": False, **config}, "test")
        outputs = Outputs(tmp_path / "out")
        return Cycle(ingest_config(str(tmp_path), str(store), cfg), cfg, loaded, outputs, Status())

    stale = cycle(max_input_age_s=1800)
    assert stale.run(None, {}) == []  # type: ignore[arg-type]  # no batch: the engine is not used
    assert stale.status.feed == "late" and "2024-06-01T00:25:00" in stale.status.feed_note
    replayed = cycle(max_input_age_s=None, catch_up_steps=2)
    written = replayed.run(None, {})  # type: ignore[arg-type]
    assert [p.name for p in written] == ["20240601T002500Z.nc", "20240601T002000Z.nc", "20240601T001500Z.nc"]
    assert replayed.status.feed == "ok"
