"""Tiny CF NetCDF archives with known contents, for ingest tests (independent of nowcast.synth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from tests.readers_helpers import LAEA


def known_field(index: int, shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A deterministic field for time step ``index``: rain on some pixels, a no-data corner."""
    rng = np.random.default_rng(seed * 100_003 + index)
    rain = np.round(rng.gamma(0.4, 3.0, size=shape), 2).astype(np.float32)
    rain[rng.random(shape) < 0.6] = 0.0
    rain[: shape[0] // 4, : shape[1] // 4] = np.nan
    return rain


def write_cf_file(
    path: Path,
    time: np.datetime64,
    rain: np.ndarray,
    pixel_size: float = 1000.0,
    x0: float = -50_000.0,
    y0: float = 50_000.0,
) -> Path:
    ny, nx = rain.shape
    x = x0 + pixel_size * (np.arange(nx) + 0.5)
    y = y0 - pixel_size * (np.arange(ny) + 0.5)
    ds = xr.Dataset(
        {
            "rainfall_rate": (
                ("time", "y", "x"),
                rain[None].astype(np.float32),
                {"units": "mm h-1", "standard_name": "rainfall_rate", "grid_mapping": "crs"},
            ),
            "crs": ((), np.int32(0), LAEA),
        },
        coords={
            "time": ("time", [np.datetime64(time, "ns")], {"standard_name": "time"}),
            "y": ("y", y, {"standard_name": "projection_y_coordinate", "units": "m"}),
            "x": ("x", x, {"standard_name": "projection_x_coordinate", "units": "m"}),
        },
        attrs={"Conventions": "CF-1.8"},
    )
    encoding = {
        "time": {"units": "seconds since 1970-01-01 00:00:00", "dtype": "int64"},
        "rainfall_rate": {"zlib": True, "_FillValue": np.float32(-1.0)},
    }
    ds.to_netcdf(path, engine="netcdf4", encoding=encoding)
    return path


def write_archive(
    folder: Path,
    n: int,
    shape=(32, 40),
    start="2024-06-01T00:00",
    step_min=5,
    missing=(),
    seed: int = 0,
    first_index: int = 0,
    **kw,
) -> dict[int, np.ndarray]:
    """Write files for steps first_index..first_index+n-1 except ``missing``; return {step: field}."""
    folder.mkdir(parents=True, exist_ok=True)
    t0 = np.datetime64(start, "s")
    fields = {}
    for i in range(first_index, first_index + n):
        if i in missing:
            continue
        t = t0 + np.timedelta64(i * step_min * 60, "s")
        fields[i] = known_field(i, shape, seed)
        stamp = str(t).replace("-", "").replace(":", "").replace("T", "")
        write_cf_file(folder / f"radar_{stamp}.nc", t, fields[i], **kw)
    return fields
