"""One forecast issue: check the input fits the model, run it (or the fallback), name the times.

Read top to bottom: ``make_forecast`` is the whole of it; ``predict_to_file`` adds writing
the file and the pictures, which is what ``nowcast predict`` calls.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nowcast.errors import ConfigError, MissingFramesError
from nowcast.predict.config import PredictConfig
from nowcast.predict.forecast import run_model
from nowcast.predict.inputs import Window, require_complete
from nowcast.predict.loading import LoadedModel, check_data_facts
from nowcast.scan import Grid

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Forecast:
    """Forecast rain for each lead time after ``init_time``, on the input's grid."""

    rain: np.ndarray  # (n_leads, H, W) float32 mm/h, NaN = no data
    init_time: np.datetime64  # forecast_reference_time: the last input frame
    grid: Grid
    time_step_s: int
    window: Window  # the input frames it started from
    method: str = "model"  # "model", or the baseline used as fallback
    note: str = ""  # why a fallback was used
    description: str = ""  # the model that made it, in words (the output's title and source)

    @property
    def lead_minutes(self) -> np.ndarray:
        return (np.arange(1, len(self.rain) + 1) * self.time_step_s / 60).astype(np.float64)

    @property
    def valid_times(self) -> np.ndarray:
        steps = np.arange(1, len(self.rain) + 1) * self.time_step_s
        return self.init_time + steps.astype("timedelta64[s]")


def lead_count(loaded: LoadedModel, cfg: PredictConfig) -> int:
    """The lead times to forecast: ``cfg.leads``, or all the model makes; more is a ConfigError."""
    most = loaded.cfg.num_output_frames
    if cfg.leads is not None and cfg.leads > most:
        raise ConfigError(
            f"leads: the model forecasts {most} lead times, {cfg.leads} asked; use --leads {most} or fewer"
        )
    return cfg.leads or most


def _fallback(window: Window, n_leads: int) -> tuple[np.ndarray, str]:
    """Optical-flow extrapolation from the consecutive valid frames at the end of the window."""
    from nowcast.verify.baselines import extrapolation

    valid = window.frames.valid
    run = 0
    while run < len(valid) and valid[len(valid) - 1 - run]:
        run += 1
    if run < 2:
        require_complete(window)  # not even two consecutive frames to track motion: the normal error
    missing = ", ".join(str(t) for t in window.missing)
    note = f"input frames missing ({missing}): optical-flow extrapolation from the last {run} frames"
    log.warning("fallback: %s", note)
    frames = window.frames.rain[len(valid) - run :]
    rain = extrapolation(frames, n_leads, window.frames.grid.pixel_size, window.frames.time_step_s)
    return rain, note


def make_forecast(loaded: LoadedModel, window: Window, cfg: PredictConfig) -> Forecast:
    """Forecast from one input window.

    Args:
        loaded: the model and its data facts.
        window: the input window (``store_window`` or ``select_window``).
        cfg: predict options (leads, tiling, fallback).

    Returns:
        The forecast; ``method`` says whether the model or the fallback made it.

    Raises:
        CheckpointError: the input's pixel size or time step differs from the checkpoint's.
        MissingFramesError: input frames are missing and no fallback was asked for.
        ConfigError: more leads asked than the model makes.
    """
    frames = window.frames
    check_data_facts(
        loaded, frames.grid.pixel_size, frames.time_step_s, frames.grid.crs, frames.source, cfg.input_time_step_s
    )
    n_leads = lead_count(loaded, cfg)
    if len(frames) != loaded.cfg.num_input_frames:
        raise MissingFramesError(
            f"{frames.source}: {len(frames)} input frames, the model needs {loaded.cfg.num_input_frames}"
        )
    if not window.complete:
        if cfg.fallback != "extrapolation":
            require_complete(window)
        rain, note = _fallback(window, n_leads)
        return Forecast(rain, window.init_time, frames.grid, frames.time_step_s, window, "extrapolation", note)
    started = time.perf_counter()
    options = cfg.forecast_options()
    rain = run_model(loaded.model, frames.rain, frames.time_step_s, frames.grid.pixel_size, **options)[:n_leads]
    log.info(
        "forecast of %d leads from %s on %dx%d in %.2f s",
        n_leads,
        window.init_time,
        *frames.grid.shape,
        time.perf_counter() - started,
    )
    return Forecast(rain, window.init_time, frames.grid, frames.time_step_s, window, description=loaded.title)


def on_input_grid(forecast: Forecast) -> Forecast:
    """The forecast resampled back onto the grid of the input files (``--output-grid input``)."""
    from dataclasses import replace

    from nowcast.regrid import regridder_to

    source = forecast.window.frames.input_grid
    if source is None:
        log.info("--output-grid input: the input was not regridded; the forecast is on its grid already")
        return forecast
    regrid = regridder_to(forecast.grid, source)
    log.info("--output-grid input: forecast %s", regrid.describe())
    return replace(forecast, rain=regrid.apply(forecast.rain), grid=source)


def predict_to_file(
    loaded: LoadedModel, window: Window, cfg: PredictConfig, out: str | Path, history: str = ""
) -> dict[str, Any]:
    """Forecast, write it atomically and, if ``cfg.plot``, the PNG and GIF beside it.

    Args:
        loaded: the model.
        window: the input window.
        cfg: predict options.
        out: the output file (``.nc`` or ``.zarr``).
        history: the command line, recorded in the ``history`` attribute.

    Returns:
        {"forecast": Forecast, "paths": {"forecast", "png", "gif"}}.
    """
    from nowcast.predict.writer import check_out_path, write_forecast

    out = check_out_path(out)  # before any work: a bad extension costs nothing
    forecast = make_forecast(loaded, window, cfg)
    if cfg.output_grid == "input":
        forecast = on_input_grid(forecast)
    paths = {"forecast": write_forecast(forecast, out, loaded, cfg, history)}
    if cfg.plot:
        from nowcast.predict.plot import plot_forecast

        paths.update(plot_forecast(forecast, out))
    return {"forecast": forecast, "paths": paths}
