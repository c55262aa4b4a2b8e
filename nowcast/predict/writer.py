"""Write a forecast as CF NetCDF (or Zarr, by the ``.zarr`` extension), atomically.

Layout (CF-1.8)::

    rainfall_rate (time, y, x)  float32 mm h-1, standard_name rainfall_rate, NaN = no data
    time (time)                 valid time of each lead
    lead_time (time)            minutes after forecast_reference_time (standard_name forecast_period)
    forecast_reference_time     scalar: time of the last input frame
    y, x                        the input grid, projection metres
    crs                         grid mapping: pyproj's CF attributes, crs_wkt and proj4
    attrs                       model (checkpoint, step, config JSON), predict config (YAML), history

The file is written through ``nowcast.atomic.atomic_write``: a reader sees the old forecast or
the new one, never half of one; on any failure the temporary file is removed and the final
name is untouched.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from nowcast import __version__
from nowcast.atomic import atomic_write
from nowcast.cf import crs_attributes, xy_attributes
from nowcast.config import dump_config
from nowcast.errors import ConfigError, output_error
from nowcast.predict.config import PredictConfig
from nowcast.predict.loading import LoadedModel
from nowcast.store import TIME_UNITS

log = logging.getLogger(__name__)

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf")
ZARR_SUFFIX = ".zarr"


def check_out_path(out: str | Path) -> Path:
    """The output path, if its extension names a format we write.

    Raises:
        ConfigError: any other extension (the message lists the allowed ones).
    """
    out = Path(out)
    if out.suffix.lower() not in (*NETCDF_SUFFIXES, ZARR_SUFFIX):
        raise ConfigError(
            f"--out {out}: unknown extension {out.suffix!r}; use one of {', '.join((*NETCDF_SUFFIXES, ZARR_SUFFIX))}"
        )
    return out


Parts = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]  # data variables, coordinates, attributes


def forecast_dataset(forecast: Any, loaded: LoadedModel, cfg: PredictConfig, history: str = ""):
    """The forecast as a CF xarray Dataset (see the module docstring).

    Args:
        forecast: a ``nowcast.predict.run.Forecast``.
        loaded: the model that made it (recorded in the attributes).
        cfg: the resolved predict config (recorded).
        history: the command line.
    """
    import xarray as xr

    data_vars, coords, attrs = forecast_parts(forecast, loaded, cfg, history)
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def forecast_parts(forecast: Any, loaded: LoadedModel, cfg: PredictConfig, history: str = "") -> Parts:
    """The forecast's variables, coordinates (name -> (dims, values, attributes)) and attributes:
    the one layout both the xarray dataset and the plain NetCDF writer lay out."""
    grid = forecast.grid
    window = forecast.window
    coords = {
        "time": (
            "time",
            forecast.valid_times.astype("datetime64[ns]"),
            {"standard_name": "time", "long_name": "valid time", "axis": "T"},
        ),
        "lead_time": (
            "time",
            forecast.lead_minutes,
            {"standard_name": "forecast_period", "long_name": "lead time", "units": "minutes"},
        ),
        "forecast_reference_time": (
            (),
            np.datetime64(forecast.init_time, "ns"),
            {"standard_name": "forecast_reference_time", "long_name": "time of the last input frame"},
        ),
        "y": ("y", grid.y, xy_attributes(grid.crs, "y")),
        "x": ("x", grid.x, xy_attributes(grid.crs, "x")),
    }
    rain_attrs = {
        "units": "mm h-1",
        "standard_name": "rainfall_rate",
        "long_name": "forecast rain rate",
        "grid_mapping": "crs",
    }
    data_vars = {
        "rainfall_rate": (("time", "y", "x"), np.asarray(forecast.rain, np.float32), rain_attrs),
        "crs": ((), np.int32(0), crs_attributes(grid.crs)),
    }
    attrs = {
        "Conventions": "CF-1.8",
        "title": "radar precipitation nowcast",
        "source": f"nowcast {__version__}: {forecast.description if forecast.method == 'model' else forecast.method}",
        "history": f"{np.datetime64('now', 's')}Z: {history or 'nowcast predict'}",
        "forecast_method": forecast.method,
        "fallback": int(forecast.method != "model"),
        "fallback_reason": forecast.note,
        "model_checkpoint": loaded.path,
        "model_step": int(loaded.step),
        "model_config": json.dumps(loaded.cfg.model_dump(mode="json")),
        "checkpoint_config": json.dumps(loaded.config, default=str),
        "predict_config": dump_config(cfg),
        "input_source": window.frames.source,
        "input_times": " ".join(str(t) for t in window.frames.times),
        "input_missing_times": " ".join(str(t) for t in window.missing),
        "no_data_rule": "NaN where the last input frame has no data",
        "time_step_s": int(forecast.time_step_s),
        "pixel_size_m": float(grid.pixel_size),
    }
    return data_vars, coords, attrs


def _encoding(ds, zarr: bool) -> dict[str, dict[str, Any]]:
    return _encoding_for(ds.sizes["y"], ds.sizes["x"], zarr)


def _encoding_for(ny: int, nx: int, zarr: bool) -> dict[str, dict[str, Any]]:
    rain = {"dtype": "float32", "_FillValue": np.float32(np.nan)}
    if not zarr:
        rain.update({"zlib": True, "complevel": 4, "chunksizes": (1, ny, nx)})
    # CF: time coordinates as doubles (the checker refuses int64), and coordinates never carry a _FillValue
    times = {"units": TIME_UNITS, "calendar": "proleptic_gregorian", "dtype": "float64", "_FillValue": None}
    return {
        "rainfall_rate": rain,
        "time": dict(times),
        "forecast_reference_time": dict(times),
        "lead_time": {"dtype": "float64", "_FillValue": None},
        "x": {"dtype": "float64", "_FillValue": None},
        "y": {"dtype": "float64", "_FillValue": None},
    }


def write_dataset(ds, out: str | Path) -> Path:
    """Write ``ds`` to ``out`` (NetCDF or Zarr by extension) through a temporary name and a rename.

    Args:
        ds: the dataset.
        out: the final path.

    Returns:
        The final path.

    Raises:
        ConfigError: an extension we do not write.
        OutputError: the file system refused the write (full, read-only); nothing was left.
    """
    out = check_out_path(out)
    try:
        with atomic_write(out) as tmp:
            if out.suffix.lower() == ZARR_SUFFIX:
                ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False, encoding=_encoding(ds, True))
            else:
                ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=_encoding(ds, False))
    except (OSError, RuntimeError) as e:  # netCDF4 reports a full disk as RuntimeError("HDF error")
        raise output_error(out, e) from e
    return out


def _write_netcdf(parts: Parts, path: Path) -> None:
    """The forecast as NetCDF4 through netCDF4 itself, laid out as xarray writes ``forecast_dataset``.

    A one-shot ``nowcast predict`` then needs neither xarray nor pandas, nor the dask.distributed
    import that xarray's ``to_netcdf`` makes to look for a cluster: seconds of a run of a few.
    """
    import netCDF4

    data_vars, coords, attrs = parts
    ny, nx = len(coords["y"][1]), len(coords["x"][1])
    encoding = _encoding_for(ny, nx, zarr=False)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.setncatts(attrs)
        for dim, size in (("time", len(coords["time"][1])), ("y", ny), ("x", nx)):
            nc.createDimension(dim, size)
        for name, (dims, values, var_attrs) in {**coords, **data_vars}.items():
            enc = encoding.get(name, {})
            values = np.asarray(values)
            var_attrs = dict(var_attrs)
            if values.dtype.kind == "M":  # CF time: seconds since the epoch, as doubles
                values = values.astype("datetime64[ns]").astype(np.int64) / 1e9
                # the units as xarray writes them (it drops a midnight time of the reference date)
                var_attrs.update({"units": enc["units"].removesuffix(" 00:00:00"), "calendar": enc["calendar"]})
            fill = enc.get("_FillValue")
            kwargs = {k: enc[k] for k in ("zlib", "complevel", "chunksizes") if k in enc}
            var = nc.createVariable(
                name, enc.get("dtype", values.dtype), dims, fill_value=False if fill is None else fill, **kwargs
            )
            if name in data_vars:  # the non-dimension coordinates each variable spans, as xarray names them
                var_attrs["coordinates"] = "forecast_reference_time lead_time" if dims else "forecast_reference_time"
            var.setncatts(var_attrs)
            var[...] = values


def write_forecast(forecast: Any, out: str | Path, loaded: LoadedModel, cfg: PredictConfig, history: str = "") -> Path:
    """Write a forecast (see the module docstring); returns the final path."""
    out = check_out_path(out)
    if out.suffix.lower() == ZARR_SUFFIX:
        path = write_dataset(forecast_dataset(forecast, loaded, cfg, history), out)
    else:
        try:
            with atomic_write(out) as tmp:
                _write_netcdf(forecast_parts(forecast, loaded, cfg, history), tmp)
        except (OSError, RuntimeError) as e:  # netCDF4 reports a full disk as RuntimeError("HDF error")
            raise output_error(out, e) from e
        path = out
    log.info("wrote %s: %d leads from %s (%s)", path, len(forecast.rain), forecast.init_time, forecast.method)
    return path
