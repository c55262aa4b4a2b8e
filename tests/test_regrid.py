"""Regridding (nowcast.regrid): area means and no-data masks kept, on generated and real OPERA fields."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from nowcast.config import validate
from nowcast.ingest.config import IngestConfig
from nowcast.ingest.readers import read_scan
from nowcast.ingest.run import run_ingest
from nowcast.regrid import plan_regrid, regridder_to
from nowcast.scan import Grid
from nowcast.store import StoreReader
from tests.cf_archive import write_archive
from tests.readers_helpers import OPERA_DIR, OPERA_FILE, real, real_files

LAEA = "+proj=laea +lat_0=55 +lon_0=10 +x_0=0 +y_0=0 +ellps=WGS84 +units=m"
# 128 km x 128 km of the 2018-08-24 OPERA composites where it rains
OPERA_CROP = {"x_min": 2_064_000, "x_max": 2_192_000, "y_min": -2_992_000, "y_max": -2_864_000}


def showers(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Rain on about half the pixels, dry elsewhere, and a no-data block in the upper-left corner."""
    rng = np.random.default_rng(seed)
    rain = rng.gamma(0.5, 3.0, size=shape).astype(np.float32)
    rain[rng.random(shape) < 0.5] = 0.0
    rain[: shape[0] // 5, : shape[1] // 4] = np.nan
    return rain


def area_mean_error(before: np.ndarray, after: np.ndarray) -> float:
    return abs(float(np.nanmean(after)) / float(np.nanmean(before)) - 1)


@pytest.mark.parametrize(
    ("pixel", "target", "method"),
    [
        (999.7, 1000.0, "keep"),  # within 1 %: the same size, coordinates kept
        (1200.0, 1000.0, "bilinear"),
        (2000.0, 1000.0, "bilinear"),
        (400.0, 1000.0, "average"),
        (500.0, 1000.0, "block"),
        (999.7, 2000.0, "average"),
    ],
)
def test_regrid_keeps_the_area_mean_and_the_no_data_mask(pixel, target, method):
    rain = showers((150, 160))
    source = Grid.from_corner(0.0, 150 * pixel, pixel, (150, 160), LAEA)
    regrid = plan_regrid(source, target)
    out = regrid.apply(rain)
    assert regrid.method == method
    assert out.shape == regrid.target.shape and out.dtype == np.float32
    assert area_mean_error(rain, out) < 0.01
    if method == "keep":
        np.testing.assert_array_equal(regrid.target.x, source.x)  # 999.7 m stays 999.7 m
    else:
        assert regrid.target.pixel_size == pytest.approx(target)
    # no data where the source had none, data where it had, both sides of the corner's edge
    x_edge, y_edge = source.x[160 // 4], source.y[150 // 5]
    inside = (regrid.target.x[None, :] < x_edge - target) & (regrid.target.y[:, None] > y_edge + target)
    outside = (regrid.target.x[None, :] > x_edge + target) | (regrid.target.y[:, None] < y_edge - target)
    assert np.isnan(out[inside]).all() and np.isfinite(out[outside]).all()
    assert abs(np.isnan(out).mean() - np.isnan(rain).mean()) < 0.02
    assert ((out == 0) & outside).any()  # dry stays dry, apart from no data


def test_lon_lat_grid_goes_to_a_local_equal_area_projection_and_back():
    lon = 5.0 + 0.01 * (np.arange(300) + 0.5)
    lat = 52.0 - 0.01 * (np.arange(200) + 0.5)
    source = Grid(x=lon, y=lat, crs="EPSG:4326")
    rain = showers(source.shape, seed=1)
    regrid = plan_regrid(source, 1000.0)
    assert "+proj=laea" in regrid.target.crs and "+lat_0=51" in regrid.target.crs and "+lon_0=6.5" in regrid.target.crs
    out = regrid.apply(rain)
    assert regrid.target.pixel_size == 1000.0 and area_mean_error(rain, out) < 0.01
    back = regridder_to(regrid.target, source).apply(out)
    assert back.shape == source.shape and area_mean_error(rain, back) < 0.01
    agree = np.isnan(back) == np.isnan(rain)
    assert agree.mean() > 0.98


def test_real_opera_2km_to_1km_and_1500m_keeps_the_area_mean():
    scan = read_scan(real(OPERA_FILE))
    rows = (scan.grid.y <= OPERA_CROP["y_max"]) & (scan.grid.y >= OPERA_CROP["y_min"])
    cols = (scan.grid.x <= OPERA_CROP["x_max"]) & (scan.grid.x >= OPERA_CROP["x_min"])
    grid = Grid(x=scan.grid.x[cols], y=scan.grid.y[rows], crs=scan.grid.crs)
    rain = scan.rain_rate[np.ix_(rows, cols)]
    assert np.nanmean(rain) > 0.5  # it rains there
    for target in (1000.0, 1500.0, 4000.0):
        out = plan_regrid(grid, target).apply(rain)
        assert area_mean_error(rain, out) < 0.01, target


@pytest.mark.slow
def test_ingest_regrids_opera_to_1km_and_forecasts_from_it(tmp_path, cli):
    """Four real 2 km OPERA composites, cropped and put on 1 km by ingest, then a forecast."""
    files = real_files(OPERA_DIR, "T_PAAH21_C_EUOC_201808241[89]*.hdf")[:4]
    src = tmp_path / "src"
    src.mkdir()
    for f in files:
        (src / f.rsplit("/", 1)[-1]).symlink_to(f)
    config = validate(
        IngestConfig,
        {
            "source": {"paths": [str(src)]},
            "store": {"path": str(tmp_path / "o.zarr"), "chunk_time": 4, "chunk_space": 64},
            "align": {"time_step_s": 900, "pixel_size_m": 1000.0, "crop": OPERA_CROP},
            "engine": {"name": "serial"},
        },
    )
    summary = run_ingest(config, progress=False)
    assert summary.counts["ingested"] == 4
    reader = StoreReader(str(tmp_path / "o.zarr"))
    assert reader.grid.pixel_size == 1000.0 and reader.grid.shape == (128, 128)
    scan = read_scan(files[-1])
    rows = (scan.grid.y <= OPERA_CROP["y_max"]) & (scan.grid.y >= OPERA_CROP["y_min"])
    cols = (scan.grid.x <= OPERA_CROP["x_max"]) & (scan.grid.x >= OPERA_CROP["x_min"])
    last = reader.read(3, 4)[0]
    assert area_mean_error(scan.rain_rate[np.ix_(rows, cols)], last) < 0.01
    out = tmp_path / "f.nc"
    done = cli("predict", "--method", "sprog", "--input", tmp_path / "o.zarr", "--out", out, "--leads", "2")
    assert done.exit_code == 0, done.output
    forecast = xr.open_dataset(out)["rainfall_rate"].values
    assert forecast.shape == (2, 128, 128) and np.nanmin(forecast) >= 0
    # sensible: one step (15 min) ahead the rain is where it was, with about its area mean
    assert area_mean_error(last, forecast[0]) < 0.3
    both = np.isfinite(last) & np.isfinite(forecast[0])
    assert np.corrcoef(last[both], forecast[0][both])[0, 1] > 0.6


def test_predict_from_a_999_7_m_grid_runs_on_it(tmp_path, cli, tiny_checkpoint):
    fields = write_archive(tmp_path / "raw", 4, shape=(32, 40), pixel_size=999.7)
    out = tmp_path / "f.nc"
    done = cli("predict", "--checkpoint", tiny_checkpoint, "--input", tmp_path / "raw", "--out", out, "--leads", "2")
    assert done.exit_code == 0, done.output
    ds = xr.open_dataset(out)
    np.testing.assert_allclose(ds["x"].values, -50_000 + 999.7 * (np.arange(40) + 0.5))  # coordinates kept
    rain = ds["rainfall_rate"].values
    np.testing.assert_array_equal(np.isnan(rain[0]), np.isnan(fields[3]))
    assert np.nanmin(rain) >= 0
