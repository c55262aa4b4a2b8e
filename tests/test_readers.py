"""Format readers: each checked against facts read independently from its files (raw arrays,
documented formulas, file-name times, corner lon/lat), plus files written here and damaged files."""

from __future__ import annotations

import shutil

import h5py
import netCDF4
import numpy as np
import pytest
from pyproj import CRS, Transformer
from typer.testing import CliRunner

from nowcast.errors import ConfigError, ReaderError
from nowcast.ingest.config import ReaderOptions
from nowcast.ingest.readers import available, detect_format, get_reader, read_scan
from nowcast.scan import Scan
from tests.readers_helpers import (
    BOM_C10_FILE,
    BOM_CSCN_FILE,
    KNMI_FILE,
    OPERA_FILE,
    RMI_FILE,
    real,
    time_in_name,
    write_cf,
    write_grib,
    write_odim,
)

DEFAULT = ReaderOptions()


def project(crs: str, lon: float, lat: float) -> tuple[float, float]:
    return Transformer.from_crs("EPSG:4326", CRS.from_user_input(crs), always_xy=True).transform(lon, lat)


def corners(scan: Scan) -> dict[str, tuple[float, float]]:
    x0, x1, y0, y1 = scan.grid.extent
    return {"LL": (x0, y0), "UL": (x0, y1), "UR": (x1, y1), "LR": (x1, y0)}


def some_pixels(mask: np.ndarray, n: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(mask)
    pick = np.random.default_rng(seed).choice(len(rows), size=min(n, len(rows)), replace=False)
    return rows[pick], cols[pick]


# --- real files, one of each -------------------------------------------------------------------


def test_knmi_values_period_time_and_grid():
    path = real(KNMI_FILE)
    scan = read_scan(path, DEFAULT)
    with h5py.File(path, "r") as f:
        raw = f["image1/image_data"][()]
        missing = int(f["image1/calibration"].attrs["calibration_missing_data"][0])
        corner_lonlat = f["geographic"].attrs["geo_product_corners"].reshape(4, 2)
    assert scan.time == time_in_name(path)
    # 5-minute accumulation in 0.01 mm steps (GEO=0.01*PV+0.0) -> mm/h is 12 times the amount
    rows, cols = some_pixels(raw != missing)
    np.testing.assert_allclose(scan.rain_rate[rows, cols], raw[rows, cols] * 0.01 * 12, rtol=1e-6)
    assert np.isnan(scan.rain_rate).sum() == (raw == missing).sum()
    assert scan.grid.shape == raw.shape and scan.grid.pixel_size == 1000.0
    # the file lists its corners as lon/lat: LL, UL, UR, LR
    for (lon, lat), (x, y) in zip(corner_lonlat, corners(scan).values()):
        px, py = project(scan.grid.crs, lon, lat)
        assert abs(px - x) < 2000 and abs(py - y) < 2000


def test_rmi_float_rates_nan_and_corners():
    path = real(RMI_FILE)
    scan = read_scan(path, DEFAULT)
    with h5py.File(path, "r") as f:
        raw = f["dataset1/data1/data"][()]
        where = dict(f["where"].attrs)
    assert scan.time == time_in_name(path)
    np.testing.assert_array_equal(scan.rain_rate, raw)  # float32 physical values, NaN kept
    for name, (x, y) in corners(scan).items():
        px, py = project(scan.grid.crs, where[f"{name}_lon"], where[f"{name}_lat"])
        assert abs(px - x) < 1000 and abs(py - y) < 1000, name


def test_opera_nodata_is_nan_and_undetect_is_dry():
    path = real(OPERA_FILE)
    scan = read_scan(path, DEFAULT)
    with h5py.File(path, "r") as f:
        raw = f["dataset1/data1/data"][()]
        what = dict(f["dataset1/what"].attrs)
        where = dict(f["where"].attrs)
    assert what["quantity"] == b"RATE"
    nodata, undetect = raw == what["nodata"], raw == what["undetect"]
    assert nodata.any() and undetect.any()
    assert np.isnan(scan.rain_rate).sum() == nodata.sum()
    assert (scan.rain_rate == 0).sum() == undetect.sum() + (raw == 0).sum()
    rows, cols = some_pixels(raw > 0)
    np.testing.assert_allclose(scan.rain_rate[rows, cols], raw[rows, cols] * what["gain"] + what["offset"], rtol=1e-6)
    assert scan.time == time_in_name(path)
    assert scan.grid.shape == (2200, 1900) and scan.grid.pixel_size == 2000.0
    for name in ("LL", "UR", "LR"):  # the reader places the grid from UL only
        px, py = project(scan.grid.crs, where[f"{name}_lon"], where[f"{name}_lat"])
        x, y = corners(scan)[name]
        assert abs(px - x) < 1000 and abs(py - y) < 1000, name


@pytest.mark.parametrize("which, minutes", [(BOM_C10_FILE, 10), (BOM_CSCN_FILE, 6)])
def test_bom_accumulation_over_start_to_valid_time(which, minutes):
    path = real(which)
    scan = read_scan(path, DEFAULT)
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        raw = ds["precipitation"][:]
        scale = float(ds["precipitation"].scale_factor)
        period_s = int(ds["valid_time"][...]) - int(ds["start_time"][...])
        x_km = ds["x"][:]
    assert period_s == minutes * 60
    rows, cols = some_pixels(raw > 0)
    np.testing.assert_allclose(scan.rain_rate[rows, cols], raw[rows, cols] * scale * 60 / minutes, rtol=1e-5)
    assert scan.time == time_in_name(path)
    np.testing.assert_allclose(scan.grid.x, x_km * 1000.0)
    assert scan.grid.pixel_size == 500.0 and scan.grid.shape == (512, 512)
    assert "+proj=aea" in scan.grid.crs


def test_bom_bias_correction_noise_reads_as_dry():
    path = real(BOM_C10_FILE.with_name("66_20201031_004000.prcp-c10.nc"))
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        raw = ds["precipitation"][:]
        fill = ds["precipitation"]._FillValue
    assert (raw == -2).any()  # -0.1 mm, two packing steps below zero, among dry pixels
    scan = read_scan(path, DEFAULT)
    assert np.all(scan.rain_rate[raw == -2] == 0)
    assert np.isnan(scan.rain_rate).sum() == (raw == fill).sum()


# --- CF files written here ---------------------------------------------------------------------


def field(ny: int = 6, nx: int = 5, seed: int = 1) -> np.ndarray:
    rain = np.random.default_rng(seed).gamma(0.5, 4.0, size=(ny, nx)).astype(np.float32)
    rain[0, 0] = np.nan
    rain[1, 1] = 0.0
    return rain


def test_cf_archive_file_round_trips(tmp_path):
    rain = field()
    scan = read_scan(write_cf(tmp_path / "a.bin", rain), DEFAULT)
    np.testing.assert_array_equal(scan.rain_rate, rain)
    assert scan.time == np.datetime64("2024-06-01T12:00", "s")
    assert scan.grid.x[0] == -19_500.0 and scan.grid.y[0] == 29_500.0
    expected = "+proj=laea +lat_0=55 +lon_0=10 +ellps=WGS84 +units=m"  # what the crs variable describes
    np.testing.assert_allclose(project(scan.grid.crs, 12.0, 56.0), project(expected, 12.0, 56.0), atol=0.01)


def test_cf_without_time_dimension_and_km_coordinates_south_up(tmp_path):
    rain = field()
    north_up = read_scan(write_cf(tmp_path / "n.nc", rain), DEFAULT)
    other = read_scan(write_cf(tmp_path / "s.nc", rain, xy_units="km", south_up=True, with_time_dim=False), DEFAULT)
    np.testing.assert_array_equal(other.rain_rate, rain)
    assert other.grid.same_as(north_up.grid)
    assert other.time == north_up.time


def test_cf_flux_and_reflectivity_conversions(tmp_path):
    rain = field()
    flux = read_scan(
        write_cf(tmp_path / "f.nc", rain / 3600.0, standard_name="precipitation_flux", units="kg m-2 s-1"), DEFAULT
    )
    np.testing.assert_allclose(flux.rain_rate, rain, rtol=1e-5)
    # Marshall-Palmer: Z = 200 R^1.6, so R = 10 mm/h is 10*log10(200 * 10**1.6) = 39.01 dBZ
    dbz = np.full((4, 4), 10 * np.log10(200 * 10**1.6), dtype=np.float32)
    dbz[0, 0], dbz[0, 1] = -10.0, np.nan
    scan = read_scan(
        write_cf(tmp_path / "z.nc", dbz, standard_name="equivalent_reflectivity_factor", units="dBZ"), DEFAULT
    )
    assert scan.rain_rate[2, 2] == pytest.approx(10.0, rel=1e-4)
    assert scan.rain_rate[0, 0] == 0.0 and np.isnan(scan.rain_rate[0, 1])  # below 0.01 mm/h: dry
    other = read_scan(tmp_path / "z.nc", ReaderOptions(zr_a=300, zr_b=1.4))
    assert other.rain_rate[2, 2] == pytest.approx((200 * 10**1.6 / 300) ** (1 / 1.4), rel=1e-4)


def test_cf_amount_period_from_cell_methods_bounds_or_config(tmp_path):
    amount = field()
    kw = dict(standard_name="precipitation_amount", units="kg m-2")
    by_methods = write_cf(
        tmp_path / "m.nc", amount, var_attrs={"cell_methods": "time: sum (interval: 15 minutes)"}, **kw
    )
    np.testing.assert_allclose(read_scan(by_methods, DEFAULT).rain_rate, amount * 4, rtol=1e-5)
    bare = write_cf(tmp_path / "bare.nc", amount, **kw)
    with pytest.raises(ReaderError, match="accumulation_minutes") as e:
        read_scan(bare, DEFAULT)
    assert str(bare) in str(e.value)
    np.testing.assert_allclose(read_scan(bare, ReaderOptions(accumulation_minutes=30)).rain_rate, amount * 2, rtol=1e-5)
    with netCDF4.Dataset(bare, "a") as ds:  # add CF time bounds of 20 minutes
        ds.createDimension("nv", 2)
        bounds = ds.createVariable("time_bnds", "i8", ("time", "nv"))
        bounds[:] = np.array([[ds["time"][0] - 1200, ds["time"][0]]])
        ds["time"].bounds = "time_bnds"
    np.testing.assert_allclose(read_scan(bare, DEFAULT).rain_rate, amount * 3, rtol=1e-5)


def test_cf_quantity_picks_among_several_variables(tmp_path):
    rain = field()
    dbz = np.full(rain.shape, 30.0, dtype=np.float32)
    extra = {
        "dbz": (
            ("time", "y", "x"),
            dbz[None],
            {"standard_name": "equivalent_reflectivity_factor", "units": "dBZ", "grid_mapping": "crs"},
        )
    }
    path = write_cf(tmp_path / "two.nc", rain, extra=extra)
    np.testing.assert_array_equal(read_scan(path, DEFAULT).rain_rate, rain)  # rainfall_rate first
    chosen = read_scan(path, ReaderOptions(quantity="dbz")).rain_rate
    np.testing.assert_allclose(chosen, (10**3 / 200) ** (1 / 1.6), rtol=1e-5)
    with pytest.raises(ReaderError, match="rainfall_rate, dbz"):
        read_scan(path, ReaderOptions(quantity="nope"))


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(grid_mapping=False), "grid_mapping"),
        (dict(units="furlongs"), "units"),
    ],
)
def test_cf_missing_projection_or_bad_units(tmp_path, kw, message):
    path = write_cf(tmp_path / "bad.nc", field(), **kw)
    with pytest.raises(ReaderError, match=message):
        read_scan(path, DEFAULT)


def test_cf_several_times_is_one_scan_per_file(tmp_path):
    path = write_cf(tmp_path / "two_times.nc", np.stack([field(), field(seed=2)]))
    with pytest.raises(ReaderError, match="one scan per file"):
        read_scan(path, DEFAULT)


def test_netcdf_classic_is_detected_and_read(tmp_path):
    path = write_cf(tmp_path / "nc4.nc", field())
    classic = tmp_path / "classic.nc"
    with netCDF4.Dataset(path) as src, netCDF4.Dataset(classic, "w", format="NETCDF3_CLASSIC") as dst:
        for name, dim in src.dimensions.items():
            dst.createDimension(name, len(dim))
        for name, var in src.variables.items():
            out = dst.createVariable(
                name,
                "f4" if var.dtype == np.float32 else "f8" if var.dtype.kind == "f" else "i4",
                var.dimensions,
                fill_value=var.getncattr("_FillValue") if "_FillValue" in var.ncattrs() else None,
            )
            out.setncatts({k: var.getncattr(k) for k in var.ncattrs() if k != "_FillValue"})
            out[...] = var[...]
    assert open(classic, "rb").read(4) == b"CDF\x01"
    assert detect_format(str(classic)) == "cf"
    np.testing.assert_array_equal(read_scan(classic, DEFAULT).rain_rate, read_scan(path, DEFAULT).rain_rate)


# --- ODIM written here ---------------------------------------------------------------------------


def odim_file(tmp_path, **kw):
    """DBZH (uint8, gain 0.5 offset -32) and ACRR (uint16, 0.01 mm over 15 min), each with nodata/undetect."""
    dbz_raw = np.array([[255, 0, 128], [142, 150, 255]], dtype=np.uint8)  # 255 nodata, 0 undetect
    acrr_raw = np.array([[65535, 0, 100], [250, 7, 65535]], dtype=np.uint16)
    datasets = [
        {"quantity": b"DBZH", "raw": dbz_raw, "what": {"gain": 0.5, "offset": -32.0, "nodata": 255.0, "undetect": 0.0}},
        {
            "quantity": b"ACRR",
            "raw": acrr_raw,
            "what": {"gain": 0.01, "offset": 0.0, "nodata": 65535.0, "undetect": 0.0},
            "dataset_what": {
                "startdate": b"20240601",
                "starttime": b"114500",
                "enddate": b"20240601",
                "endtime": b"120000",
            },
        },
    ]
    return write_odim(tmp_path / "odim.h5", datasets, **kw), dbz_raw, acrr_raw


def test_odim_acrr_dbzh_gain_offset_nodata_undetect(tmp_path):
    path, dbz_raw, acrr_raw = odim_file(tmp_path)
    assert detect_format(str(path)) == "odim"
    acrr = read_scan(path, DEFAULT)  # no RATE: ACRR comes before DBZH
    expected = np.array([[np.nan, 0, 1.0 * 4], [2.5 * 4, 0.07 * 4, np.nan]], dtype=np.float32)
    np.testing.assert_allclose(acrr.rain_rate, expected, rtol=1e-6)
    dbzh = read_scan(path, ReaderOptions(quantity="DBZH"))
    dbz = dbz_raw * 0.5 - 32.0  # 128 -> 32 dBZ
    r = (10 ** (dbz / 10) / 200) ** (1 / 1.6)
    assert np.isnan(dbzh.rain_rate[0, 0]) and np.isnan(dbzh.rain_rate[1, 2])
    assert dbzh.rain_rate[0, 1] == 0.0
    np.testing.assert_allclose(dbzh.rain_rate[0, 2], r[0, 2], rtol=1e-5)
    np.testing.assert_allclose(dbzh.rain_rate[1, :2], r[1, :2], rtol=1e-5)
    assert acrr.time == np.datetime64("2024-06-01T12:00:00")
    x, y = project(acrr.grid.crs, -10.0, 60.0)
    assert acrr.grid.extent[0] == pytest.approx(x, abs=0.01) and acrr.grid.extent[3] == pytest.approx(y, abs=0.01)
    with pytest.raises(ReaderError, match="DBZH, ACRR") as e:
        read_scan(path, ReaderOptions(quantity="RATE"))
    assert str(path) in str(e.value)


def test_odim_polar_volume_is_refused(tmp_path):
    path, _, _ = odim_file(tmp_path, obj=b"PVOL")
    with pytest.raises(ReaderError, match="PVOL"):
        read_scan(path, DEFAULT)


# --- damaged and implausible files ---------------------------------------------------------------


def truncated(src: str, dst) -> str:
    data = open(src, "rb").read()
    dst.write_bytes(data[: len(data) // 2])
    return str(dst)


def _no_radar(path):
    with h5py.File(path, "w") as f:
        f.create_dataset("numbers", data=np.arange(10))


def _knmi_without_image(path):
    with h5py.File(path, "w") as f:
        f.create_group("image1")
        f.create_group("geographic")


BAD_FILES = {  # case -> (file name, how to write it)
    "empty": ("empty.h5", lambda p: p.write_bytes(b"")),
    "random bytes": ("random.nc", lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096))),
    "text": ("notes.hdf", lambda p: p.write_text("rain, lots of it\n" * 20)),
    "hdf5 magic only": ("magic.h5", lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)),
    "hdf5 without radar content": ("plain.h5", _no_radar),
    "knmi groups without data": ("hollow.h5", _knmi_without_image),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_raises_reader_error_naming_it(tmp_path, case):
    name, write = BAD_FILES[case]
    path = tmp_path / name
    write(path)
    with pytest.raises(ReaderError) as e:
        read_scan(path, DEFAULT)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("source", [KNMI_FILE, RMI_FILE, BOM_C10_FILE])
def test_truncated_real_file_raises_reader_error(tmp_path, source):
    path = truncated(real(source), tmp_path / "cut.dat")
    with pytest.raises(ReaderError) as e:
        read_scan(path, DEFAULT)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    "bad, message",
    [
        (1e30, "above the limit"),
        (600.0, "above the limit 500"),
        (-1.0, "negative"),
        (np.inf, "infinite"),
    ],
)
def test_implausible_values_are_refused(tmp_path, bad, message):
    rain = field()
    rain[3, 3] = bad
    path = write_cf(tmp_path / "bad.nc", rain)
    with pytest.raises(ReaderError, match=message) as e:
        read_scan(path, DEFAULT)
    assert str(path) in str(e.value)


def test_all_nan_and_bad_time_are_refused_rounding_negatives_clipped(tmp_path):
    with pytest.raises(ReaderError, match="no valid pixel"):
        read_scan(write_cf(tmp_path / "nan.nc", np.full((4, 4), np.nan, np.float32)), DEFAULT)
    with pytest.raises(ReaderError, match="outside"):
        read_scan(write_cf(tmp_path / "old.nc", field(), time="1970-01-01T00:05"), DEFAULT)
    rain = field()
    rain[2, 2] = -0.001
    assert read_scan(write_cf(tmp_path / "round.nc", rain), DEFAULT).rain_rate[2, 2] == 0.0


# --- detection, registry, contract ---------------------------------------------------------------


def test_detection_by_content_not_name(tmp_path):
    renamed = tmp_path / "looks_like.nc"
    shutil.copyfile(real(KNMI_FILE), renamed)
    assert detect_format(str(renamed)) == "knmi"
    assert read_scan(renamed, DEFAULT).time == time_in_name(str(KNMI_FILE))
    assert detect_format(real(RMI_FILE)) == "odim"
    assert detect_format(real(BOM_CSCN_FILE)) == "cf"
    with pytest.raises(ReaderError, match="empty file"):
        (tmp_path / "e.nc").write_bytes(b"")
        detect_format(str(tmp_path / "e.nc"))


def test_unknown_format_names_the_choices(tmp_path):
    path = write_cf(tmp_path / "a.nc", field())
    choices = "available: cf, grib, knmi, odim"
    with pytest.raises(ConfigError, match=f"source.reader.format: unknown reader 'mrms'; {choices}"):
        get_reader("mrms")
    with pytest.raises(ReaderError, match=choices) as e:  # read_scan keeps the reader contract
        read_scan(path, ReaderOptions(format="mrms"))
    assert str(path) in str(e.value)


def grib_sample(path) -> str:
    """A GRIB2 precipitation rate (kg m-2 s-1) from ecCodes' sample."""
    rate = [("typeOfFirstFixedSurface", 1), ("discipline", 0), ("parameterCategory", 1), ("parameterNumber", 7)]
    write_grib(path, rate, np.full(600, 1e-4))
    return str(path)


def contract_sample(name: str, tmp_path) -> str:
    samples = {
        "cf": lambda: str(write_cf(tmp_path / "cf.nc", field())),
        "odim": lambda: str(odim_file(tmp_path)[0]),
        "knmi": lambda: real(KNMI_FILE),
        "grib": lambda: grib_sample(tmp_path / "g.grib2"),
    }
    if name not in samples:
        pytest.fail(f"reader {name!r} has no sample file in this contract test; add one")
    return samples[name]()


@pytest.mark.parametrize("name", available())
def test_every_reader_keeps_the_contract(name, tmp_path):
    reader = get_reader(name)
    scan = reader(contract_sample(name, tmp_path), DEFAULT)
    assert isinstance(scan, Scan) and scan.rain_rate.dtype == np.float32
    assert scan.rain_rate.shape == scan.grid.shape and scan.rain_rate.ndim == 2
    assert np.all(np.diff(scan.grid.x) > 0) and np.all(np.diff(scan.grid.y) < 0)
    assert scan.time.dtype == np.dtype("datetime64[s]")
    finite = np.isfinite(scan.rain_rate)
    assert finite.any() and scan.rain_rate[finite].min() >= 0
    crs = CRS.from_user_input(scan.grid.crs)
    assert crs.is_projected or crs.is_geographic  # metres, or lon/lat degrees that ingest and predict reproject
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(1).bytes(2000))
    with pytest.raises(ReaderError) as e:  # called directly, a reader still raises only ReaderError
        reader(str(garbage), DEFAULT)
    assert str(garbage) in str(e.value)


def test_inspect_command_prints_each_file_and_errors(tmp_path):
    from nowcast.cli import app

    good = write_cf(tmp_path / "good.nc", field())
    bad = tmp_path / "bad.txt"
    bad.write_text("no radar here")
    result = CliRunner().invoke(app, ["inspect", str(good), str(bad)])
    assert result.exit_code == 1
    assert "cf 2024-06-01T12:00:00" in result.output and "6x5 pixels of 1000 m" in result.output
    assert f"ERROR {bad}: not a radar file" in result.output
