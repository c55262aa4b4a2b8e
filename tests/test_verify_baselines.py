"""Baselines: one contract for every registry member, then analytic and real-data behaviour."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nowcast.errors import ConfigError
from nowcast.verify.baselines import (
    BASELINES,
    extrapolation,
    get_baseline,
    import_pysteps,
    make_forecaster,
    persistence,
)
from nowcast.verify.metrics import ScoreAccumulator

KNMI = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "radar" / "KNMI" / "2010" / "08"


def moving_blob(n_frames: int, shape=(96, 96), speed=(0.0, 2.0), start=(48.0, 20.0), peak=10.0, sigma=6.0):
    """A Gaussian rain cell (peak mm/h) moving ``speed`` (dy, dx) pixels per step."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    frames = []
    for t in range(n_frames):
        cy, cx = start[0] + speed[0] * t, start[1] + speed[1] * t
        frames.append(peak * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2)))
    return np.round(np.array(frames), 2).astype(np.float32)


def scores(forecast, obs):
    acc = ScoreAccumulator(forecast.shape[0], 1000.0)
    acc.add(forecast, obs)
    return acc.result()


def test_unknown_baseline_lists_names():
    with pytest.raises(ConfigError, match="available: extrapolation, nowcast-sprog, persistence, sprog"):
        get_baseline("climatology")


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_contract(name):
    frames = moving_blob(4, shape=(40, 48), start=(20.0, 10.0), sigma=4.0)
    frames[:, :3, :] = np.nan  # a strip of no data
    before = frames.copy()
    forecast = get_baseline(name)(frames, 3, 1000.0, 300)
    assert forecast.shape == (3, 40, 48) and forecast.dtype == np.float32
    np.testing.assert_array_equal(frames, before)  # inputs untouched
    assert np.isnan(forecast[:, 0, :]).all(), "no data stays no data"
    assert np.isfinite(forecast[:, 10:30, 30:40]).all() and (np.nan_to_num(forecast) >= 0).all()
    assert np.nanmax(forecast[0]) > 5.0
    dry = get_baseline(name)(np.zeros((3, 16, 16), np.float32), 2, 1000.0, 300)
    np.testing.assert_array_equal(dry, 0.0)
    empty = get_baseline(name)(np.full((3, 16, 16), np.nan, np.float32), 2, 1000.0, 300)
    assert empty.shape == (2, 16, 16) and np.isnan(empty).all()


def test_extrapolation_follows_a_moving_cell_and_persistence_does_not():
    frames = moving_blob(3 + 6)
    inputs, obs = frames[:3], frames[3:]
    ext = scores(extrapolation(inputs, 6), obs)
    per = scores(persistence(inputs, 6), obs)
    assert min(ext["CSI@1"]) > 0.9
    assert min(np.array(ext["CSI@1"]) - np.array(per["CSI@1"])) > 0.05
    assert ext["CSI@1"][-1] > per["CSI@1"][-1] + 0.4
    assert all(np.diff(per["CSI@1"]) < 0) and all(np.diff(per["MAE"]) > 0)
    assert max(ext["MAE"]) < 0.25 * per["MAE"][-1]


def test_extrapolation_marks_inflow_from_outside_as_no_data():
    frames = moving_blob(3 + 4)
    forecast = extrapolation(frames[:3], 4)
    nan_columns = [int(np.isnan(f).all(axis=0).sum()) for f in forecast]
    assert nan_columns[0] >= 1 and all(np.diff(nan_columns) > 0), nan_columns  # the inflow edge grows
    assert np.isnan(forecast[:, :, 0]).all() and np.isfinite(forecast[:, 10:-10, -1]).all()


def test_make_forecaster_binds_grid_and_options():
    frames = moving_blob(4, shape=(32, 32), start=(16.0, 8.0), sigma=3.0)
    f = make_forecaster("extrapolation", 1000.0, 300, num_motion_frames=2)
    np.testing.assert_array_equal(f(frames, 2), extrapolation(frames, 2, num_motion_frames=2))
    with pytest.raises(ValueError, match="at least 2 input frames"):
        f(frames[-1:], 2)


def test_import_pysteps_is_quiet():
    code = "from nowcast.verify.baselines import import_pysteps; import_pysteps('pysteps.motion')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Pysteps" not in done.stdout and "Pysteps" not in done.stderr


def test_verify_does_not_import_torch_train_ingest_or_the_store():
    code = (
        "import sys, nowcast.verify, nowcast.verify.report; "
        "bad = [m for m in sys.modules if m in ('torch', 'zarr') "
        "or m.startswith(('nowcast.train', 'nowcast.ingest', 'nowcast.store'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_extrapolation_beats_persistence_on_real_knmi_rain():
    if not KNMI.is_dir():
        pytest.skip(f"real radar data not found at {KNMI}")
    importers = import_pysteps("pysteps.io.importers")
    files = sorted(KNMI.glob("RAD_NL25_RAP_5min_20100826*.h5"))[40:49]
    frames = np.array([importers.import_knmi_hdf5(str(f))[0] * 12.0 for f in files], np.float32)  # mm/5 min -> mm/h
    inputs, obs = frames[:3], frames[3:]
    ext = scores(extrapolation(inputs, 6), obs)
    per = scores(persistence(inputs, 6), obs)
    assert ext["CSI@1"][-1] > per["CSI@1"][-1] and ext["FSS@1"][-1] > per["FSS@1"][-1]
    assert ext["MAE"][-1] < per["MAE"][-1]
