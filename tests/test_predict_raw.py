"""nowcast predict from a folder of raw CF NetCDF files: same frames as the files, coarsening, gaps."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from nowcast.ingest.align import coarsen_mean
from tests.cf_archive import LAEA, write_archive
from tests.predict_helpers import write_checkpoint

START = np.datetime64("2024-06-01T00:00", "s")
STEP = np.timedelta64(300, "s")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Six 5-minute CF files of 32x40 at 1 km; the last step (5) missing, so the newest is step 4."""
    folder = tmp_path_factory.mktemp("raw") / "radar"
    fields = write_archive(folder, 6, shape=(32, 40), missing=(5,))
    return folder, fields


def test_predict_from_raw_files(archive, tmp_path, cli, tiny_checkpoint):
    folder, fields = archive
    out = tmp_path / "f.nc"
    done = cli("predict", "--checkpoint", tiny_checkpoint, "--input", folder, "--out", out, "--leads", "2")
    assert done.exit_code == 0, done.output
    ds = xr.open_dataset(out)
    assert ds["forecast_reference_time"].values.astype("datetime64[s]") == START + 4 * STEP
    np.testing.assert_array_equal(ds["time"].values.astype("datetime64[s]"), START + STEP * np.array([5, 6]))
    np.testing.assert_allclose(ds["x"].values, -50_000 + 1000 * (np.arange(40) + 0.5))
    np.testing.assert_allclose(ds["y"].values, 50_000 - 1000 * (np.arange(32) + 0.5))
    assert ds["crs"].attrs["grid_mapping_name"] == LAEA["grid_mapping_name"]
    assert ds.attrs["input_times"].split() == [str(START + k * STEP) for k in (2, 3, 4)]
    # no data exactly where the newest file has none (the no-data corner of the known field)
    np.testing.assert_array_equal(np.isnan(ds["rainfall_rate"].values[0]), np.isnan(fields[4]))


def test_raw_files_are_coarsened_to_the_checkpoint_pixel_size(archive, tmp_path, cli):
    folder, fields = archive
    ckpt = write_checkpoint(tmp_path / "m2km.pt", pixel_size_m=2000.0)
    out = tmp_path / "f.nc"
    done = cli("predict", "--checkpoint", ckpt, "--input", folder, "--out", out, "--leads", "1")
    assert done.exit_code == 0, done.output
    ds = xr.open_dataset(out)
    assert ds["rainfall_rate"].shape == (1, 16, 20)
    np.testing.assert_allclose(ds["x"].values, -50_000 + 2000 * (np.arange(20) + 0.5))
    expected_mask = np.isnan(coarsen_mean(fields[4], 2, 0.5))
    np.testing.assert_array_equal(np.isnan(ds["rainfall_rate"].values[0]), expected_mask)


def test_raw_files_at_another_size_are_regridded_and_can_go_back(archive, tmp_path, cli):
    """1 km files, a 1.5 km model: bilinear to 1.5 km; --output-grid input writes on the files' 1 km grid."""
    folder, fields = archive
    ckpt = write_checkpoint(tmp_path / "m1500.pt", pixel_size_m=1500.0)
    done = cli("predict", "--checkpoint", ckpt, "--input", folder, "--out", tmp_path / "g.nc", "--leads", "1")
    assert done.exit_code == 0, done.output
    model_grid = xr.open_dataset(tmp_path / "g.nc")
    assert np.diff(model_grid["x"].values) == pytest.approx(1500.0)
    back = cli(
        "predict", "--checkpoint", ckpt, "--input", folder, "--out", tmp_path / "h.nc", "--leads", "1",
        "--output-grid", "input",
    )  # fmt: skip
    assert back.exit_code == 0, back.output
    ds = xr.open_dataset(tmp_path / "h.nc")
    np.testing.assert_allclose(ds["x"].values, -50_000 + 1000 * (np.arange(40) + 0.5))
    assert (np.isnan(ds["rainfall_rate"].values[0]) == np.isnan(fields[4])).mean() > 0.97


def test_raw_gap_names_the_missing_file_time(tmp_path, cli, tiny_checkpoint):
    folder = tmp_path / "radar"
    write_archive(folder, 6, shape=(32, 40), missing=(3,))
    done = cli("predict", "--checkpoint", tiny_checkpoint, "--input", folder, "--out", tmp_path / "f.nc")
    assert done.exit_code == 2 and str(START + 3 * STEP) in done.output
    ok = cli(
        "predict",
        "--checkpoint",
        tiny_checkpoint,
        "--input",
        folder,
        "--out",
        tmp_path / "f.nc",
        "--time",
        str(START + 2 * STEP),
    )
    assert ok.exit_code == 0, ok.output


def test_files_at_another_step_need_the_step_stated(tmp_path, cli, tiny_checkpoint):
    """6-minute files and a 5-minute model: refused with the fix named; with it, leads are 6 minutes apart."""
    folder = tmp_path / "radar6"
    write_archive(folder, 5, shape=(32, 40), step_min=6)
    out = tmp_path / "f.nc"
    refused = cli("predict", "--checkpoint", tiny_checkpoint, "--input", folder, "--out", out)
    assert refused.exit_code == 2 and "360 s apart" in refused.output and "--input-time-step 360" in refused.output
    assert not out.exists()
    done = cli(
        "predict",
        "--checkpoint",
        tiny_checkpoint,
        "--input",
        folder,
        "--out",
        out,
        "--leads",
        "2",
        "--input-time-step",
        "360",
    )
    assert done.exit_code == 0, done.output
    assert "trained at 300 s steps" in done.output
    ds = xr.open_dataset(out)
    six = np.timedelta64(360, "s")
    assert ds["forecast_reference_time"].values.astype("datetime64[s]") == START + 4 * six
    np.testing.assert_array_equal(ds["time"].values.astype("datetime64[s]"), START + six * np.array([5, 6]))
    assert ds.attrs["time_step_s"] == 360


@pytest.mark.slow  # the demo runs `nowcast predict` in a child process
def test_demo_forecasts_files_at_another_step_with_the_shipped_model(tmp_path, cli):
    """`make demo DATA=...`: the user's 6-minute files, through the real CLI; the shipped S-PROG
    model runs at the files' own step, read from their names, with or without --input-time-step."""
    folder = tmp_path / "radar6"
    write_archive(folder, 5, shape=(32, 40), step_min=6)
    out = tmp_path / "demo"
    done = cli("demo", "--data", folder, "--out", out)
    assert done.exit_code == 0, done.output
    ds = xr.open_dataset(out / "forecast.nc")
    assert ds.attrs["time_step_s"] == 360 and ds.sizes["time"] == 24
    np.testing.assert_array_equal(ds["lead_time"].values[:2], [6, 12])
    stated = cli("demo", "--data", folder, "--out", tmp_path / "stated", "--input-time-step", "360")
    assert stated.exit_code == 0, stated.output
    assert (out / "forecast.png").is_file() and (out / "forecast.gif").is_file()
