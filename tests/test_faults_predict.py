"""Predict under faults: a full disk, a read-only folder, a store deleted mid-forecast, odd inputs.

Each ends in a forecast or a clear error, never a traceback, NaN noise or a half-written file
under the final name. Full and read-only folders are real tmpfs mounts (skipped where this
process may not mount, e.g. without root).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from nowcast.errors import StoreError
from nowcast.predict.inputs import store_window
from nowcast.store import StoreReader, create_store, open_group, read_layout, write_mock_store, write_time_chunk
from tests.predict_helpers import TINY, write_checkpoint


@contextmanager
def tmpfs(path: Path, options: str):
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def predict(ckpt: Path, store: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "nowcast",
            "predict",
            "--checkpoint",
            str(ckpt),
            "--input",
            str(store),
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    store = tmp / "store.zarr"
    write_mock_store(str(store), n_times=24, shape=(96, 96), chunk_time=8, missing=())
    return write_checkpoint(tmp / "tiny.pt"), store


@pytest.mark.parametrize("options, message", [("size=16k", "No space left"), ("ro", "Read-only file system")])
def test_full_or_read_only_output_folder(setup, tmp_path, options, message):
    ckpt, store = setup
    with tmpfs(tmp_path / "mnt", options) as folder:
        done = predict(ckpt, store, folder / "forecast.nc", "--plot")
        output = " ".join((done.stdout + done.stderr).split())  # log lines are wrapped to the terminal
        assert done.returncode == 2, output
        assert message in output and "Traceback" not in output
        assert list(folder.iterdir()) == []  # neither the forecast nor a temporary file is left


def test_store_deleted_under_a_running_forecast(setup, tmp_path):
    _, store = setup
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    reader = StoreReader(str(copy))  # the forecast has opened the store and read its valid flags...
    shutil.rmtree(copy)  # ...when the store disappears
    with pytest.raises(StoreError, match="deleted or rewritten"):
        store_window(reader, TINY.num_input_frames)


def test_all_dry_input_gives_a_dry_forecast(setup, tmp_path):
    ckpt, source = setup
    src = StoreReader(str(source))
    dry = tmp_path / "dry.zarr"
    root = create_store(str(dry), read_layout(open_group(str(source))), src.n_times)
    rain = np.zeros((8, *src.grid.shape), np.float32)
    rain[:, :4] = np.nan  # a no-data strip
    for chunk in range(3):
        write_time_chunk(root, src.layout, chunk, rain, np.ones(8, bool))
    out = tmp_path / "dry.nc"
    done = predict(ckpt, dry, out)
    assert done.returncode == 0, done.stderr
    import xarray as xr

    with xr.open_dataset(out) as ds:
        forecast = ds["rainfall_rate"].values
    assert np.isnan(forecast[:, :4]).all()  # no data stays no data
    inside = forecast[:, 4:]
    assert np.isfinite(inside).all() and (inside >= 0).all()
