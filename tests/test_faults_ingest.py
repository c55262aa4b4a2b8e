"""Ingest killed with SIGKILL at many points, and two ingests on one store at once.

Real processes, really killed: `nowcast ingest` runs in its own process group (Dask workers
included) and the whole group gets SIGKILL when the store reaches a chosen state. A re-run
must then produce the same store as an uninterrupted run: arrays, valid flags, manifest.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from nowcast import store
from nowcast.ingest import manifest
from nowcast.ingest.lock import store_lock
from tests.cf_archive import write_archive

pytestmark = pytest.mark.slow
NOWCAST = [sys.executable, "-m", "nowcast"]


def write_config(tmp_path: Path, src: Path, dst: Path, engine: str, name: str) -> Path:
    config = {
        "source": {"paths": [str(src)]},
        "store": {"path": str(dst), "chunk_time": 2, "chunk_space": 64},
        "engine": {"name": engine, "n_workers": 2},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_ingest(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*NOWCAST, "ingest", "--config", str(config), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def manifest_parts(dst: Path) -> int:
    folder = dst / manifest.MANIFEST_DIR
    return len(list(folder.glob("part-*.json"))) if folder.exists() else 0


def kill_when(proc: subprocess.Popen, ready, timeout_s: float = 120) -> bool:
    """SIGKILL the run's process group as soon as ``ready()``; False if it finished first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            kill_group(proc)
            return True
        time.sleep(0.002)
    kill_group(proc)
    raise AssertionError("the ingest neither finished nor reached the kill point in time")


def snapshot(dst: Path):
    reader = store.StoreReader(str(dst))
    records = {p: (r.status, r.index) for p, r in manifest.read_manifest(str(dst)).items()}
    return reader.valid.copy(), reader.read(0, reader.n_times), records


def assert_same_store(a: Path, b: Path) -> None:
    valid_a, data_a, records_a = snapshot(a)
    valid_b, data_b, records_b = snapshot(b)
    assert np.array_equal(valid_a, valid_b)
    np.testing.assert_array_equal(data_a, data_b)
    assert records_a == records_b
    indices = [index for status, index in records_b.values() if status == "ingested"]
    assert len(indices) == len(set(indices))  # no time written twice


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    src = tmp_path_factory.mktemp("archive")
    write_archive(src, 40, shape=(48, 48), missing=(5, 17))
    (src / "radar_202406010320.nc").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # a damaged file
    return src


@pytest.fixture(scope="module")
def reference(archive, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    dst = tmp / "ref.zarr"
    subprocess.run(
        [*NOWCAST, "ingest", "--config", str(write_config(tmp, archive, dst, "serial", "ref")), "--no-progress"],
        check=False,
        capture_output=True,
        timeout=300,
    )
    assert store.StoreReader(str(dst)).valid.sum() == 38
    return dst


KILL_POINTS = {
    "template written": lambda dst: (dst / "zarr.json").exists(),
    "first chunk recorded": lambda dst: manifest_parts(dst) >= 1,
    "a third of the chunks": lambda dst: manifest_parts(dst) >= 7,
    "two thirds of the chunks": lambda dst: manifest_parts(dst) >= 14,
    "all but the last chunks": lambda dst: manifest_parts(dst) >= 18,
}


@pytest.mark.parametrize("engine", ["serial", "dask"])
def test_killed_ingest_resumes_to_the_same_store(engine, archive, reference, tmp_path):
    dst = tmp_path / "killed.zarr"
    config = write_config(tmp_path, archive, dst, engine, "killed")
    killed_at = []
    for name, ready in KILL_POINTS.items():
        proc = start_ingest(config)
        if kill_when(proc, lambda ready=ready: ready(dst)):
            killed_at.append(name)
    assert len(killed_at) >= 3, f"only killed at {killed_at}"
    # the lock of the killed run is left behind; the re-run takes it over
    done = subprocess.run(
        [*NOWCAST, "ingest", "--config", str(config), "--no-progress"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 3, done.stdout + done.stderr  # 3: the damaged file is quarantined
    assert_same_store(reference, dst)
    again = subprocess.run(
        [*NOWCAST, "ingest", "--config", str(config), "--no-progress"], capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and "nothing new" in again.stdout + again.stderr


def test_second_ingest_on_a_locked_store_refuses_and_a_dead_owners_lock_is_taken_over(archive, tmp_path):
    dst = tmp_path / "locked.zarr"
    config = write_config(tmp_path, archive, dst, "serial", "locked")
    command = [*NOWCAST, "ingest", "--config", str(config), "--no-progress"]
    with store_lock(str(dst)):  # a live ingest (this test process) holds the store
        second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    assert "is being ingested by pid" in " ".join((second.stdout + second.stderr).split())
    assert not dst.exists()  # the refused run touched nothing

    lock = Path(str(dst) + ".lock")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "started": time.time() - 60}))
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stdout + done.stderr  # the damaged file is quarantined
    assert store.StoreReader(str(dst)).valid.sum() == 38
    assert not lock.exists()
