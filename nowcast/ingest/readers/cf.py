"""CF-convention NetCDF (classic or netCDF4), e.g. the BOM Rainfields products and our archives.

The data variable is found by standard_name, the grid by the projection_x/y_coordinate
variables and the grid_mapping variable, the time by the standard_name ``time``. Accumulations
are divided by their period: a ``start_time`` variable (BOM), time bounds, a ``cell_methods``
interval, or the configured fallback, in that order.

Packed (integer) rain fields may hold small negatives from bias correction: BOM's prcp-c10
has isolated raw -2 (-0.1 mm) pixels among zeros. Values no more than two packing steps below
zero are read as dry; anything more negative is left for the validation to refuse.
"""

from __future__ import annotations

import functools
import logging
import re
import warnings
from typing import Any

import netCDF4
import numpy as np
from pyproj import CRS

from nowcast.errors import ReaderError
from nowcast.ingest.config import ReaderOptions
from nowcast.ingest.readers import register
from nowcast.ingest.readers.common import fallback_period_hours, reflectivity_to_rain, to_datetime64
from nowcast.scan import Grid, Scan

log = logging.getLogger(__name__)

# Candidate standard names in order of preference, with how each becomes mm/h.
RATE, AMOUNT, FLUX, REFLECTIVITY = (
    "rainfall_rate",
    "precipitation_amount",
    "precipitation_flux",
    "equivalent_reflectivity_factor",
)
STANDARD_NAMES = (RATE, AMOUNT, FLUX, REFLECTIVITY)
# Units (normalised: lower case, single spaces, no "^" or "**") -> factor to mm/h or to mm.
RATE_UNITS = {
    "mm h-1": 1.0,
    "mm/h": 1.0,
    "mm hr-1": 1.0,
    "mm/hr": 1.0,
    "mm hour-1": 1.0,
    "kg m-2 h-1": 1.0,
    "kg m-2 s-1": 3600.0,
    "mm s-1": 3600.0,
    "mm/s": 3600.0,
    "kg/m2/s": 3600.0,
    "m s-1": 3.6e6,
}
AMOUNT_UNITS = {"mm": 1.0, "kg m-2": 1.0, "kg/m2": 1.0, "m": 1000.0}
LENGTH_UNITS = {
    "m": 1.0,
    "meter": 1.0,
    "meters": 1.0,
    "metre": 1.0,
    "metres": 1.0,
    "km": 1000.0,
    "kilometer": 1000.0,
    "kilometers": 1000.0,
    "kilometre": 1000.0,
    "kilometres": 1000.0,
}
INTERVAL_SECONDS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "hours": 3600,
}
_CELL_SUM = re.compile(r"time\s*:\s*sum\s*\(\s*interval\s*:\s*([0-9.eE+-]+)\s*([a-zA-Z]+)\s*\)")


def _units(var: Any) -> str | None:
    units = getattr(var, "units", None)
    if units is None:
        return None
    return re.sub(r"\s+", " ", str(units).lower().replace("**", "").replace("^", "")).strip()


def _by_standard_name(ds: netCDF4.Dataset, name: str) -> list[netCDF4.Variable]:
    return [v for v in ds.variables.values() if getattr(v, "standard_name", None) == name]


def _choose(ds: netCDF4.Dataset, options: ReaderOptions, path: str) -> netCDF4.Variable:
    candidates = [v for name in STANDARD_NAMES for v in _by_standard_name(ds, name)]
    if not candidates:
        raise ReaderError(f"{path}: no variable with standard_name {', '.join(STANDARD_NAMES)}")
    if options.quantity is None:
        return candidates[0]
    for var in candidates:
        if options.quantity in (var.name, var.standard_name):
            return var
    raise ReaderError(
        f"{path}: source.reader.quantity {options.quantity!r} is none of the rain variables "
        f"{', '.join(v.name for v in candidates)}"
    )


def _axis(ds: netCDF4.Dataset, var: netCDF4.Variable, which: str, path: str) -> netCDF4.Variable:
    standard_name, axis = f"projection_{which}_coordinate", which.upper()
    for dim in var.dimensions:
        coord = ds.variables.get(dim)
        if (
            coord is not None
            and coord.ndim == 1
            and (getattr(coord, "standard_name", None) == standard_name or getattr(coord, "axis", None) == axis)
        ):
            return coord
    for coord in _by_standard_name(ds, standard_name):
        if coord.ndim == 1 and coord.dimensions[0] in var.dimensions:
            return coord
    raise ReaderError(f"{path}: no {standard_name} variable along a dimension of {var.name}")


def _metres(coord: netCDF4.Variable, path: str) -> np.ndarray:
    units = _units(coord)
    if units is None:
        log.debug("%s: %s has no units; taken as metres", path, coord.name)
        factor = 1.0
    elif units in LENGTH_UNITS:
        factor = LENGTH_UNITS[units]
    else:
        raise ReaderError(f"{path}: {coord.name} units {coord.units!r} are not m or km")
    return np.ma.filled(np.asarray(coord[:], dtype=np.float64), np.nan) * factor


def _crs(ds: netCDF4.Dataset, var: netCDF4.Variable, path: str) -> str:
    mapping = getattr(var, "grid_mapping", None)
    if mapping is None:
        raise ReaderError(f"{path}: {var.name} has no grid_mapping attribute, so its projection is unknown")
    name = str(mapping).split(":")[0].split()[0]
    if name not in ds.variables:
        raise ReaderError(f"{path}: grid_mapping variable {name!r} of {var.name} is missing")
    gm = ds.variables[name]
    attrs = tuple(sorted((k, _plain(gm.getncattr(k))) for k in gm.ncattrs()))
    return _crs_string(attrs)


@functools.lru_cache(maxsize=64)
def _crs_string(attrs: tuple) -> str:
    """CF grid-mapping attributes -> proj string (WKT when PROJ cannot say it as one).

    Cached: pyproj looks the datum up in its database (~0.3 s), and an archive repeats one grid.
    """
    crs = CRS.from_cf(dict(attrs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "you will likely lose information": WKT is the fallback
        try:
            proj4 = crs.to_proj4()
        except Exception:
            proj4 = None
    return proj4 if proj4 else crs.to_wkt()


def _plain(value: Any) -> Any:
    """A netCDF attribute as a hashable plain Python value."""
    if isinstance(value, np.ndarray):
        return tuple(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _is_time(var: netCDF4.Variable) -> bool:
    return (
        getattr(var, "standard_name", None) == "time"
        or getattr(var, "axis", None) == "T"
        or " since " in str(getattr(var, "units", ""))
    )


def _time_variable(ds: netCDF4.Dataset, var: netCDF4.Variable, path: str) -> netCDF4.Variable:
    """The data variable's time dimension, else a scalar time it names, else one with standard_name time."""
    for dim in var.dimensions:
        coord = ds.variables.get(dim)
        if coord is not None and _is_time(coord):
            return coord
    for name in str(getattr(var, "coordinates", "")).split():
        if name in ds.variables and _is_time(ds.variables[name]):
            return ds.variables[name]
    times = _by_standard_name(ds, "time") or [ds.variables[n] for n in ("time", "valid_time") if n in ds.variables]
    if not times:
        raise ReaderError(f"{path}: no time variable (standard_name time)")
    return times[0]


def _decode(var: netCDF4.Variable, values: Any, path: str) -> list[np.datetime64]:
    units = getattr(var, "units", None)
    if units is None:
        raise ReaderError(f"{path}: time variable {var.name} has no units")
    calendar = getattr(var, "calendar", "standard")
    dates = netCDF4.num2date(
        np.ma.filled(np.atleast_1d(np.asarray(values, dtype=np.float64)), np.nan),
        units,
        calendar,
        only_use_cftime_datetimes=False,
        only_use_python_datetimes=True,
    )
    return [to_datetime64(d) for d in np.atleast_1d(dates)]


def _time(ds: netCDF4.Dataset, var: netCDF4.Variable, path: str) -> tuple[np.datetime64, netCDF4.Variable]:
    tvar = _time_variable(ds, var, path)
    if tvar.size != 1:
        raise ReaderError(f"{path}: {tvar.name} holds {tvar.size} times; the readers take one scan per file")
    return _decode(tvar, tvar[:], path)[0], tvar


def _period_hours(
    ds: netCDF4.Dataset,
    var: netCDF4.Variable,
    tvar: netCDF4.Variable,
    time: np.datetime64,
    options: ReaderOptions,
    path: str,
) -> float:
    seconds = None
    if "start_time" in ds.variables and ds.variables["start_time"].size == 1:
        start = _decode(ds.variables["start_time"], ds.variables["start_time"][:], path)[0]
        seconds = (time - start) / np.timedelta64(1, "s")
        source = "start_time"
    elif getattr(tvar, "bounds", None) in ds.variables:
        bounds = _decode(tvar, ds.variables[tvar.bounds][:].ravel(), path)
        seconds = (bounds[-1] - bounds[0]) / np.timedelta64(1, "s")
        source = f"time bounds {tvar.bounds}"
    elif (match := _CELL_SUM.search(str(getattr(var, "cell_methods", "")))) is not None:
        unit = match[2].lower()
        if unit not in INTERVAL_SECONDS:
            raise ReaderError(f"{path}: cell_methods interval unit {match[2]!r} not understood")
        seconds = float(match[1]) * INTERVAL_SECONDS[unit]
        source = "cell_methods"
    if seconds is None:
        return fallback_period_hours(options, path, var.name)
    if seconds <= 0:
        raise ReaderError(f"{path}: accumulation period from {source} is {seconds:g} s, not positive")
    return float(seconds) / 3600.0


def _to_rain(ds, var, values, tvar, time, options, path) -> np.ndarray:
    kind, units = var.standard_name, _units(var)
    if kind in (RATE, FLUX):
        if units not in RATE_UNITS:
            raise ReaderError(
                f"{path}: {var.name} units {getattr(var, 'units', None)!r} are not a rain rate "
                f"({', '.join(RATE_UNITS)})"
            )
        return values * RATE_UNITS[units]
    if kind == AMOUNT:
        if units not in AMOUNT_UNITS:
            raise ReaderError(
                f"{path}: {var.name} units {getattr(var, 'units', None)!r} are not an amount (mm, kg m-2)"
            )
        return values * AMOUNT_UNITS[units] / _period_hours(ds, var, tvar, time, options, path)
    if units not in (None, "dbz"):
        raise ReaderError(f"{path}: {var.name} units {var.units!r} are not dBZ")
    return reflectivity_to_rain(values, options.zr_a, options.zr_b)


def _packing_noise_as_dry(var: netCDF4.Variable, values: np.ndarray, rain: np.ndarray, path: str) -> np.ndarray:
    scale = getattr(var, "scale_factor", None)
    if scale is None or var.dtype.kind not in "iu" or var.standard_name == REFLECTIVITY:
        return rain
    noise = (values < 0) & (values >= -2 * abs(float(scale)) - 1e-9)
    if noise.any():
        log.debug("%s: %d pixels within two packing steps below 0 read as dry", path, int(noise.sum()))
        rain = np.where(noise, 0.0, rain)
    return rain


@register("cf")
def read_cf(path: str, options: ReaderOptions) -> Scan:
    """Read a CF NetCDF rain field (rate, amount, flux or reflectivity) as rain rate in mm/h."""
    with netCDF4.Dataset(path, "r") as ds:
        var = _choose(ds, options, path)
        xvar, yvar = _axis(ds, var, "x", path), _axis(ds, var, "y", path)
        xdim, ydim = xvar.dimensions[0], yvar.dimensions[0]
        others = [d for d in var.dimensions if d not in (xdim, ydim)]
        for dim in others:
            if var.shape[var.dimensions.index(dim)] != 1:
                raise ReaderError(
                    f"{path}: {var.name} has {var.shape[var.dimensions.index(dim)]} entries "
                    f"along {dim!r}; the readers take one scan per file"
                )
        values = np.ma.filled(np.ma.asarray(var[:], dtype=np.float64), np.nan)
        order = [var.dimensions.index(ydim), var.dimensions.index(xdim)]
        order += [i for i in range(var.ndim) if i not in order]
        values = values.transpose(order).reshape(values.shape[order[0]], values.shape[order[1]])
        time, tvar = _time(ds, var, path)
        rain = _to_rain(ds, var, values, tvar, time, options, path)
        rain = _packing_noise_as_dry(var, values, rain, path)
        x, y = _metres(xvar, path), _metres(yvar, path)
        crs = _crs(ds, var, path)
        words = f"{var.name} ({getattr(var, 'standard_name', '?')}, {getattr(var, 'units', '?')})"
        if getattr(var, "standard_name", "") == REFLECTIVITY:
            words += f", Z = {options.zr_a:g} R^{options.zr_b:g} to mm/h"
    if y.size > 1 and y[1] > y[0]:  # south-up file: flip to north-up rows
        y, rain = y[::-1], rain[::-1]
    if x.size > 1 and x[1] < x[0]:
        x, rain = x[::-1], rain[:, ::-1]
    grid = Grid(x=x, y=y, crs=crs)
    rain = np.ascontiguousarray(rain, dtype=np.float32)
    return Scan(time=time, rain_rate=rain, grid=grid, source=path, quantity=words)
