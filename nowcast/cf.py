"""CF-1.8 metadata of a grid, shared by the store and the forecasts: the grid mapping and x/y.

A ``crs`` variable carries pyproj's CF grid-mapping attributes with ``crs_wkt`` (what
rioxarray, cartopy and CF tools read); ``x``/``y`` are projection coordinates in metres, or
longitude/latitude in degrees for a lon/lat grid.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

GRID_MAPPING = "crs"  # the name of the grid-mapping variable in stores and forecasts


def crs_attributes(crs: str) -> dict[str, Any]:
    """CF grid-mapping attributes of ``crs`` (pyproj ``to_cf``), always with crs_wkt and proj4."""
    from pyproj import CRS

    try:
        parsed = CRS.from_user_input(crs)
    except Exception as e:  # pyproj raises CRSError, but a bad string may raise others
        log.warning("CRS %r is not understood by pyproj (%s); writing it as given", crs, e)
        return {"crs_wkt": crs, "proj4": crs}
    try:
        attrs = {k: v for k, v in parsed.to_cf().items() if v is not None}
    except Exception as e:  # some projections have no CF grid mapping
        log.warning("no CF grid mapping for %r (%s); writing WKT only", crs, e)
        attrs = {}
    if attrs.get("grid_mapping_name") == "polar_stereographic" and "latitude_of_projection_origin" not in attrs:
        # CF requires it (+-90); pyproj leaves it out when the projection is given by a standard parallel
        north = float(np.ravel(attrs.get("standard_parallel", 90.0))[0]) >= 0
        attrs["latitude_of_projection_origin"] = 90.0 if north else -90.0
    attrs.setdefault("crs_wkt", parsed.to_wkt())
    if crs.strip().startswith("+"):
        attrs["proj4"] = crs
    else:
        import warnings

        with warnings.catch_warnings():  # a PROJ string is a lossy summary; crs_wkt above is the full CRS
            warnings.filterwarnings("ignore", message="You will likely lose important projection information")
            attrs["proj4"] = parsed.to_proj4()
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in attrs.items()}


def xy_attributes(crs: str, axis: str) -> dict[str, Any]:
    """CF attributes of the ``x`` or ``y`` coordinate of a grid in ``crs``."""
    from nowcast.regrid import is_geographic

    if is_geographic(crs):
        name = "longitude" if axis == "x" else "latitude"
        return {"standard_name": name, "long_name": name, "units": f"degrees_{'east' if axis == 'x' else 'north'}"}
    return {
        "standard_name": f"projection_{axis}_coordinate",
        "long_name": f"{axis} coordinate of projection",
        "units": "m",
        "axis": axis.upper(),
    }
