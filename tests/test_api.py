"""The Python API: a forecast DataArray from xarray frames, with the command line's checks."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import nowcast
from nowcast.errors import CheckpointError, ConfigError
from nowcast.predict import load_model, run_model
from nowcast.store import write_mock_store
from tests.predict_helpers import write_checkpoint


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_mock_store(str(tmp_path_factory.mktemp("api") / "s.zarr"), n_times=12, shape=(48, 48), missing=())


def test_forecast_from_a_store_slice_equals_the_model(store, tmp_path):
    ckpt = write_checkpoint(tmp_path / "m.pt")
    ds = nowcast.open_store(store.path)
    rain = ds["rainrate"]
    assert rain.dtype == np.float32 and rain.attrs["crs"] == store.grid.crs
    frames = rain.isel(time=slice(0, 6))
    out = nowcast.forecast(frames, checkpoint=ckpt, leads=2)
    assert out.dims == ("time", "y", "x") and out.shape == (2, 48, 48)
    np.testing.assert_array_equal(out["lead_time"].values, [5.0, 10.0])
    assert out["forecast_reference_time"].values == frames["time"].values[-1]
    loaded = load_model(ckpt)
    n_in = loaded.cfg.num_input_frames
    expected = run_model(loaded.model, frames.values[-n_in:])[:2]
    np.testing.assert_allclose(out.values, expected, rtol=1e-5, atol=1e-5, equal_nan=True)


def test_forecast_checks_grid_and_time_axis(store, tmp_path):
    ckpt = write_checkpoint(tmp_path / "m.pt")
    frames = nowcast.open_store(store.path)["rainrate"].isel(time=slice(0, 6))
    coarse = frames.assign_coords(x=frames["x"] * 2, y=frames["y"] * 2)
    with pytest.raises(CheckpointError, match="pixel_size_m"):
        nowcast.forecast(coarse, checkpoint=ckpt)
    shuffled = frames.isel(time=[0, 1, 2, 4, 5, 3])
    with pytest.raises(ConfigError, match="regular increasing time axis"):
        nowcast.forecast(shuffled.isel(time=slice(-3, None)), checkpoint=ckpt)
    # S-PROG runs at the coarse grid's own pixel size
    out = nowcast.forecast(coarse, method="sprog", leads=3)
    assert out.shape == (3, 48, 48) and "S-PROG" in out.attrs["source"]


def test_read_scan_gives_a_data_array(tmp_path):
    from tests.cf_archive import write_archive

    write_archive(tmp_path / "radar", 1, shape=(16, 20))
    path = next((tmp_path / "radar").rglob("*.nc"))
    scan = nowcast.read_scan(path)
    assert isinstance(scan, xr.DataArray) and scan.shape == (16, 20) and scan.attrs["units"] == "mm h-1"


def test_forecast_with_members_is_the_command_line_ensemble(store):
    """``members=`` gives the members ``predict --members`` makes (same seed), their exceedance
    probabilities and mean, on the frames' valid times."""
    from nowcast.predict.ensemble import run_ensemble
    from nowcast.predict.loading import load_method

    frames = nowcast.open_store(store.path)["rainrate"].isel(time=slice(0, 6))
    out = nowcast.forecast(frames, method="sprog", leads=3, members=3, seed=7, probabilities=(1, 0.5))
    members = out["rainfall_rate_members"]
    assert members.dims == ("realization", "time", "y", "x") and members.shape == (3, 3, 48, 48)
    assert out["threshold"].values.tolist() == [0.5, 1.0]
    np.testing.assert_array_equal(out["lead_time"].values, [5.0, 10.0, 15.0])
    loaded = load_method("sprog", None, 3)
    expected = np.concatenate(list(run_ensemble(loaded.model, frames.values[-4:], 3, 3, 7)))
    np.testing.assert_allclose(members.values, expected, atol=0.006, equal_nan=True)
    finite = np.isfinite(members.values).all(axis=0)
    probability = (members.values >= 1.0).mean(axis=0)
    np.testing.assert_allclose(out["probability"].values[1][finite], probability[finite])
    np.testing.assert_allclose(out["rainfall_rate"].values[finite], members.values.mean(axis=0)[finite], rtol=1e-6)
    assert np.isnan(out["probability"].values[0][~finite]).all()
    with pytest.raises(ConfigError, match="at least 2 members"):
        nowcast.forecast(frames, method="sprog", leads=3, members=1)
