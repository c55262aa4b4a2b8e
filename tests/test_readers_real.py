"""Every real radar file in the shared archive, read and checked against facts read independently
(file-name times, raw maxima with the documented scaling, no-data counts, one grid per network)."""

from __future__ import annotations

import h5py
import netCDF4
import numpy as np
import pytest

from nowcast.ingest.config import ReaderOptions
from nowcast.ingest.readers import detect_format, read_scan
from tests.readers_helpers import BOM_C10_DIR, BOM_CSCN_DIR, KNMI_DIR, OPERA_DIR, RMI_DIR, real_files, time_in_name

pytestmark = pytest.mark.slow
DEFAULT = ReaderOptions()


def assert_one_grid(scans) -> None:
    first = scans[0].grid
    assert all(s.grid.same_as(first, atol_m=0.01) for s in scans)


def test_all_knmi_files():
    scans = []
    for path in real_files(KNMI_DIR, "*.h5"):
        assert detect_format(path) == "knmi"
        scan = read_scan(path, DEFAULT)
        with h5py.File(path, "r") as f:
            raw = f["image1/image_data"][()]
            end = f["overview"].attrs["product_datetime_end"][0].decode()
        assert scan.time == time_in_name(path)
        assert end.startswith(scan.time.astype(object).strftime("%d-%b-%Y;%H:%M").upper())
        valid = raw != 65535
        assert np.isnan(scan.rain_rate).sum() == (~valid).sum()
        assert np.nanmax(scan.rain_rate) == pytest.approx(raw[valid].max() * 0.01 * 12, rel=1e-6)
        scans.append(scan)
    assert len({s.time for s in scans}) == len(scans)
    assert_one_grid(scans)


def test_all_rmi_files():
    scans = []
    for path in real_files(RMI_DIR, "*.hdf"):
        scan = read_scan(path, DEFAULT)
        with h5py.File(path, "r") as f:
            raw = f["dataset1/data1/data"][()]
        assert scan.time == time_in_name(path)
        np.testing.assert_array_equal(np.isnan(scan.rain_rate), np.isnan(raw))
        assert np.nanmax(scan.rain_rate) == np.nanmax(raw)
        scans.append(scan)
    assert_one_grid(scans)


def test_all_opera_files_read_with_isolated_outliers_masked():
    scans, n_outliers = [], 0
    for path in real_files(OPERA_DIR, "*.hdf"):
        with h5py.File(path, "r") as f:
            raw = f["dataset1/data1/data"][()]
            nodata = f["dataset1/what"].attrs["nodata"]
        scan = read_scan(path, DEFAULT)
        # OPERA composites carry isolated clutter pixels of several hundred mm/h: no data, not rain
        outliers = (raw > DEFAULT.max_rain_mmh).sum()
        n_outliers += outliers
        assert scan.time == time_in_name(path)
        assert np.isnan(scan.rain_rate).sum() == (raw == nodata).sum() + outliers
        assert np.nanmax(scan.rain_rate) <= DEFAULT.max_rain_mmh
        scans.append(scan)
    assert n_outliers > 0  # the archive has some (e.g. 8646 mm/h at 22:15)
    assert_one_grid(scans)


@pytest.mark.parametrize("folder, minutes", [(BOM_C10_DIR, 10), (BOM_CSCN_DIR, 6)])
def test_all_bom_files(folder, minutes):
    scans = []
    for path in real_files(folder, "*.nc"):
        assert detect_format(path) == "cf"
        scan = read_scan(path, DEFAULT)
        with netCDF4.Dataset(path) as ds:
            ds.set_auto_maskandscale(False)
            raw = ds["precipitation"][:]
            period_s = int(ds["valid_time"][...]) - int(ds["start_time"][...])
        assert period_s == minutes * 60
        assert scan.time == time_in_name(path)
        assert np.nanmax(scan.rain_rate) == pytest.approx(raw.max() * 0.05 * 60 / minutes, rel=1e-5)
        scans.append(scan)
    assert_one_grid(scans)
