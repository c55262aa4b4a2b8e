"""CF conventions of the store and the forecasts, checked by the tools users open them with.

xarray (no warning, warnings as errors), rioxarray (the CRS), and the IOOS compliance checker
(``cf:1.8``, strict: no error and no warning).
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings

import numpy as np
import pytest
import xarray as xr
from pyproj import CRS

import nowcast
from nowcast import store
from nowcast.errors import StoreError
from nowcast.ingest.run import run_ingest
from tests.cf_archive import write_archive
from tests.test_ingest import make_config


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """A store as ingest leaves it: arrays, manifest folder and saved config side by side."""
    tmp = tmp_path_factory.mktemp("cf")
    write_archive(tmp / "src", 6, missing=(2,))
    run_ingest(make_config(tmp / "src", tmp / "s.zarr"), progress=False)
    return tmp / "s.zarr"


def test_store_opens_in_xarray_without_warning_as_cf(ingested):
    assert (ingested / "_manifest").is_dir() and (ingested / "ingest-config.yaml").is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import rioxarray  # noqa: F401 - registers ds.rio

        ds = xr.open_zarr(ingested)
        crs = ds.rio.crs
    assert CRS.from_user_input(crs.to_wkt()) == CRS.from_user_input(store.StoreReader(str(ingested)).grid.crs)
    assert ds["rainrate"].attrs["grid_mapping"] == "crs"
    assert ds["crs"].attrs["grid_mapping_name"] == "lambert_azimuthal_equal_area" and "crs_wkt" in ds["crs"].attrs
    for axis in ("x", "y"):
        assert ds[axis].attrs["standard_name"] == f"projection_{axis}_coordinate" and ds[axis].attrs["units"] == "m"
    assert np.issubdtype(ds["time"].dtype, np.datetime64) and str(ds["time"].values[0])[:16] == "2024-06-01T00:00"
    assert ds["rainrate"].encoding["dtype"] == np.uint16  # on disk: hundredths of mm/h, lossless to 0.01
    opened = nowcast.open_store(ingested)
    assert opened["rainrate"].dtype == np.float32 and np.isnan(opened["rainrate"].values[2]).all()


def test_a_store_without_consolidated_metadata_is_named_with_the_fix(ingested, tmp_path):
    import shutil

    old = tmp_path / "old.zarr"
    shutil.copytree(ingested, old)
    meta = json.loads((old / "zarr.json").read_text())
    meta.pop("consolidated_metadata")
    (old / "zarr.json").write_text(json.dumps(meta))
    assert store.StoreReader(str(old)).valid.sum() == 5  # the project's own readers do not need it
    with pytest.raises(StoreError, match="consolidate"):
        nowcast.open_store(old)
    store.consolidate(str(old))
    assert nowcast.open_store(old).sizes["time"] == 6


def check_cf(path) -> str:
    """The compliance checker's strict cf:1.8 report; empty when the file passes."""
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    with warnings.catch_warnings():  # the checker's own IOOS SOS plug-in announces its removal
        warnings.filterwarnings("ignore", message="The ioos_sos checker is deprecated")
        CheckSuite.load_all_available_checkers()
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        passed, errors = ComplianceChecker.run_checker(str(path), ["cf:1.8"], 0, "strict", "-", "text")
    return "" if passed and not errors else report.getvalue()


@pytest.mark.parametrize(
    "crs",
    [
        "+proj=stere +lat_0=90 +lon_0=0 +lat_ts=60 +x_0=0 +y_0=0 +ellps=WGS84 +units=m",  # KNMI-like
        "+proj=laea +lat_0=55 +lon_0=10 +x_0=0 +y_0=0 +ellps=WGS84 +units=m",  # OPERA-like
    ],
)
def test_forecast_passes_the_cf_checker_and_carries_its_crs(tmp_path, cli, tiny_checkpoint, crs):
    import rioxarray  # noqa: F401

    reader = store.write_mock_store(str(tmp_path / "m.zarr"), n_times=6, missing=())
    root = store.open_group(reader.path, mode="r+")
    root.attrs["crs"] = crs  # the mock's grid in another projection
    out = tmp_path / "f.nc"
    done = cli("predict", "--checkpoint", tiny_checkpoint, "--input", reader.path, "--out", out, "--leads", "2")
    assert done.exit_code == 0, done.output
    assert check_cf(out) == ""
    ds = xr.open_dataset(out, decode_coords="all")
    assert ds.rio.crs is not None and CRS.from_user_input(ds.rio.crs.to_wkt()) == CRS.from_user_input(crs)
    assert ds["time"].encoding["dtype"] == np.float64 and "_FillValue" not in ds["x"].encoding


@pytest.mark.slow  # three GRIB decodes and two forecasts: ~25 s on a loaded 2-core machine
def test_forecast_from_lon_lat_grib_back_on_its_grid_is_cf(tmp_path, cli, tiny_checkpoint):
    """MRMS-like 0.01 degree GRIB2 files: forecast on a local equal-area grid, or back on lon/lat."""
    from tests.readers_helpers import write_grib

    rate = [("typeOfFirstFixedSurface", 1), ("discipline", 0), ("parameterCategory", 1), ("parameterNumber", 7)]
    base = np.random.default_rng(0).gamma(0.5, 3.0, (20, 30)) / 3600.0
    (tmp_path / "raw").mkdir()
    for i in range(3):
        hhmm = 1200 + 5 * i
        write_grib(tmp_path / "raw" / f"mrms_20240601{hhmm}00.grib2", rate + [("dataTime", hhmm)], np.roll(base, i, 1))
    for grid in ("model", "input"):
        out = tmp_path / f"{grid}.nc"
        args = ("--checkpoint", tiny_checkpoint, "--input", tmp_path / "raw", "--out", out, "--output-grid", grid)
        done = cli("predict", *args, "--leads", "2")
        assert done.exit_code == 0, done.output
        assert check_cf(out) == ""
    on_model = xr.open_dataset(tmp_path / "model.nc")
    assert "+proj=laea" in on_model["crs"].attrs["proj4"] and on_model["x"].attrs["units"] == "m"
    back = xr.open_dataset(tmp_path / "input.nc")
    assert back["rainfall_rate"].shape == (2, 20, 30) and back["x"].attrs["standard_name"] == "longitude"
    np.testing.assert_allclose(back["y"].values, 52.0 - 0.01 * np.arange(20), atol=1e-6)
