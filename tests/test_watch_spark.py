"""``nowcast watch --engine spark``: a Structured Streaming query in local mode gives the same forecasts."""

from __future__ import annotations

import logging
import re
import threading

import pytest

from nowcast.config import validate
from nowcast.predict.loading import load_model
from nowcast.watch import WatchConfig
from nowcast.watch.replay import deliver
from nowcast.watch.status import read_status
from nowcast.watch.stream import watch_stream
from tests.cf_archive import write_archive
from tests.test_watch import STEP, T0, assert_same_as_predict, counts, forecast_times, name_of, wait_for


def _master() -> str:
    """``local[1]``, or the Spark session a test before this one left running (one per process)."""
    from pyspark import SparkContext

    active = SparkContext._active_spark_context
    return active.master if active is not None else "local[1]"


@pytest.mark.slow
def test_spark_stream_gives_the_same_forecasts(tmp_path, tiny_checkpoint, cli, caplog):
    """Scans delivered into the folder, a late one and a hidden one among them; stopped, then restarted."""
    archive = tmp_path / "archive"
    write_archive(archive, 6, shape=(24, 28))
    incoming, store, out = tmp_path / "incoming", tmp_path / "store.zarr", tmp_path / "out"
    cfg = validate(WatchConfig, {"max_input_age_s": None, "fallback": "none"}, "test")
    loaded = load_model(tiny_checkpoint)
    errors: list[BaseException] = []

    def start() -> tuple[threading.Event, threading.Thread]:
        stop = threading.Event()

        def run() -> None:
            try:
                watch_stream(incoming, store, out, loaded, cfg, master=_master(), stop=stop, trigger_s=1.0)
            except BaseException as e:  # noqa: BLE001 - handed to the test
                errors.append(e)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return stop, thread

    def close(stop: threading.Event, thread: threading.Thread) -> None:
        stop.set()
        thread.join(120)
        assert not thread.is_alive() and not errors, errors

    def until(what, why: str, timeout: float = 120.0) -> None:
        wait_for(lambda: bool(errors) or what(), timeout=timeout, why=why)
        assert not errors, errors

    deliver(archive / name_of(0), incoming)  # already there when the query starts
    stop, thread = start()
    try:
        for i in (1, 2):
            deliver(archive / name_of(i), incoming)
        until(lambda: counts(out)["forecasts"] == 1, timeout=180, why="the first whole window")
        (incoming / ".radar.part").write_bytes(b"still copying")  # hidden: never read
        deliver(archive / name_of(4), incoming / "sub")  # in a subfolder; step 3 is late
        until(lambda: counts(out)["scans"] == 4, why="step 4 ingested")
        deliver(archive / name_of(3), incoming)
        until(lambda: counts(out)["forecasts"] == 3, why="the windows ending at 3 and 4")
    finally:
        close(stop, thread)
    status = read_status(out)
    assert status["state"] == "stopped"
    assert status["counts"] == {
        "scans": 5,
        "forecasts": 3,
        "quarantined": 0,  # the hidden .part file was never read
        "late": 1,
        "duplicates": 0,
        "fallbacks": 0,
        "skipped": 0,
    }

    deliver(archive / name_of(5), incoming)  # lands while the service is down
    caplog.clear()
    caplog.set_level(logging.INFO, logger="nowcast.watch.stream")
    stop, thread = start()
    try:
        until(lambda: counts(out)["forecasts"] == 1, timeout=180, why="the scan that landed while down")
    finally:
        close(stop, thread)
    # the checkpoint handed over only the new file: nothing read twice, nothing counted as a duplicate
    handed = [int(m) for m in re.findall(r"micro-batch \d+: (\d+) new files", caplog.text)]
    assert handed == [1], caplog.text  # the checkpoint: only the file that landed while down
    restarted = read_status(out)["counts"]
    assert (restarted["scans"], restarted["duplicates"], restarted["quarantined"]) == (1, 0, 0)
    assert forecast_times(out) == {T0 + i * STEP for i in range(2, 6)}
    for i in range(2, 6):
        assert_same_as_predict(cli, store, out, tiny_checkpoint, T0 + i * STEP)
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".spark-checkpoint"]  # no partial file


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "flink"], "unknown watch engine; available: watchdog, spark"),
        (["--master", "local[1]"], "--engine spark"),
    ],
)
def test_engine_errors(tmp_path, cli, args, message):
    """An unknown engine, or a Spark master for the watchdog loop: a clear error before anything starts."""
    folders = ["--incoming", tmp_path / "in", "--store", tmp_path / "s.zarr", "--out", tmp_path / "out"]
    result = cli("watch", *folders, *args)
    assert result.exit_code != 0 and message in result.output, result.output
    assert not (tmp_path / "out").exists()
