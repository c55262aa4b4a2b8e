"""Putting scans on the store's grid: crop, then resample with ``nowcast.regrid``.

The crop box is in the source's coordinates. Resampling follows ``plan_regrid``: pixel sizes
within 1 % are kept as they are, a whole coarsening factor is an exact block area mean, any other
size or ``align.crs`` (and every lon/lat source) goes through rasterio (area average when
coarsening, bilinear when refining). A target pixel is no-data when less than
``min_valid_fraction`` of it is covered by source pixels with data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nowcast.errors import ConfigError
from nowcast.ingest.config import AlignConfig
from nowcast.regrid import Regridder, coarsen_mean, plan_regrid
from nowcast.scan import Grid

__all__ = ["SpatialPlan", "coarsen_mean", "plan_spatial"]


@dataclass(frozen=True)
class SpatialPlan:
    """How a source grid maps onto the target grid: rows/cols to keep, then a regridder."""

    source: Grid
    rows: slice
    cols: slice
    regrid: Regridder

    @property
    def target(self) -> Grid:
        return self.regrid.target

    @property
    def factor(self) -> int:
        return self.regrid.factor

    def apply(self, rain: np.ndarray) -> np.ndarray:
        return self.regrid.apply(np.ascontiguousarray(rain[self.rows, self.cols], dtype=np.float32))


def plan_spatial(source: Grid, config: AlignConfig) -> SpatialPlan:
    """Work out crop and resampling for scans on ``source``.

    Raises:
        ConfigError: the crop leaves no pixel, or the target grid cannot be made.
    """
    rows, cols = slice(None), slice(None)
    cropped = source
    if config.crop is not None:
        c = config.crop
        keep_x = np.flatnonzero((source.x >= c.x_min) & (source.x <= c.x_max))
        keep_y = np.flatnonzero((source.y >= c.y_min) & (source.y <= c.y_max))
        if len(keep_x) < 2 or len(keep_y) < 2:
            raise ConfigError(f"align.crop leaves fewer than 2x2 pixels of the source grid ({source.describe()})")
        rows, cols = slice(keep_y[0], keep_y[-1] + 1), slice(keep_x[0], keep_x[-1] + 1)
        cropped = Grid(x=source.x[cols], y=source.y[rows], crs=source.crs)
    regrid = plan_regrid(cropped, config.pixel_size_m, config.crs, config.min_valid_fraction)
    return SpatialPlan(source, rows, cols, regrid)
