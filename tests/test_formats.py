"""GRIB2 (cfgrib) and pySTEPS importers as readers, against independent decodes of the same files.

GRIB2 files are made here from ecCodes' own GRIB2 sample; the expected values come from
ecCodes' raw decode of the message (values, bitmap, distinct latitudes and longitudes), not
from cfgrib. The pySTEPS wrapper is compared with calling pySTEPS' importer on a shared file.
"""

from __future__ import annotations

import numpy as np
import pytest

from nowcast.errors import ConfigError
from nowcast.ingest.config import ReaderOptions
from nowcast.ingest.readers import detect_format, get_reader, read_scan
from tests.readers_helpers import GRIB_MISSING as MISSING
from tests.readers_helpers import KNMI_FILE, real, write_grib


@pytest.fixture
def rates():
    rng = np.random.default_rng(0)
    values = rng.gamma(0.5, 3.0, 600)
    values[rng.random(600) < 0.4] = 0.0
    values[:45] = MISSING
    return values


def test_grib2_precipitation_rate_matches_eccodes(tmp_path, rates):
    path = tmp_path / "prate.grib2"
    raw = write_grib(
        path,
        [("typeOfFirstFixedSurface", 1), ("discipline", 0), ("parameterCategory", 1), ("parameterNumber", 7)],
        np.where(rates == MISSING, MISSING, rates / 3600.0),  # kg m-2 s-1
    )
    assert detect_format(str(path)) == "grib"
    scan = read_scan(str(path))
    assert scan.time == np.datetime64("2024-06-01T12:00")
    np.testing.assert_allclose(scan.rain_rate, raw["values"] * 3600.0, rtol=1e-5, atol=1e-4)
    assert np.array_equal(np.isnan(scan.rain_rate), np.isnan(raw["values"]))  # the bitmap: no data
    assert (scan.rain_rate == 0).sum() == (raw["values"] == 0).sum()  # dry stays dry
    np.testing.assert_allclose(scan.grid.y, np.sort(raw["lat"])[::-1])
    np.testing.assert_allclose(scan.grid.x, np.sort(raw["lon"]) - 360.0)
    assert scan.grid.crs == "EPSG:4326"


def test_grib2_accumulation_and_mrms_rate(tmp_path, rates):
    tp = write_grib(
        tmp_path / "tp.grib2",
        [("productDefinitionTemplateNumber", 8), ("paramId", 228228), ("indicatorOfUnitForTimeRange", 0)]
        + [("lengthOfTimeRange", 10)],
        rates,
    )
    scan = read_scan(str(tmp_path / "tp.grib2"))
    assert scan.time == np.datetime64("2024-06-01T12:10")  # the end of the 10-minute accumulation
    np.testing.assert_allclose(scan.rain_rate, tp["values"] * 6.0, rtol=1e-5, atol=1e-4)  # mm in 10 min -> mm/h
    mrms = np.where(rates == MISSING, -3.0, rates)  # MRMS PrecipRate: -3 where data is missing
    write_grib(tmp_path / "mrms.grib2", [("discipline", 209), ("parameterCategory", 6), ("parameterNumber", 1)], mrms)
    scan = read_scan(str(tmp_path / "mrms.grib2"))
    assert np.isnan(scan.rain_rate).sum() == 45
    np.testing.assert_allclose(np.nanmax(scan.rain_rate), rates[rates != MISSING].max(), rtol=1e-5)


@pytest.mark.slow  # importing pySTEPS and its KNMI importer: ~15 s here
def test_pysteps_importer_reader_equals_pysteps_and_the_own_reader():
    import pysteps.io

    path = real(KNMI_FILE)
    scan = read_scan(path, ReaderOptions(format="pysteps:knmi_hdf5"))
    # pySTEPS' configuration file gives knmi_hdf5 accutime 5, qty ACRR, pixelsize 1000
    values, _, metadata = pysteps.io.get_method("knmi_hdf5", "importer")(path, accutime=5, qty="ACRR", pixelsize=1000.0)
    expected = np.ma.filled(np.ma.asarray(values, dtype=np.float64), np.nan) * 60.0 / metadata["accutime"]
    assert metadata["unit"] == "mm" and metadata["yorigin"] == "upper"
    np.testing.assert_allclose(scan.rain_rate, expected, rtol=1e-6, atol=1e-6, equal_nan=True)
    own = read_scan(path)
    np.testing.assert_allclose(scan.rain_rate, own.rain_rate, atol=1e-4, equal_nan=True)
    np.testing.assert_allclose(scan.grid.x, own.grid.x)
    np.testing.assert_allclose(scan.grid.y, own.grid.y)
    assert scan.time == own.time


def test_unknown_pysteps_importer_lists_them(cli):
    with pytest.raises(ConfigError, match="odim_hdf5"):
        get_reader("pysteps:no_such_format")
    done = cli("inspect", "--format", "pysteps:knmi_hdf5", real(KNMI_FILE))
    assert done.exit_code == 0 and "pysteps:knmi_hdf5" in done.output and "1000 m" in done.output
