"""A radar scan and its grid: what every reader returns and every later stage reads.

Conventions fixed here, once:
- ``rain_rate`` is float32 in mm/h, shape ``(ny, nx)``; NaN means no data (outside radar
  range, blocked), 0 means measured dry.
- Rows run north to south: ``y`` decreases with the row index, ``x`` increases with the column.
- ``x``/``y`` are pixel centres in projection metres; ``crs`` is a proj string or WKT. A lon/lat
  grid (GRIB2) has degrees and a geographic CRS; ``nowcast.regrid`` projects it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Grid:
    """A regular projected grid with north-up rows."""

    x: np.ndarray  # (nx,) pixel centres, metres, increasing
    y: np.ndarray  # (ny,) pixel centres, metres, decreasing
    crs: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", np.asarray(self.x, dtype=np.float64))
        object.__setattr__(self, "y", np.asarray(self.y, dtype=np.float64))
        if self.x.ndim != 1 or self.y.ndim != 1 or len(self.x) < 2 or len(self.y) < 2:
            raise ValueError("grid coordinates must be 1-D with at least two pixels each")
        if not (np.all(np.diff(self.x) > 0) and np.all(np.diff(self.y) < 0)):
            raise ValueError("grid x must increase and y must decrease (north-up rows)")

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.y), len(self.x))

    @property
    def pixel_size(self) -> float:
        """Pixel size in metres (the grid is square; x spacing)."""
        return float(abs(self.x[1] - self.x[0]))

    @property
    def pixel_size_y(self) -> float:
        return float(abs(self.y[0] - self.y[1]))

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(x_min, x_max, y_min, y_max) of the pixel edges, metres."""
        hx, hy = self.pixel_size / 2, self.pixel_size_y / 2
        return (self.x[0] - hx, self.x[-1] + hx, self.y[-1] - hy, self.y[0] + hy)

    def same_as(self, other: Grid, atol_m: float = 1.0) -> bool:
        """True if both grids have the same shape, coordinates (within atol) and CRS."""
        return (
            self.shape == other.shape
            and np.allclose(self.x, other.x, atol=atol_m, rtol=0)
            and np.allclose(self.y, other.y, atol=atol_m, rtol=0)
            and self.crs.strip() == other.crs.strip()
        )

    def describe(self) -> str:
        from nowcast.regrid import is_geographic

        unit = "degrees" if is_geographic(self.crs) else "m"
        return (
            f"{self.shape[0]}x{self.shape[1]} pixels of {self.pixel_size:g} {unit}, "
            f"x {self.extent[0]:.0f}..{self.extent[1]:.0f}, y {self.extent[2]:.0f}..{self.extent[3]:.0f}"
        )

    @classmethod
    def from_corner(
        cls,
        x_left: float,
        y_top: float,
        pixel_size: float,
        shape: tuple[int, int],
        crs: str,
        pixel_size_y: float | None = None,
    ) -> Grid:
        """Build from the outer upper-left corner (pixel edge), as ODIM and most rasters give it."""
        ny, nx = shape
        dy = pixel_size if pixel_size_y is None else pixel_size_y
        x = x_left + pixel_size * (np.arange(nx) + 0.5)
        y = y_top - dy * (np.arange(ny) + 0.5)
        return cls(x=x, y=y, crs=crs)


@dataclass(frozen=True, eq=False)
class Scan:
    """One radar field at one valid time."""

    time: np.datetime64  # valid time, UTC, second precision
    rain_rate: np.ndarray  # (ny, nx) float32 mm/h, NaN = no data
    grid: Grid
    source: str = ""  # where it came from (file path), for messages
    quantity: str = ""  # what the file held and how it became mm/h (e.g. "DBZH, Z = 200 R^1.6"), for messages

    def __post_init__(self) -> None:
        object.__setattr__(self, "time", np.datetime64(self.time, "s"))
        object.__setattr__(self, "rain_rate", np.asarray(self.rain_rate, dtype=np.float32))
        if self.rain_rate.shape != self.grid.shape:
            raise ValueError(f"rain_rate shape {self.rain_rate.shape} does not match grid {self.grid.shape}")
