"""Putting scans on the store's grid: crop and coarsen by area mean.

Alignment never reprojects: a store keeps the projection of its radar product. Coarsening
needs an integer factor (0.5 km -> 1 km); a coarse pixel is no-data when fewer than
``min_valid_fraction`` of its fine pixels have data, else the mean of those that do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nowcast.errors import ConfigError
from nowcast.ingest.config import AlignConfig
from nowcast.scan import Grid


@dataclass(frozen=True)
class SpatialPlan:
    """How a source grid maps onto the target grid: rows/cols to keep, then a block factor."""

    source: Grid
    target: Grid
    rows: slice
    cols: slice
    factor: int
    min_valid_fraction: float

    def apply(self, rain: np.ndarray) -> np.ndarray:
        field = rain[self.rows, self.cols]
        if self.factor == 1:
            return np.ascontiguousarray(field, dtype=np.float32)
        return coarsen_mean(field, self.factor, self.min_valid_fraction)


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


def plan_spatial(source: Grid, config: AlignConfig) -> SpatialPlan:
    """Work out crop and coarsening for scans on ``source``.

    Raises:
        ConfigError: the crop leaves no pixel, or the target pixel size is not a whole
            multiple of the source's.
    """
    rows, cols = slice(None), slice(None)
    if config.crop is not None:
        c = config.crop
        keep_x = np.flatnonzero((source.x >= c.x_min) & (source.x <= c.x_max))
        keep_y = np.flatnonzero((source.y >= c.y_min) & (source.y <= c.y_max))
        if len(keep_x) < 2 or len(keep_y) < 2:
            raise ConfigError(f"align.crop leaves fewer than 2x2 pixels of the source grid ({source.describe()})")
        rows, cols = slice(keep_y[0], keep_y[-1] + 1), slice(keep_x[0], keep_x[-1] + 1)
    factor = 1
    if config.pixel_size_m is not None:
        ratio = config.pixel_size_m / source.pixel_size
        factor = int(round(ratio))
        if factor < 1 or abs(ratio - factor) > 1e-6:
            raise ConfigError(
                f"align.pixel_size_m: {config.pixel_size_m:g} m is not a whole multiple of the source "
                f"pixel size {source.pixel_size:g} m; use a multiple such as {source.pixel_size * 2:g}"
            )
    x, y = source.x[cols], source.y[rows]
    nx, ny = len(x) // factor, len(y) // factor
    if nx < 2 or ny < 2:
        raise ConfigError(f"align: coarsening by {factor} leaves fewer than 2x2 pixels")
    # trim to whole blocks, then block centres are the means of the fine centres
    rows = slice(rows.start or 0, (rows.start or 0) + ny * factor)
    cols = slice(cols.start or 0, (cols.start or 0) + nx * factor)
    x, y = source.x[cols], source.y[rows]
    target = Grid(x=x.reshape(nx, factor).mean(axis=1), y=y.reshape(ny, factor).mean(axis=1), crs=source.crs)
    return SpatialPlan(source, target, rows, cols, factor, config.min_valid_fraction)
