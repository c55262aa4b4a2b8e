"""The Python API: forecast from xarray frames in a notebook, as the command line does from files.

    import nowcast
    frames = nowcast.open_store("runs/stores/knmi.zarr")["rainrate"].isel(time=slice(-4, None))
    fc = nowcast.forecast(frames, leads=24)             # the shipped model
    fc = nowcast.forecast(frames, method="sprog")       # nowcast's S-PROG, no checkpoint
    ens = nowcast.forecast(frames, leads=12, members=20)  # members, probabilities and mean
    scan = nowcast.read_scan("path/to/radar/file.h5")   # any format ingest reads

The checks are the command line's: the frames' time step and pixel size are read from their
coordinates and checked against the checkpoint (``check_data_facts``), so a 2 km input never
reaches a 1 km ConvLSTM silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nowcast.errors import ConfigError


def _step_s(times: np.ndarray) -> int:
    steps = np.diff(times.astype("datetime64[s]").astype(np.int64))
    if len(steps) == 0 or (steps <= 0).any() or len(set(steps.tolist())) != 1:
        raise ConfigError(f"frames need a regular increasing time axis; got steps of {sorted(set(steps.tolist()))} s")
    return int(steps[0])


def forecast(
    frames: Any,
    leads: int | None = None,
    method: str = "model",
    checkpoint: str | Path | None = None,
    input_time_step_s: int | None = None,
    members: int | None = None,
    seed: int = 0,
    probabilities: tuple[float, ...] = (0.5, 1.0, 5.0, 10.0),
) -> Any:
    """Forecast the next ``leads`` frames after the last of ``frames``; with ``members``, an ensemble.

    Args:
        frames: an ``xarray.DataArray`` (time, y, x) of rain rate in mm/h, NaN for no data, with
            ``time``, ``x`` and ``y`` (metres, projected) coordinates; at least the model's input
            frames (the last ones are used). A ``crs`` attribute (PROJ/WKT) is kept on the output.
        leads: lead times (default: all the model makes).
        method: ``model`` (``checkpoint``, default the shipped model) or ``sprog``.
        checkpoint: a checkpoint from ``nowcast train``.
        input_time_step_s: run a model trained at another step at the frames' step (as ``--input-time-step``).
        members: an ensemble of this many members around the forecast (as ``predict --members``).
        seed: with ``members``: the same seed gives the same members.
        probabilities: with ``members``: rain rates (mm/h) of the exceedance probabilities.

    Returns:
        ``xarray.DataArray`` ``rainfall_rate`` (time, y, x) in mm/h by valid time, with
        ``lead_time`` (minutes) and ``forecast_reference_time`` coordinates. With ``members``, an
        ``xarray.Dataset``: ``rainfall_rate`` the ensemble mean, ``rainfall_rate_members``
        (realization, time, y, x) and ``probability`` (threshold, time, y, x), the fraction of
        members at or above each threshold; NaN where any member has no data.

    Raises:
        ConfigError: frames without a regular time axis or projected coordinates, fewer than 2
            members, thresholds that are not positive.
        CheckpointError: the frames' pixel size or step does not fit the checkpoint.
    """
    from nowcast.predict.forecast import run_model
    from nowcast.predict.loading import check_data_facts, load_method

    missing = [name for name in ("time", "y", "x") if name not in frames.dims]
    if missing:
        raise ConfigError(f"frames need dimensions (time, y, x); missing {missing} in {frames.dims}")
    frames = frames.transpose("time", "y", "x").sortby("y", ascending=False).sortby("x")
    loaded = load_method(method, checkpoint, leads)
    n_in = loaded.cfg.num_input_frames
    if frames.sizes["time"] < n_in:
        raise ConfigError(f"the model needs {n_in} input frames, {frames.sizes['time']} given")
    frames = frames.isel(time=slice(-n_in, None))
    step = _step_s(frames["time"].values.astype("datetime64[s]"))
    x = frames["x"].values.astype(np.float64)
    pixel = float(abs(x[1] - x[0]))
    crs = frames.attrs.get("crs")
    check_data_facts(loaded, pixel, step, crs, "frames", input_time_step_s)
    most = loaded.cfg.num_output_frames
    if leads is not None and leads > most:
        raise ConfigError(f"leads: the model forecasts {most} lead times, {leads} asked")
    values = frames.values.astype(np.float32)
    if members is not None:
        return _ensemble(loaded, values, leads or most, step, pixel, members, seed, probabilities, frames, crs)
    rain = run_model(loaded.model, values, step, pixel)[: leads or most]
    return _rain_array(rain, frames, step, loaded.title, crs)


def _rain_array(rain: np.ndarray, frames: Any, step: int, source: str, crs: str | None) -> Any:
    """(n_leads, H, W) mm/h after the last of ``frames`` -> ``rainfall_rate`` by valid time."""
    import xarray as xr

    times = frames["time"].values.astype("datetime64[s]")
    lead_s = np.arange(1, len(rain) + 1) * step
    out = xr.DataArray(
        rain,
        dims=("time", "y", "x"),
        coords={
            "time": times[-1] + lead_s.astype("timedelta64[s]"),
            "y": frames["y"].values,
            "x": frames["x"].values.astype(np.float64),
            "lead_time": ("time", lead_s / 60.0, {"units": "minutes", "standard_name": "forecast_period"}),
            "forecast_reference_time": times[-1],
        },
        name="rainfall_rate",
        attrs={"units": "mm h-1", "standard_name": "rainfall_rate", "source": source},
    )
    if crs:
        out.attrs["crs"] = crs
    return out


def _ensemble(
    loaded: Any,
    values: np.ndarray,
    n_leads: int,
    step: int,
    pixel: float,
    n_members: int,
    seed: int,
    thresholds: tuple[float, ...],
    frames: Any,
    crs: str | None,
) -> Any:
    """``forecast(members=...)``: the members of ``predict --members``, their probabilities and mean."""
    import xarray as xr

    from nowcast.predict.ensemble import centred_on, parse_thresholds, run_ensemble, summarise

    if n_members < 2:
        raise ConfigError(f"members: an ensemble needs at least 2 members, got {n_members}")
    thresholds = parse_thresholds(",".join(str(t) for t in thresholds))
    batches = run_ensemble(loaded.model, values, n_leads, n_members, seed, time_step_s=step, pixel_size_m=pixel)
    members = np.concatenate(list(batches))
    probability, mean = summarise(members, thresholds)
    source = f"{loaded.title}: mean of {n_members} members around {centred_on(loaded.model)}"
    out = _rain_array(mean, frames, step, source, crs).to_dataset()
    out["rainfall_rate_members"] = (("realization", *out["rainfall_rate"].dims), members, {"units": "mm h-1"})
    out["probability"] = xr.DataArray(
        probability,
        dims=("threshold", "time", "y", "x"),
        attrs={"units": "1", "long_name": "fraction of members at or above the threshold"},
    )
    out = out.assign_coords(
        realization=np.arange(n_members), threshold=("threshold", np.asarray(thresholds), {"units": "mm h-1"})
    )
    out.attrs.update({"ensemble_members": n_members, "ensemble_seed": seed})
    return out


def open_store(path: str | Path) -> Any:
    """A store written by ``nowcast ingest`` as a CF ``xarray.Dataset`` (lazy; rain as float32 mm/h).

    ``ds.rio.crs`` is the store's CRS (its ``crs`` grid-mapping variable).

    Raises:
        StoreError: not a nowcast store, or one written before consolidated metadata (the message
            says how to add it).
    """
    from nowcast.store import StoreReader, open_dataset

    reader = StoreReader(str(path))  # checks it is a nowcast store, with a message naming the path
    ds = open_dataset(str(path))
    ds.attrs.setdefault("crs", reader.grid.crs)
    for name in ds.data_vars:  # ``forecast`` reads the CRS from the frames' attributes
        if name != "crs":
            ds[name].attrs.setdefault("crs", reader.grid.crs)
    return ds


def read_scan(path: str | Path, format: str = "auto") -> Any:
    """One radar file, in any format ingest reads, as an ``xarray.DataArray`` (y, x) in mm/h."""
    import xarray as xr

    from nowcast.ingest.config import ReaderOptions
    from nowcast.ingest.readers import read_scan as read

    scan = read(str(path), ReaderOptions(format=format))
    return xr.DataArray(
        scan.rain_rate,
        dims=("y", "x"),
        coords={"y": scan.grid.y, "x": scan.grid.x, "time": scan.time},
        name="rainfall_rate",
        attrs={"units": "mm h-1", "crs": scan.grid.crs, "source": scan.source},
    )
