"""GRIB2 precipitation fields (MRMS PrecipRate, NWP-style ``prate``/``tp``, reflectivity), via cfgrib.

cfgrib (on ecCodes) decodes the message; this reader only picks the field, converts it to
mm/h and describes the grid. Regular lon/lat grids only (``gridType`` ``regular_ll``, what
MRMS and most GRIB2 radar composites use): the grid is returned in degrees (EPSG:4326) and
ingest/predict put it on a local equal-area projection (``nowcast.regrid``).

Conversions, from the GRIB units:

- ``kg m**-2 s**-1`` (a rate): x 3600;
- ``mm h**-1`` (and MRMS PrecipRate, discipline 209 / category 6 / number 1): as it is;
- ``kg m**-2`` or ``mm`` (an accumulation): / its period (``stepRange``), in hours;
- ``dBZ``: the configured Z-R relation.

Negative values are no data: MRMS writes -1 where no radar covers, -3 where data is missing.
"""

from __future__ import annotations

import logging
import re

import numpy as np

from nowcast.errors import ReaderError
from nowcast.ingest.config import ReaderOptions
from nowcast.ingest.readers import register
from nowcast.ingest.readers.common import fallback_period_hours, reflectivity_to_rain
from nowcast.scan import Grid, Scan

log = logging.getLogger(__name__)

RATE_PER_SECOND = ("kg m**-2 s**-1", "kg m-2 s-1", "mm s**-1", "mm s-1")
RATE_PER_HOUR = ("mm h**-1", "mm h-1", "mm/h", "mm hr-1")
ACCUMULATION = ("kg m**-2", "kg m-2", "mm")
REFLECTIVITY = ("dBZ", "dbz")
# (discipline, parameterCategory, parameterNumber) of local tables ecCodes may not name
LOCAL_RATES = {(209, 6, 1): "MRMS PrecipRate"}
READ_KEYS = ["discipline", "parameterCategory", "parameterNumber", "stepRange"]


def _pick(ds, path: str, options: ReaderOptions):
    names = list(ds.data_vars)
    if options.quantity is not None:
        if options.quantity not in names:
            raise ReaderError(
                f"{path}: no GRIB field {options.quantity!r} (source.reader.quantity); fields: {', '.join(names)}"
            )
        return ds[options.quantity]
    known = [n for n in names if _conversion(ds[n])[0] is not None]
    if not known:
        units = {n: ds[n].attrs.get("GRIB_units", "?") for n in names}
        raise ReaderError(
            f"{path}: no precipitation field among {units} (units nowcast converts: rates, accumulations, dBZ)"
        )
    if len(known) > 1:
        log.info("%s: several precipitation fields %s; reading %s (set source.reader.quantity)", path, known, known[0])
    return ds[known[0]]


def _conversion(field) -> tuple[str | None, str]:
    """(kind, words) of a field: kind is rate_s, rate_h, accumulation, dbz, or None."""
    units = str(field.attrs.get("GRIB_units", field.attrs.get("units", "")))
    key = tuple(int(field.attrs.get(f"GRIB_{k}", -1)) for k in ("discipline", "parameterCategory", "parameterNumber"))
    if key in LOCAL_RATES:
        return "rate_h", f"{LOCAL_RATES[key]} in mm/h"
    if units in RATE_PER_SECOND:
        return "rate_s", f"{field.name} in {units}, x 3600 to mm/h"
    if units in RATE_PER_HOUR:
        return "rate_h", f"{field.name} in mm/h"
    if units in ACCUMULATION:
        return "accumulation", f"{field.name} accumulation in {units}, / its period to mm/h"
    if units in REFLECTIVITY:
        return "dbz", f"{field.name} reflectivity in dBZ, Z-R to mm/h"
    return None, units


def _period_hours(field, path: str, options: ReaderOptions) -> float:
    """Hours of an accumulation from its ``stepRange`` ("0-1", or with units: "0m-10m")."""
    match = re.fullmatch(r"(\d+)([smhD]?)-(\d+)([smhD]?)", str(field.attrs.get("GRIB_stepRange", "")))
    if match:
        unit = match[4] or {0: "m", 1: "h", 13: "s"}.get(int(field.attrs.get("GRIB_stepUnits", 1)), "h")
        hours = (int(match[3]) - int(match[1])) * {"s": 1 / 3600, "m": 1 / 60, "h": 1.0, "D": 24.0}[unit]
        if hours > 0:
            return hours
    return fallback_period_hours(options, path, f"GRIB field {field.name}")


@register("grib")
def read_grib(path: str, options: ReaderOptions) -> Scan:
    """Read one GRIB2 precipitation field (see the module docstring)."""
    import xarray as xr

    try:
        ds = xr.open_dataset(
            path, engine="cfgrib", backend_kwargs={"indexpath": "", "read_keys": READ_KEYS}, decode_timedelta=True
        )
    except Exception as e:  # cfgrib raises its own errors for damaged files and mixed messages
        raise ReaderError(f"{path}: cannot be read as GRIB: {type(e).__name__}: {e}") from e
    with ds:
        field = _pick(ds, path, options)
        grid_type = field.attrs.get("GRIB_gridType", "")
        if grid_type != "regular_ll" or "latitude" not in field.dims or "longitude" not in field.dims:
            raise ReaderError(f"{path}: GRIB grid type {grid_type!r}; this reader reads regular lon/lat grids")
        kind, words = _conversion(field)
        if kind is None:
            raise ReaderError(f"{path}: GRIB field {field.name} in {words!r} is not a rain rate, accumulation or dBZ")
        field = field.squeeze(drop=False).sortby("latitude", ascending=False)
        lon = np.asarray(field["longitude"].values, dtype=np.float64)
        lon = np.where(lon > 180.0, lon - 360.0, lon)  # MRMS and NCEP give 0..360 degrees east
        order = np.argsort(lon)
        values = np.asarray(field.values, dtype=np.float64)[:, order]
        valid_time = np.datetime64(field["valid_time"].values, "s")
        if kind == "rate_s":
            rain = values * 3600.0
        elif kind == "accumulation":
            rain = values / _period_hours(field, path, options)
        elif kind == "dbz":
            rain = reflectivity_to_rain(values, options.zr_a, options.zr_b)
        else:
            rain = values
        rain[rain < 0] = np.nan  # MRMS: -1 no coverage, -3 missing
        grid = Grid(x=lon[order], y=np.asarray(field["latitude"].values, dtype=np.float64), crs="EPSG:4326")
        log.debug("%s: %s", path, words)
    return Scan(valid_time, rain.astype(np.float32), grid, path, quantity=words)
