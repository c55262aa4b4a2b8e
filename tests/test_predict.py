"""nowcast predict: input windows, checkpoint checks, CF output, atomic writes, pictures, tiling."""

from __future__ import annotations

import json
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import torch
import xarray as xr

from nowcast.checkpoint import FORMAT
from nowcast.errors import CheckpointError, ConfigError, MissingFramesError
from nowcast.predict import PredictConfig, load_model, make_forecast, run_model, select_window, store_window
from nowcast.predict.inputs import Frames, latest_complete_init
from nowcast.predict.loading import default_checkpoint, resolve_checkpoint
from nowcast.predict.writer import write_dataset
from nowcast.scan import Grid
from nowcast.store import write_mock_store
from tests.predict_helpers import TINY, tiny_model, write_checkpoint

STEP = np.timedelta64(300, "s")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """24 five-minute frames of 64x64, time 20 missing, no data in the top three rows."""
    return write_mock_store(
        str(tmp_path_factory.mktemp("predict") / "mock.zarr"), n_times=24, shape=(64, 64), missing=(20,)
    )


def test_predict_from_store_writes_cf_netcdf(store, tiny_checkpoint, tmp_path, cli):
    out = tmp_path / "forecast.nc"
    # float32 so the values can be compared with the model's own to 1e-5 (auto may pick bfloat16)
    done = cli("predict", "--checkpoint", tiny_checkpoint, "--input", store.path, "--out", out, "precision=float32")
    assert done.exit_code == 0, done.output
    init = store.times[23]  # the newest valid frame
    ds = xr.open_dataset(out)
    rain = ds["rainfall_rate"]
    assert rain.dims == ("time", "y", "x") and rain.shape == (4, 64, 64)
    assert rain.attrs["units"] == "mm h-1" and rain.attrs["standard_name"] == "rainfall_rate"
    np.testing.assert_array_equal(ds["time"].values.astype("datetime64[s]"), init + STEP * np.arange(1, 5))
    assert ds["forecast_reference_time"].values.astype("datetime64[s]") == init
    np.testing.assert_array_equal(ds["lead_time"].values, [5, 10, 15, 20])
    np.testing.assert_allclose(ds["x"].values, store.grid.x)
    np.testing.assert_allclose(ds["y"].values, store.grid.y)
    assert ds["x"].attrs["standard_name"] == "projection_x_coordinate"
    assert ds["crs"].attrs["grid_mapping_name"] == "polar_stereographic"
    assert ds["crs"].attrs["proj4"] == store.grid.crs and "PROJCRS" in ds["crs"].attrs["crs_wkt"]
    assert json.loads(ds.attrs["model_config"]) == TINY.model_dump(mode="json")
    assert ds.attrs["model_step"] == 123 and ds.attrs["model_checkpoint"] == str(tiny_checkpoint)
    assert (
        "leads: null" in ds.attrs["predict_config"]
        and "precision: float32" in ds.attrs["predict_config"]
        and "nowcast predict" in ds.attrs["history"]
    )
    # the values are the model's on the last three frames; no data where the last frame has none
    frames = store.read(21, 24)
    with torch.inference_mode():
        expected = tiny_model()(torch.from_numpy(frames)[None, :, None])[0, :, 0].numpy()
    expected[:, ~np.isfinite(frames[-1])] = np.nan
    np.testing.assert_allclose(rain.values, expected, rtol=1e-5, atol=1e-5)
    assert np.isnan(rain.values[:, :3]).all() and np.isfinite(rain.values[:, 3:]).all()
    with netCDF4.Dataset(out) as nc:  # the raw file, as any CF reader sees it
        assert nc.Conventions == "CF-1.8"
        assert nc["rainfall_rate"].grid_mapping == "crs" and np.isnan(nc["rainfall_rate"]._FillValue)
        assert nc["time"].units.startswith("seconds since 1970-01-01")
        assert nc["forecast_reference_time"].standard_name == "forecast_reference_time"
        assert nc["lead_time"].standard_name == "forecast_period" and nc["lead_time"].units == "minutes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forecast.nc"]  # no temporary left behind


def test_time_picks_latest_valid_frame_at_or_before(store, tiny_checkpoint):
    loaded = load_model(tiny_checkpoint)
    # time 20 is missing: asking for it (or for a moment just after it) starts from time 19
    for asked in (store.times[20], store.times[20] + np.timedelta64(90, "s")):
        window = store_window(store, 3, asked)
        assert window.init_time == store.times[19] and window.complete
        np.testing.assert_array_equal(window.frames.times, store.times[17:20])
    forecast = make_forecast(loaded, store_window(store, 3, store.times[10]), PredictConfig(leads=2))
    assert forecast.init_time == store.times[10]
    np.testing.assert_array_equal(forecast.valid_times, store.times[11:13])


def test_gap_in_window_names_missing_times(store, tiny_checkpoint, tmp_path, cli):
    window = store_window(store, 3, store.times[22])  # needs 20, 21, 22: 20 is missing
    assert not window.complete and list(window.missing) == [store.times[20]]
    with pytest.raises(MissingFramesError) as e:
        make_forecast(load_model(tiny_checkpoint), window, PredictConfig())
    assert str(store.times[20]) in str(e.value) and f"--time {store.times[19]}" in str(e.value)
    out = tmp_path / "f.nc"
    done = cli(
        "predict", "--checkpoint", tiny_checkpoint, "--input", store.path, "--out", out, "--time", str(store.times[22])
    )
    assert done.exit_code == 2 and str(store.times[20]) in done.output and not out.exists()
    bad = cli("predict", "--checkpoint", tiny_checkpoint, "--input", store.path, "--out", out, "--time", "noon")
    assert bad.exit_code == 2 and "is not a time" in bad.output


def test_fallback_extrapolation_when_frames_missing(store, tiny_checkpoint, tmp_path, cli):
    out = tmp_path / "f.nc"
    done = cli(
        "predict",
        "--checkpoint",
        tiny_checkpoint,
        "--input",
        store.path,
        "--out",
        out,
        "--time",
        str(store.times[22]),
        "--fallback",
        "extrapolation",
    )
    assert done.exit_code == 0, done.output
    ds = xr.open_dataset(out)
    assert ds.attrs["forecast_method"] == "extrapolation" and ds.attrs["fallback"] == 1
    assert str(store.times[20]) in ds.attrs["fallback_reason"]
    assert ds["rainfall_rate"].shape == (4, 64, 64) and np.nanmax(ds["rainfall_rate"].values) > 1


def test_select_window_and_latest_complete():
    grid = Grid.from_corner(0, 8000, 1000, (8, 8), "+proj=stere +lat_0=90")
    times = np.datetime64("2024-01-01T00:00", "s") + STEP * np.arange(6)
    valid = np.array([1, 1, 1, 0, 1, 1], bool)
    frames = Frames(times, np.zeros((6, 8, 8), np.float32), valid, grid, 300, "test")
    window = select_window(frames, 3)
    assert window.init_time == times[5] and list(window.missing) == [times[3]]
    assert latest_complete_init(valid, times, 3, times[5]) == times[2]
    assert latest_complete_init(valid, times, 4, times[5]) is None


@pytest.mark.parametrize(
    "facts, expected",
    [
        ({"pixel_size_m": 2000.0}, ("pixel_size_m", "2000", "1000")),
        ({"time_step_s": 600}, ("time_step_s", "600", "300")),
    ],
)
def test_checkpoint_mismatch_names_both_values(store, tmp_path, facts, expected, cli):
    ckpt = write_checkpoint(tmp_path / "other.pt", **facts)
    with pytest.raises(CheckpointError) as e:
        make_forecast(load_model(ckpt), store_window(store, 3), PredictConfig())
    assert all(part in str(e.value) for part in expected), str(e.value)
    done = cli("predict", "--checkpoint", ckpt, "--input", store.path, "--out", tmp_path / "f.nc")
    assert done.exit_code == 2 and expected[1] in done.output and not (tmp_path / "f.nc").exists()


def test_a_model_runs_at_the_stated_input_step(store, tmp_path, cli):
    """A 10-minute model on the 5-minute store: only when the user states the store's step, and that exactly."""
    ckpt = write_checkpoint(tmp_path / "m10.pt", time_step_s=600)
    refused = cli("predict", "--checkpoint", ckpt, "--input", store.path, "--out", tmp_path / "f.nc")
    assert refused.exit_code == 2 and "--input-time-step 300" in refused.output
    wrong = cli(
        "predict", "--checkpoint", ckpt, "--input", store.path, "--out", tmp_path / "f.nc", "--input-time-step", "360"
    )
    assert wrong.exit_code == 2 and "300 s, not the 360 s" in wrong.output and not (tmp_path / "f.nc").exists()
    done = cli(
        "predict",
        "--checkpoint",
        ckpt,
        "--input",
        store.path,
        "--out",
        tmp_path / "f.nc",
        "--leads",
        "2",
        "--input-time-step",
        "300",
    )
    assert done.exit_code == 0, done.output
    ds = xr.open_dataset(tmp_path / "f.nc")
    np.testing.assert_allclose(ds["lead_time"].values, [5, 10])  # minutes: the input's steps, not the model's
    assert ds.attrs["time_step_s"] == 300


class _WouldTouch:
    """Unpickling this (without weights_only) would create a file: proof that code ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_foreign_checkpoints_are_refused_without_running_code(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    torch.save(
        {
            "format": FORMAT,
            "version": 1,
            "model": {},
            "step": 0,
            "config": {"model": {}},
            "payload": _WouldTouch(marker),
        },
        evil,
    )
    with pytest.raises(CheckpointError, match="run code"):
        load_model(evil)
    assert not marker.exists()
    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, plain)
    with pytest.raises(CheckpointError, match="not a nowcast checkpoint"):
        load_model(plain)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.pt"):
        load_model(text)


def test_missing_default_checkpoint_says_pass_checkpoint():
    if default_checkpoint().is_file():
        assert resolve_checkpoint(None) == default_checkpoint()
    else:
        with pytest.raises(CheckpointError, match="--checkpoint"):
            resolve_checkpoint(None)


def test_failed_write_leaves_no_file_and_keeps_the_old_one(store, tiny_checkpoint, tmp_path, cli):
    bad = cli("predict", "--checkpoint", tiny_checkpoint, "--input", store.path, "--out", tmp_path / "f.grib")
    assert bad.exit_code == 2 and ".zarr" in bad.output and list(tmp_path.iterdir()) == []
    out = tmp_path / "f.nc"
    assert cli("predict", "--checkpoint", tiny_checkpoint, "--input", store.path, "--out", out).exit_code == 0
    before = out.read_bytes()
    ds = xr.open_dataset(out).load()
    ds.attrs["unwritable"] = {"a nested": "mapping"}  # netCDF4 fails on this after creating the file
    with pytest.raises(TypeError):
        write_dataset(ds, out)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["f.nc"]
    with pytest.raises(ConfigError):
        write_dataset(ds, tmp_path / "g.txt")


def test_zarr_output_and_replacement(store, tiny_checkpoint, tmp_path, cli):
    out = tmp_path / "forecast.zarr"
    for leads in ("4", "2"):  # the second write replaces the first whole
        done = cli("predict", "--checkpoint", tiny_checkpoint, "--input", store.path, "--out", out, "--leads", leads)
        assert done.exit_code == 0, done.output
    ds = xr.open_zarr(out, consolidated=False)
    assert ds["rainfall_rate"].shape == (2, 64, 64) and ds["rainfall_rate"].attrs["standard_name"] == "rainfall_rate"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forecast.zarr"]
    too_many = cli("predict", "--checkpoint", tiny_checkpoint, "--input", store.path, "--out", out, "--leads", "9")
    assert too_many.exit_code == 2 and "4 lead times" in too_many.output


def test_plot_writes_png_and_gif(store, tiny_checkpoint, tmp_path, cli):
    from PIL import Image

    out = tmp_path / "forecast.nc"
    done = cli("predict", "--checkpoint", tiny_checkpoint, "--input", store.path, "--out", out, "--plot")
    assert done.exit_code == 0, done.output
    with Image.open(tmp_path / "forecast.png") as png:
        assert png.format == "PNG" and png.size[0] > 600
    with Image.open(tmp_path / "forecast.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 3 + 4  # every input frame, then every lead
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forecast.gif", "forecast.nc", "forecast.png"]


def test_tiled_forecast_matches_whole_domain(store):
    model = tiny_model()
    frames = store.read(5, 8)[:, :, :62]  # 64 x 62: the width needs padding to the size divisor 4
    whole = run_model(model, frames)
    tiled = run_model(model, frames, tile_size=32, overlap=16)
    assert tiled.shape == whole.shape == (4, 64, 62)
    np.testing.assert_array_equal(np.isnan(tiled), np.isnan(whole))
    assert np.nanstd(whole) > 0.5  # a field that varies, so equality means something
    np.testing.assert_allclose(tiled, whole, atol=5e-3, equal_nan=True)
    budget = run_model(model, frames, max_pixels=40 * 40)  # automatic tiling above the pixel budget
    np.testing.assert_allclose(budget, whole, atol=5e-3, equal_nan=True)
    fast = run_model(model, frames, bfloat16=True)  # bfloat16 convolutions: same field, ~2-3 digits
    close = np.isclose(fast, whole, rtol=0.05, atol=0.05, equal_nan=True)  # a pixel may cross the dry threshold
    assert close.mean() > 0.999 and np.nanmax(np.abs(fast - whole)) < 0.5


def test_predict_imports_neither_ingest_nor_train():
    import subprocess
    import sys

    code = (
        "import sys, nowcast.predict, nowcast.predict.raw_input, nowcast.predict.writer; "
        "print(sorted(m for m in sys.modules if m.startswith(('nowcast.ingest', 'nowcast.train', 'pyspark'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_method_sprog_forecasts_without_a_checkpoint(store, tmp_path, cli):
    """--method sprog: nowcast's S-PROG, at the store's grid, to more leads than a model makes."""
    from nowcast.model import sprog
    from nowcast.model.config import MotionConfig, SprogConfig
    from nowcast.model.motion import estimate_motion
    from nowcast.model.transform import rain_to_z

    out = tmp_path / "sprog.nc"
    init = str(store.times[19])  # time 20 is missing: the last complete four frames end at 19
    done = cli("predict", "--method", "sprog", "--input", store.path, "--out", out, "--leads", "15", "--time", init)
    assert done.exit_code == 0, done.output
    ds = xr.open_dataset(out)
    assert ds["rainfall_rate"].shape == (15, 64, 64) and "S-PROG" in ds.attrs["source"]
    # the same numbers as S-PROG run directly on the last four frames
    frames = torch.from_numpy(store.read(16, 20))[None]
    has_data = torch.isfinite(frames)
    z = rain_to_z(torch.where(has_data, frames, 0.0), 0.1, 300.0)
    flow = estimate_motion(z, has_data, MotionConfig())
    expected = sprog.forecast(frames, flow, 15, SprogConfig())[0].numpy()
    np.testing.assert_allclose(ds["rainfall_rate"].values, expected, rtol=1e-4, atol=1e-4, equal_nan=True)
    refused = cli(
        "predict", "--method", "sprog", "--checkpoint", tmp_path / "x.pt", "--input", store.path, "--out", out
    )
    assert refused.exit_code != 0 and "--method sprog uses no checkpoint" in refused.output
    unknown = cli("predict", "--method", "steps", "--input", store.path, "--out", out)
    assert unknown.exit_code != 0 and "available: model, sprog" in unknown.output


def test_forecast_file_keeps_cf_rules_for_coordinates(store, tiny_checkpoint, tmp_path, cli):
    """What the CF checker asks: double time coordinates, no _FillValue on coordinates, and a
    polar-stereographic grid mapping with its latitude_of_projection_origin."""
    out = tmp_path / "forecast.nc"
    assert cli("predict", "--checkpoint", tiny_checkpoint, "--input", store.path, "--out", out).exit_code == 0
    with netCDF4.Dataset(out) as nc:
        for name in ("time", "forecast_reference_time", "lead_time", "x", "y"):
            assert nc[name].dtype == np.float64 and "_FillValue" not in nc[name].ncattrs(), name
        assert nc["crs"].grid_mapping_name == "polar_stereographic"
        assert nc["crs"].latitude_of_projection_origin == 90.0


def test_a_time_far_after_the_newest_scan_warns(store, tiny_checkpoint, tmp_path, cli):
    """A forecast asked for 2030 from 2024 data says so instead of passing old data off as new."""
    out = tmp_path / "late.nc"
    done = cli(
        "predict", "--checkpoint", tiny_checkpoint, "--input", store.path, "--out", out, "--time", "2030-01-01T00:00"
    )
    assert done.exit_code == 0, done.output
    assert "starts from old data" in done.output and str(store.times[23]) in done.output
    fresh = cli(
        "predict", "--checkpoint", tiny_checkpoint, "--input", store.path, "--out", out, "--time", str(store.times[23])
    )
    assert "old data" not in fresh.output
