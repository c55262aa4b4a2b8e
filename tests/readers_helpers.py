"""Shared by the reader tests: where the real radar files are, and small files written on the spot."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

RADAR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "radar"
KNMI_DIR = RADAR / "KNMI" / "2010" / "08"
RMI_DIR = RADAR / "rmi" / "radqpe" / "20210704"
OPERA_DIR = RADAR / "OPERA" / "20180824"
BOM_C10_DIR = RADAR / "bom" / "prcp-c10" / "66" / "2020" / "10" / "31"
BOM_CSCN_DIR = RADAR / "bom" / "prcp-cscn" / "2" / "2018" / "06" / "16"

KNMI_FILE = KNMI_DIR / "RAD_NL25_RAP_5min_201008260410.h5"
RMI_FILE = RMI_DIR / "20210704155000.rad.best.comp.rate.qpe.hdf"
OPERA_FILE = OPERA_DIR / "T_PAAH21_C_EUOC_20180824181500.hdf"  # every rate in it is below 500 mm/h
BOM_C10_FILE = BOM_C10_DIR / "66_20201031_000000.prcp-c10.nc"
BOM_CSCN_FILE = BOM_CSCN_DIR / "2_20180616_100000.prcp-cscn.nc"

LAEA = {
    "grid_mapping_name": "lambert_azimuthal_equal_area",
    "longitude_of_projection_origin": 10.0,
    "latitude_of_projection_origin": 55.0,
    "false_easting": 0.0,
    "false_northing": 0.0,
    "semi_major_axis": 6378137.0,
    "inverse_flattening": 298.257223563,
}
OPERA_LAEA = "+proj=laea +lat_0=55.0 +lon_0=10.0 +x_0=1950000.0 +y_0=-2100000.0 +units=m +ellps=WGS84"


def real(path: Path) -> str:
    """The path of a real radar file as str, skipping the test when the data is not checked out."""
    if not path.exists():
        pytest.skip(f"real radar data not available: {path.name}")
    return str(path)


def real_files(folder: Path, pattern: str) -> list[str]:
    files = sorted(str(p) for p in folder.glob(pattern)) if folder.is_dir() else []
    if not files:
        pytest.skip(f"real radar data not available: {folder.name}/{pattern}")
    return files


def time_in_name(path: str) -> np.datetime64:
    """The valid time written in a file name: 14 digits, or 8 digits _ 6 digits (BOM)."""
    name = Path(path).name
    match = re.search(r"(\d{8})_(\d{6})", name) or re.search(r"(\d{8})(\d{4,6})", name)
    digits = (match[1] + match[2]).ljust(14, "0")
    return np.datetime64(datetime.strptime(digits, "%Y%m%d%H%M%S"), "s")


def write_cf(
    path: Path,
    values: np.ndarray,
    *,
    name: str = "rainfall_rate",
    standard_name: str = "rainfall_rate",
    units: str = "mm h-1",
    xy_units: str = "m",
    pixel: float = 1000.0,
    south_up: bool = False,
    time: str = "2024-06-01T12:00",
    with_time_dim: bool = True,
    grid_mapping: bool = True,
    var_attrs: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """A small CF file as the project's archives are written (xarray, CF time, a crs variable)."""
    ny, nx = values.shape[-2:]
    scale = 1000.0 if xy_units == "km" else 1.0
    x = (-20_000.0 + pixel * (np.arange(nx) + 0.5)) / scale
    y = (30_000.0 - pixel * (np.arange(ny) + 0.5)) / scale
    data = values
    if south_up:
        y, data = y[::-1], data[..., ::-1, :]
    attrs = {"standard_name": standard_name, "units": units, **(var_attrs or {})}
    if grid_mapping:
        attrs["grid_mapping"] = "crs"
    t = np.datetime64(time, "ns")
    if with_time_dim:
        if data.ndim == 2:
            data = data[None]
        variables = {name: (("time", "y", "x"), data, attrs)}
        coords = {
            "time": (
                "time",
                np.atleast_1d(t) if data.shape[0] == 1 else t + np.arange(data.shape[0]) * np.timedelta64(5, "m"),
                {"standard_name": "time"},
            )
        }
    else:
        variables = {name: (("y", "x"), data, attrs)}
        coords = {"time": ((), t, {"standard_name": "time"})}
    variables["crs"] = ((), np.int32(0), LAEA)
    variables.update(extra or {})
    coords["y"] = ("y", y, {"standard_name": "projection_y_coordinate", "units": xy_units})
    coords["x"] = ("x", x, {"standard_name": "projection_x_coordinate", "units": xy_units})
    ds = xr.Dataset(variables, coords=coords, attrs={"Conventions": "CF-1.8"})
    encoding = {"time": {"units": "seconds since 1970-01-01 00:00:00", "dtype": "int64"}}
    ds.to_netcdf(path, engine="netcdf4", encoding=encoding)
    return path


def write_odim(
    path: Path,
    datasets: list[dict],
    *,
    obj: bytes = b"COMP",
    ul_lonlat=(-10.0, 60.0),
    date: bytes = b"20240601",
    time: bytes = b"120000",
) -> Path:
    """An ODIM_H5 composite on the OPERA projection; each dict: quantity, raw, and what attributes."""
    ny, nx = datasets[0]["raw"].shape
    with h5py.File(path, "w") as f:
        f.attrs["Conventions"] = np.bytes_(b"ODIM_H5/V2_2")
        what = f.create_group("what")
        what.attrs.update({"object": np.bytes_(obj), "date": np.bytes_(date), "time": np.bytes_(time)})
        where = f.create_group("where")
        where.attrs.update(
            {
                "projdef": np.bytes_(OPERA_LAEA.encode()),
                "xsize": np.int64(nx),
                "ysize": np.int64(ny),
                "xscale": 2000.0,
                "yscale": 2000.0,
                "UL_lon": float(ul_lonlat[0]),
                "UL_lat": float(ul_lonlat[1]),
            }
        )
        for i, spec in enumerate(datasets, start=1):
            group = f.create_group(f"dataset{i}")
            group.create_group("what").attrs.update(spec.get("dataset_what", {}))
            data = group.create_group("data1")
            data.create_dataset("data", data=spec["raw"])
            data.create_group("what").attrs.update({"quantity": np.bytes_(spec["quantity"]), **spec.get("what", {})})
    return path


GRID_KEYS = [
    ("Ni", 30),
    ("Nj", 20),
    ("latitudeOfFirstGridPointInDegrees", 52.0),
    ("longitudeOfFirstGridPointInDegrees", 265.0),  # 0..360 degrees east, as MRMS writes them
    ("latitudeOfLastGridPointInDegrees", 51.81),
    ("longitudeOfLastGridPointInDegrees", 265.29),
    ("iDirectionIncrementInDegrees", 0.01),
    ("jDirectionIncrementInDegrees", 0.01),
    ("dataDate", 20240601),
    ("dataTime", 1200),
]
GRIB_MISSING = 9999.0


def write_grib(path, keys, values) -> dict:
    """One GRIB2 message from ecCodes' sample; returns ecCodes' raw decode of what was written."""
    import eccodes

    gid = eccodes.codes_grib_new_from_samples("GRIB2")
    for key, value in GRID_KEYS + keys:
        eccodes.codes_set(gid, key, value)
    eccodes.codes_set(gid, "bitmapPresent", 1)
    eccodes.codes_set(gid, "missingValue", GRIB_MISSING)
    eccodes.codes_set(gid, "packingType", "grid_simple")
    eccodes.codes_set(gid, "bitsPerValue", 24)
    eccodes.codes_set_values(gid, values)
    with open(path, "wb") as f:
        eccodes.codes_write(gid, f)
    eccodes.codes_release(gid)
    with open(path, "rb") as f:  # read back: what the file holds, decoded by ecCodes alone
        gid = eccodes.codes_grib_new_from_file(f)
        raw = {
            "values": eccodes.codes_get_values(gid).reshape(20, 30),
            "lat": eccodes.codes_get_array(gid, "distinctLatitudes"),
            "lon": eccodes.codes_get_array(gid, "distinctLongitudes"),
            "validityTime": eccodes.codes_get(gid, "validityTime"),
        }
        eccodes.codes_release(gid)
    raw["values"][raw["values"] == GRIB_MISSING] = np.nan
    return raw
