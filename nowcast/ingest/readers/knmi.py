"""KNMI radar HDF5 (the "KNMI HDF5 data format", e.g. RAD_NL25_RAP_5min accumulations).

The image is ``image1/image_data`` (raw counts) with a text calibration ``GEO=gain*PV+offset``;
the grid is given in pixels relative to the projection origin, in km, and the proj4 string of
``geographic/map_projection`` gives the ellipsoid in km too: both are converted to metres here.
"""

from __future__ import annotations

import re
from datetime import datetime

import h5py
import numpy as np

from nowcast.errors import ReaderError
from nowcast.ingest.config import ReaderOptions
from nowcast.ingest.readers import register
from nowcast.ingest.readers.common import (
    fallback_period_hours,
    number,
    period_hours,
    reflectivity_to_rain,
    text,
)
from nowcast.scan import Grid, Scan

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_FORMULAS = (
    re.compile(rf"GEO=(?P<gain>{_NUM})\*PV(?P<offset>[-+]{_NUM})?"),
    re.compile(rf"GEO=PV\*(?P<gain>{_NUM})(?P<offset>[-+]{_NUM})?"),
)
ACCUMULATION = "ACCUMULATED_PRECIPITATION_[MM]"
RATE = "PRECIPITATION_[MM/H]"
REFLECTIVITY = "REFLECTIVITY_[DBZ]"
UNIT_METRES = {"KM": 1000.0, "M": 1.0}
_KM_KEYS = ("a", "b", "R", "x_0", "y_0")


def parse_calibration(formula: str) -> tuple[float, float]:
    """``"GEO=0.01*PV+0.0"`` -> (gain, offset).

    Raises:
        ValueError: the formula is not of the form GEO=a*PV+b (or GEO=PV*a+b).
    """
    compact = re.sub(r"\s+", "", formula).upper()
    for pattern in _FORMULAS:
        match = pattern.fullmatch(compact)
        if match:
            return float(match["gain"]), float(match["offset"] or 0.0)
    raise ValueError(f"calibration formula {formula!r} is not of the form GEO=a*PV+b")


def proj4_in_metres(params: str) -> str:
    """KNMI's proj4 string with +a/+b (and false easting/northing) in km rewritten to metres."""
    tokens = params.split()
    values = dict(t.lstrip("+").split("=", 1) for t in tokens if "=" in t)
    radius = float(values.get("a", values.get("R", "6378137")))
    scale = 1000.0 if radius < 1e5 else 1.0  # an Earth radius below 100 km must be in km
    out = []
    for token in tokens:
        key, sep, value = token.lstrip("+").partition("=")
        if key == "units":
            continue
        if sep and key in _KM_KEYS and scale != 1.0:
            value = f"{float(value) * scale:.10g}"
        out.append(f"+{key}={value}" if sep else f"+{key}")
    out.append("+units=m")
    return " ".join(out)


def _when(value, path: str, what: str) -> np.datetime64:
    stamp = text(value)
    for fmt in ("%d-%b-%Y;%H:%M:%S.%f", "%d-%b-%Y;%H:%M:%S"):
        try:
            return np.datetime64(datetime.strptime(stamp, fmt), "s")
        except ValueError:
            continue
    raise ReaderError(f"{path}: overview/{what} {stamp!r} is not of the form 26-AUG-2010;00:00:00.000")


def _grid(f: h5py.File, shape: tuple[int, int], path: str) -> Grid:
    geo = f["geographic"].attrs
    ncols, nrows = int(number(geo["geo_number_columns"])), int(number(geo["geo_number_rows"]))
    if (nrows, ncols) != shape:
        raise ReaderError(f"{path}: image shape {shape} does not match geographic rows/columns ({nrows}, {ncols})")
    unit = text(geo.get("geo_dim_pixel", b"KM,KM")).split(",")[0].strip().upper()
    if unit not in UNIT_METRES:
        raise ReaderError(f"{path}: geographic/geo_dim_pixel unit {unit!r} is not KM or M")
    metres = UNIT_METRES[unit]
    px, py = number(geo["geo_pixel_size_x"]) * metres, abs(number(geo["geo_pixel_size_y"])) * metres
    x_left = -number(geo["geo_column_offset"]) * px
    y_top = -number(geo["geo_row_offset"]) * py
    projection = f.get("geographic/map_projection")
    if projection is None or "projection_proj4_params" not in projection.attrs:
        raise ReaderError(f"{path}: no geographic/map_projection/projection_proj4_params")
    crs = proj4_in_metres(text(projection.attrs["projection_proj4_params"]))
    return Grid.from_corner(x_left, y_top, px, shape, crs, pixel_size_y=py)


@register("knmi")
def read_knmi(path: str, options: ReaderOptions) -> Scan:
    """Read a KNMI radar HDF5 image as rain rate (accumulations divided by their period)."""
    with h5py.File(path, "r") as f:
        image = f["image1"]
        raw = image["image_data"][()]
        if raw.ndim != 2:
            raise ReaderError(f"{path}: image1/image_data has shape {raw.shape}, expected (rows, columns)")
        calibration = image["calibration"].attrs
        try:
            gain, offset = parse_calibration(text(calibration["calibration_formulas"]))
        except ValueError as e:
            raise ReaderError(f"{path}: {e}") from None
        values = raw.astype(np.float64) * gain + offset
        for key in ("calibration_missing_data", "calibration_out_of_image"):
            if key in calibration:
                values[raw == number(calibration[key])] = np.nan
        overview = f["overview"].attrs
        end = _when(overview["product_datetime_end"], path, "product_datetime_end")
        parameter = text(image.attrs.get("image_geo_parameter", ACCUMULATION.encode())).upper()
        if parameter == ACCUMULATION:
            if "product_datetime_start" in overview:
                hours = period_hours(
                    _when(overview["product_datetime_start"], path, "product_datetime_start"), end, path, parameter
                )
            else:
                hours = fallback_period_hours(options, path, parameter)
            rain, words = values / hours, f"{parameter} over {hours * 60:g} min, / {hours:g} h to mm/h"
        elif parameter == RATE:
            rain, words = values, f"{parameter}"
        elif parameter == REFLECTIVITY:
            rain = reflectivity_to_rain(values, options.zr_a, options.zr_b)
            words = f"{parameter}, Z = {options.zr_a:g} R^{options.zr_b:g} to mm/h"
        else:
            raise ReaderError(
                f"{path}: image_geo_parameter {parameter!r} is not one of {ACCUMULATION}, {RATE}, {REFLECTIVITY}"
            )
        grid = _grid(f, rain.shape, path)
    return Scan(time=end, rain_rate=rain.astype(np.float32), grid=grid, source=path, quantity=words)
