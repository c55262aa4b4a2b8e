"""ODIM_H5 Cartesian composites (object COMP or IMAGE), e.g. OPERA and RMI products.

Attributes are inherited as ODIM specifies: ``dataN/what`` overrides ``datasetN/what`` overrides
the root ``what`` (same for ``where``). value = raw * gain + offset (gain 1, offset 0 when absent,
as in files that store float32 physical values); raw == nodata is no data (NaN), raw == undetect
is measured without echo (0 mm/h). Polar volumes (PVOL, SCAN) are not read here.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import h5py
import numpy as np
from pyproj import CRS, Transformer

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

PREFERRED = ("RATE", "ACRR", "DBZH")  # read the first present unless options.quantity says
OBJECTS = ("COMP", "IMAGE")


def _numbered(group: h5py.Group, prefix: str) -> list[h5py.Group]:
    names = [n for n in group if re.fullmatch(rf"{prefix}\d+", n) and isinstance(group[n], h5py.Group)]
    return [group[n] for n in sorted(names, key=lambda n: int(n[len(prefix) :]))]


def _lookup(groups: list[h5py.Group], sub: str, key: str) -> Any:
    """The first of ``group/sub.attrs[key]`` along the inheritance chain, or None."""
    for group in groups:
        node = group.get(sub)
        if isinstance(node, h5py.Group) and key in node.attrs:
            return node.attrs[key]
    return None


def _quantities(f: h5py.File) -> list[tuple[str, h5py.Group, h5py.Group]]:
    """(quantity, dataset, data) for every dataN in every datasetN."""
    found = []
    for dataset in _numbered(f, "dataset"):
        for data in _numbered(dataset, "data"):
            quantity = _lookup([data, dataset], "what", "quantity")
            if quantity is not None and "data" in data:
                found.append((text(quantity).upper(), dataset, data))
    return found


def _choose(found: list[tuple[str, h5py.Group, h5py.Group]], options: ReaderOptions, path: str):
    present = [q for q, _, _ in found]
    wanted = [options.quantity.upper()] if options.quantity else list(PREFERRED)
    for quantity in wanted:
        for entry in found:
            if entry[0] == quantity:
                return entry
    what = f"quantity {options.quantity!r}" if options.quantity else f"none of {', '.join(PREFERRED)}"
    raise ReaderError(
        f"{path}: {what} in the file; it holds {', '.join(present) or 'no quantities'} (set source.reader.quantity)"
    )


def _datetime(date: Any, time: Any, path: str, what: str) -> np.datetime64:
    if date is None or time is None:
        raise ReaderError(f"{path}: missing {what} date/time attributes")
    stamp = text(date) + text(time)[:6].ljust(6, "0")
    try:
        return np.datetime64(datetime.strptime(stamp, "%Y%m%d%H%M%S"), "s")
    except ValueError:
        raise ReaderError(f"{path}: {what} date/time {text(date)!r} {text(time)!r} is not YYYYMMDD HHMMSS") from None


def _physical(data: h5py.Group, chain: list[h5py.Group]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, nodata mask, undetect mask) of one dataN."""
    raw = data["data"][()]
    gain = _lookup(chain, "what", "gain")
    offset = _lookup(chain, "what", "offset")
    nodata = _lookup(chain, "what", "nodata")
    undetect = _lookup(chain, "what", "undetect")
    values = raw.astype(np.float64) * (1.0 if gain is None else number(gain)) + (
        0.0 if offset is None else number(offset)
    )
    no_data = ~np.isfinite(values)
    if nodata is not None:
        no_data |= raw == number(nodata)
    dry = np.zeros(raw.shape, dtype=bool) if undetect is None else raw == number(undetect)
    return values, no_data, dry


def _grid(f: h5py.File, dataset: h5py.Group, shape: tuple[int, int], path: str) -> Grid:
    chain = [dataset, f]
    projdef = _lookup(chain, "where", "projdef")
    if projdef is None:
        raise ReaderError(f"{path}: no where/projdef (projection) in the file")
    projdef = text(projdef)
    crs = CRS.from_user_input(projdef)
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    if crs.is_geographic or abs(unit - 1.0) > 1e-9:
        raise ReaderError(f"{path}: projection {projdef!r} is not in metres")
    sizes = {k: _lookup(chain, "where", k) for k in ("xsize", "ysize", "xscale", "yscale")}
    missing = [k for k, v in sizes.items() if v is None]
    if missing:
        raise ReaderError(f"{path}: missing where/{', where/'.join(missing)}")
    nx, ny = int(number(sizes["xsize"])), int(number(sizes["ysize"]))
    if (ny, nx) != shape:
        raise ReaderError(f"{path}: data shape {shape} does not match where/ysize,xsize ({ny}, {nx})")
    ul_x, ul_y = _lookup(chain, "where", "UL_x"), _lookup(chain, "where", "UL_y")
    if ul_x is None or ul_y is None:
        ul_lon, ul_lat = _lookup(chain, "where", "UL_lon"), _lookup(chain, "where", "UL_lat")
        if ul_lon is None or ul_lat is None:
            raise ReaderError(f"{path}: no upper-left corner (where/UL_x,UL_y or where/UL_lon,UL_lat)")
        to_grid = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        ul_x, ul_y = to_grid.transform(number(ul_lon), number(ul_lat), errcheck=True)
        ul_x, ul_y = round(ul_x, 3), round(ul_y, 3)  # to the mm: same grid from file to file
    return Grid.from_corner(
        number(ul_x), number(ul_y), number(sizes["xscale"]), shape, projdef, pixel_size_y=number(sizes["yscale"])
    )


@register("odim")
def read_odim(path: str, options: ReaderOptions) -> Scan:
    """Read an ODIM_H5 composite as rain rate (RATE, ACRR or DBZH converted to mm/h)."""
    with h5py.File(path, "r") as f:
        obj = _lookup([f], "what", "object")
        if obj is None:
            raise ReaderError(f"{path}: no what/object attribute; not an ODIM_H5 file")
        if text(obj).upper() not in OBJECTS:
            raise ReaderError(
                f"{path}: ODIM object {text(obj)!r} is not a Cartesian composite ({', '.join(OBJECTS)}); "
                "polar volumes are not read"
            )
        quantity, dataset, data = _choose(_quantities(f), options, path)
        chain = [data, dataset, f]
        values, no_data, dry = _physical(data, chain)
        if values.ndim != 2:
            raise ReaderError(f"{path}: {data.name}/data has shape {values.shape}, expected (y, x)")
        if quantity == "RATE":
            rain, words = values, "RATE in mm/h"
        elif quantity == "ACRR":
            start = _lookup(chain, "what", "startdate"), _lookup(chain, "what", "starttime")
            end = _lookup(chain, "what", "enddate"), _lookup(chain, "what", "endtime")
            if None in start or None in end:
                hours = fallback_period_hours(options, path, "ACRR")
            else:
                hours = period_hours(_datetime(*start, path, "start"), _datetime(*end, path, "end"), path, "ACRR")
            rain, words = values / hours, f"ACRR over {hours * 60:g} min, / {hours:g} h to mm/h"
        elif quantity == "DBZH":
            rain = reflectivity_to_rain(values, options.zr_a, options.zr_b)
            words = f"DBZH reflectivity, Z = {options.zr_a:g} R^{options.zr_b:g} to mm/h"
        else:
            raise ReaderError(f"{path}: quantity {quantity} is not rain; readable: {', '.join(PREFERRED)}")
        rain = np.where(dry, 0.0, rain)
        rain[no_data] = np.nan
        time = _datetime(_lookup([f], "what", "date"), _lookup([f], "what", "time"), path, "what")
        grid = _grid(f, dataset, rain.shape, path)
    return Scan(time=time, rain_rate=rain.astype(np.float32), grid=grid, source=path, quantity=words)
