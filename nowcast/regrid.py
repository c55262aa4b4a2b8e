"""Putting a radar field on another pixel size or projection: the one place that resamples.

Ingest (``align.pixel_size_m``, ``align.crs``) and predict from raw files (the model's pixel
size, ``--output-grid input`` back) both go through ``plan_regrid``:

- pixel sizes within 1 % count as equal: the field and its coordinates are kept as they are
  (a 999.7 m composite is a 1 km one);
- same CRS and a whole coarsening factor: exact block area mean (numpy);
- anything else: rasterio's ``reproject`` (GDAL): area average when coarsening, bilinear when
  refining or reprojecting at a similar size;
- lon/lat grids go to a Lambert azimuthal equal-area projection centred on the domain, at the
  pixel size asked (or the grid's own size at its centre), so pixels keep their area.

No data stays apart from dry: the valid mask is resampled with the same weights as the rain,
the rain is the weighted mean over valid source pixels only, and a target pixel is no data
where less than ``min_valid_fraction`` of its weight fell on valid pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from nowcast.errors import ConfigError
from nowcast.scan import Grid

SAME_SIZE_RTOL = 0.01  # pixel sizes this close are the same size: no resampling
_SENTINEL = -9999.0  # a value the weighted sums below never take (they are >= 0)

Method = Literal["keep", "block", "average", "bilinear"]


def is_geographic(crs: str) -> bool:
    """True for a lon/lat CRS (degrees), False for a projected one or one pyproj cannot parse."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        return bool(CRS.from_user_input(crs).is_geographic)
    except CRSError:
        return False


def same_crs(a: str, b: str) -> bool:
    """The same CRS, written the same or not (PROJ string, WKT, EPSG code)."""
    if a.strip() == b.strip():
        return True
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        return bool(CRS.from_user_input(a) == CRS.from_user_input(b))
    except CRSError:
        return False


def local_equal_area(grid: Grid) -> str:
    """A Lambert azimuthal equal-area projection centred on a lon/lat grid (centre to 0.01 degree)."""
    lon = round(float((grid.x[0] + grid.x[-1]) / 2), 2)
    lat = round(float((grid.y[0] + grid.y[-1]) / 2), 2)
    return f"+proj=laea +lat_0={lat:g} +lon_0={lon:g} +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"


def native_size_m(grid: Grid) -> float:
    """The grid's pixel size in metres (for lon/lat: the smaller side at its centre, to 1 m)."""
    if not is_geographic(grid.crs):
        return grid.pixel_size
    lat = math.radians(float((grid.y[0] + grid.y[-1]) / 2))
    metres_per_degree = 111_320.0
    return float(round(min(grid.pixel_size * math.cos(lat), grid.pixel_size_y) * metres_per_degree))


@dataclass(frozen=True)
class Regridder:
    """How fields on ``source`` become fields on ``target``; cheap to pickle (sent to workers)."""

    source: Grid
    target: Grid
    method: Method
    factor: int = 1  # block size of the "block" method
    min_valid_fraction: float = 0.5

    def apply(self, rain: np.ndarray) -> np.ndarray:
        """A (ny, nx) or (T, ny, nx) float field on ``source`` (NaN = no data) -> float32 on ``target``."""
        rain = np.asarray(rain, dtype=np.float32)
        if rain.ndim == 3:
            return np.stack([self.apply(frame) for frame in rain]) if len(rain) else rain
        if self.method == "keep":
            return np.ascontiguousarray(rain)
        if self.method == "block":
            return coarsen_mean(rain, self.factor, self.min_valid_fraction)
        return _reproject(rain, self.source, self.target, self.method, self.min_valid_fraction)

    def describe(self) -> str:
        if self.method == "keep":
            return f"kept as it is ({self.source.describe()})"
        how = {"block": f"area mean of {self.factor}x{self.factor} blocks", "average": "area average"}
        return f"{self.source.describe()} -> {self.target.describe()} by {how.get(self.method, self.method)}"


def coarsen_mean(field: np.ndarray, factor: int, min_valid_fraction: float) -> np.ndarray:
    """Area mean over factor x factor blocks, ignoring NaN; NaN where too few pixels have data."""
    ny, nx = field.shape[0] // factor, field.shape[1] // factor
    blocks = field[: ny * factor, : nx * factor].reshape(ny, factor, nx, factor)
    valid = np.isfinite(blocks)
    count = valid.sum(axis=(1, 3))
    total = np.where(valid, blocks, 0).sum(axis=(1, 3), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (total / count).astype(np.float32)
    mean[count < max(1, min_valid_fraction * factor * factor)] = np.nan
    return mean


def _transform(grid: Grid):
    from affine import Affine

    x_left, _, _, y_top = grid.extent
    return Affine(grid.pixel_size, 0.0, x_left, 0.0, -grid.pixel_size_y, y_top)


def _reproject(rain: np.ndarray, source: Grid, target: Grid, method: str, min_valid_fraction: float) -> np.ndarray:
    """Weighted mean over valid source pixels; weights and sums from one GDAL call (two bands, one kernel)."""
    from rasterio.warp import Resampling, reproject

    valid = np.isfinite(rain)
    bands = np.stack([valid.astype(np.float32), np.where(valid, rain, np.float32(0))])  # (2, ny, nx)
    out = np.zeros((2, *target.shape), np.float32)
    reproject(
        source=bands,
        destination=out,
        src_transform=_transform(source),
        src_crs=source.crs,
        src_nodata=_SENTINEL,
        dst_transform=_transform(target),
        dst_crs=target.crs,
        dst_nodata=_SENTINEL,
        resampling=Resampling[method],
        warp_mem_limit=256,  # MB: fewer, larger warp chunks (the 64 MB default triples the time on a composite)
        num_threads=2,
    )
    out[out == _SENTINEL] = 0.0  # outside the source: no weight at all
    weight, total = out  # (ny, nx) share of valid pixels, and their weighted rain
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (total / weight).astype(np.float32)
    mean[~(weight >= max(min_valid_fraction, 1e-6))] = np.nan
    return mean


def _same_size(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=SAME_SIZE_RTOL)


def _grid_over(source: Grid, crs: str, pixel_size: float) -> Grid:
    """A north-up grid of ``pixel_size`` in ``crs`` covering ``source``'s extent, edges on whole pixels."""
    from rasterio.warp import transform_bounds

    left, right, bottom, top = source.extent
    if not same_crs(source.crs, crs):
        left, bottom, right, top = transform_bounds(source.crs, crs, left, bottom, right, top, densify_pts=51)
        left, bottom = math.floor(left / pixel_size) * pixel_size, math.floor(bottom / pixel_size) * pixel_size
        right, top = math.ceil(right / pixel_size) * pixel_size, math.ceil(top / pixel_size) * pixel_size
    # whole pixels covering the extent (a last, partly covered one too): no source pixel is lost
    nx = max(2, math.ceil((right - left) / pixel_size - SAME_SIZE_RTOL))
    ny = max(2, math.ceil((top - bottom) / pixel_size - SAME_SIZE_RTOL))
    return Grid.from_corner(left, top, pixel_size, (ny, nx), crs)


def plan_regrid(
    source: Grid,
    pixel_size_m: float | None = None,
    crs: str | None = None,
    min_valid_fraction: float = 0.5,
) -> Regridder:
    """How to put fields on ``source`` on ``pixel_size_m`` metres in ``crs`` (see the module docstring).

    Args:
        source: the input grid (projected metres, or lon/lat degrees).
        pixel_size_m: the wanted pixel size; None keeps the source's own (in metres).
        crs: the wanted CRS; None keeps the source's, or a local equal-area one for lon/lat.
        min_valid_fraction: of a target pixel's weight on valid source pixels, else no data.

    Raises:
        ConfigError: the CRS is not one pyproj reads, or the target grid would be degenerate.
    """
    if crs is None:
        crs = local_equal_area(source) if is_geographic(source.crs) else source.crs
    elif is_geographic(crs):
        raise ConfigError(f"align.crs: {crs!r} is a lon/lat CRS; give a projected one (metres), or leave it unset")
    if not same_crs(source.crs, crs):
        size = pixel_size_m or native_size_m(source)
        try:
            target = _grid_over(source, crs, size)
        except Exception as e:  # rasterio/pyproj raise several kinds for a CRS they cannot use
            raise ConfigError(f"align.crs: cannot reproject {source.crs!r} to {crs!r}: {e}") from e
        method: Method = "average" if size > native_size_m(source) * (1 + SAME_SIZE_RTOL) else "bilinear"
        return Regridder(source, target, method, 1, min_valid_fraction)
    if pixel_size_m is None or (
        _same_size(pixel_size_m, source.pixel_size) and _same_size(pixel_size_m, source.pixel_size_y)
    ):
        return Regridder(source, source, "keep", 1, min_valid_fraction)
    ratio = pixel_size_m / source.pixel_size
    factor = int(round(ratio))
    if factor >= 2 and abs(ratio - factor) < 1e-6 and math.isclose(source.pixel_size, source.pixel_size_y):
        ny, nx = source.shape[0] // factor, source.shape[1] // factor
        if nx < 2 or ny < 2:
            raise ConfigError(f"coarsening {source.describe()} by {factor} leaves fewer than 2x2 pixels")
        x = source.x[: nx * factor].reshape(nx, factor).mean(axis=1)
        y = source.y[: ny * factor].reshape(ny, factor).mean(axis=1)
        return Regridder(source, Grid(x=x, y=y, crs=source.crs), "block", factor, min_valid_fraction)
    target = _grid_over(source, source.crs, pixel_size_m)
    return Regridder(source, target, "average" if ratio > 1 else "bilinear", 1, min_valid_fraction)


def regridder_to(source: Grid, target: Grid, min_valid_fraction: float = 0.5) -> Regridder:
    """How to put fields on ``source`` onto a given grid ``target`` (a forecast back on its input's grid)."""
    if source.same_as(target):
        return Regridder(source, source, "keep", 1, min_valid_fraction)
    coarser = native_size_m(target) > native_size_m(source) * (1 + SAME_SIZE_RTOL)
    return Regridder(source, target, "average" if coarser else "bilinear", 1, min_valid_fraction)
