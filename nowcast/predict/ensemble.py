"""Ensemble forecasts: the members, the exceedance probabilities and the mean of one issue.

``run_ensemble`` is the whole of it on arrays (what ``nowcast evaluate --members`` scores);
``ensemble_to_file`` adds the input checks, the CF file and the pictures (``nowcast predict
--members``). The members spread around the model's own forecast when the model is the S-PROG
corrector (its learned correction is the control, ``SprogCorrector.lagrangian``); a ConvLSTM's
forecast is not a cascade, so with a ConvLSTM checkpoint the members spread around S-PROG, with
the model's motion settings, and the log says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nowcast.errors import ConfigError
from nowcast.model import Model, SprogCorrector
from nowcast.model.ensemble import EnsembleConfig, EnsembleSetup, ensemble, prepare
from nowcast.model.motion import estimate_motion
from nowcast.model.transform import rain_to_z
from nowcast.predict.config import PredictConfig
from nowcast.predict.inputs import Window, require_complete
from nowcast.predict.loading import LoadedModel, check_data_facts
from nowcast.predict.run import Forecast, lead_count

log = logging.getLogger(__name__)

DEFAULT_PROBABILITY_THRESHOLDS_MMH = (0.5, 1.0, 5.0, 10.0)
DEFAULT_ENSEMBLE = EnsembleConfig()  # the calibrated perturbations (see the README's "Probabilities")


def parse_thresholds(text: str) -> tuple[float, ...]:
    """``"0.5,1,5,10"`` -> (0.5, 1.0, 5.0, 10.0): positive rain rates in mm/h, ascending, distinct.

    Raises:
        ConfigError: anything else, with the text given.
    """
    try:
        values = tuple(sorted({float(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        values = ()
    if not values or values[0] <= 0 or not all(np.isfinite(values)):
        raise ConfigError(f"--probabilities {text!r}: give positive rain rates in mm/h, comma-separated, e.g. 0.5,1,5")
    return values


def centred_on(model: Model) -> str:
    """What the members spread around: the model's forecast, or S-PROG's."""
    return "the model's forecast" if isinstance(model, SprogCorrector) else "S-PROG (the model is not a cascade)"


def ensemble_setup(
    model: Model, frames: np.ndarray, n_leads: int, time_step_s: float, pixel_size_m: float
) -> EnsembleSetup:
    """The control forecast and the shared state of one start's ensemble.

    Args:
        model: the network (its motion and S-PROG settings are used; a SprogCorrector's correction too).
        frames: (num_input_frames, H, W) mm/h with NaN, oldest first.
        n_leads: lead times.
        time_step_s, pixel_size_m: the grid.
    """
    cfg = model.cfg
    if frames.shape[0] < 3:
        raise ConfigError(f"ensembles need at least 3 input frames (AR(2)); the model takes {frames.shape[0]}")
    device = next(model.parameters()).device
    rain = torch.from_numpy(np.ascontiguousarray(frames, np.float32)).to(device)  # (T, H, W)
    with torch.inference_mode():
        if isinstance(model, SprogCorrector):
            state, flow, field = model.lagrangian(rain[None, :, None], time_step_s, pixel_size_m, n_leads)
            return prepare(rain, flow[0], n_leads, cfg.sprog, state=state, control=field[0])
        has_data = torch.isfinite(rain)
        z = rain_to_z(torch.where(has_data, rain, 0.0), cfg.dry_threshold_mmh, cfg.max_rain_mmh)
        flow = estimate_motion(z[None], has_data[None], cfg.motion)[0]
        return prepare(rain, flow, n_leads, cfg.sprog)


def run_ensemble(
    model: Model,
    frames: np.ndarray,
    n_leads: int,
    n_members: int,
    seed: int,
    ens: EnsembleConfig = DEFAULT_ENSEMBLE,
    time_step_s: float = 300.0,
    pixel_size_m: float = 1000.0,
) -> Iterator[np.ndarray]:
    """The members of one start, a batch at a time: (b, n_leads, H, W) float32 mm/h, NaN = no data."""
    setup = ensemble_setup(model, frames, n_leads, time_step_s, pixel_size_m)
    with torch.inference_mode():
        for batch in ensemble(setup, n_members, seed, ens, time_step_s, pixel_size_m, model.cfg.sprog):
            yield batch.cpu().numpy()


def ensemble_forecaster(
    model: Model,
    n_members: int,
    seed: int = 0,
    ens: EnsembleConfig = DEFAULT_ENSEMBLE,
    time_step_s: float = 300.0,
    pixel_size_m: float = 1000.0,
) -> Callable[[np.ndarray, int], np.ndarray]:
    """The model's ensemble as ``f(frames, n_leads) -> (n_members, n_leads, H, W)``; every call
    uses the next seed, as ``verify.ensemble_baselines.make_ensemble_forecaster`` does."""
    calls = iter(range(seed, seed + 2**31))

    def forecast(frames: np.ndarray, n_leads: int) -> np.ndarray:
        batches = run_ensemble(model, frames, n_leads, n_members, next(calls), ens, time_step_s, pixel_size_m)
        return np.concatenate(list(batches))

    return forecast


def summarise(members: np.ndarray, thresholds: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Exceedance probabilities and mean of (N, n_leads, H, W) members, rounded in place first.

    The members are rounded to 0.01 mm/h, the precision they are written at, so probabilities
    counted here agree with the file. A pixel where any member has no data has neither.

    Returns:
        (n_thresholds, n_leads, H, W) probabilities in [0, 1] and the (n_leads, H, W) mean, float32.
    """
    np.round(members, 2, out=members)
    no_data = ~np.isfinite(members).all(axis=0)
    probabilities = np.stack([(members >= t).mean(axis=0, dtype=np.float32) for t in thresholds])
    probabilities[:, no_data] = np.nan
    return probabilities, members.mean(axis=0)


@dataclass(frozen=True, eq=False)
class EnsembleForecast:
    """Members, exceedance probabilities and mean of one issue (the mean is ``forecast.rain``)."""

    forecast: Forecast  # the ensemble mean, with the times, grid and input window
    members: np.ndarray  # (N, n_leads, H, W) float32 mm/h, NaN = no data
    probabilities: np.ndarray  # (n_thresholds, n_leads, H, W) float32 in [0, 1], NaN = no data
    thresholds: tuple[float, ...]  # mm/h: the probability is of rain at or above each
    seed: int
    centre: str  # what the members spread around


def make_ensemble(
    loaded: LoadedModel,
    window: Window,
    cfg: PredictConfig,
    n_members: int,
    seed: int = 0,
    thresholds: tuple[float, ...] = DEFAULT_PROBABILITY_THRESHOLDS_MMH,
    ens: EnsembleConfig = DEFAULT_ENSEMBLE,
) -> EnsembleForecast:
    """An ensemble from one complete input window (ensembles have no fallback).

    Members are computed ``ens.batch_members`` at a time; the probabilities and the mean are
    counted as the batches come. A pixel where any member has no data (rain traced from outside
    the domain) has no probability and no mean.

    Raises:
        CheckpointError: the input's pixel size or time step differs from the checkpoint's.
        MissingFramesError: input frames are missing.
        ConfigError: more leads asked than the model makes, fewer than 2 members, bad thresholds.
    """
    frames = window.frames
    check_data_facts(
        loaded, frames.grid.pixel_size, frames.time_step_s, frames.grid.crs, frames.source, cfg.input_time_step_s
    )
    if n_members < 2:
        raise ConfigError(f"--members: an ensemble needs at least 2 members, got {n_members}")
    if not thresholds or min(thresholds) <= 0:
        raise ConfigError(f"--probabilities: thresholds must be positive mm/h, got {list(thresholds)}")
    require_complete(window)
    n_leads = lead_count(loaded, cfg)
    started = time.perf_counter()
    log.info("%d members around %s, seed %d", n_members, centred_on(loaded.model), seed)
    members = np.empty((n_members, n_leads, *frames.grid.shape), np.float32)
    first = 0
    for batch in run_ensemble(
        loaded.model, frames.rain, n_leads, n_members, seed, ens, frames.time_step_s, frames.grid.pixel_size
    ):
        members[first : first + len(batch)] = batch
        first += len(batch)
    probabilities, mean = summarise(members, thresholds)
    log.info(
        "ensemble of %d members, %d leads from %s on %dx%d in %.2f s",
        n_members,
        n_leads,
        window.init_time,
        *frames.grid.shape,
        time.perf_counter() - started,
    )
    note = f"mean of {n_members} members around {centred_on(loaded.model)}"
    forecast = Forecast(mean, window.init_time, frames.grid, frames.time_step_s, window, "ensemble mean", note)
    thresholds = tuple(float(t) for t in thresholds)
    return EnsembleForecast(forecast, members, probabilities, thresholds, seed, centred_on(loaded.model))


def ensemble_dataset(result: EnsembleForecast, loaded: LoadedModel, cfg: PredictConfig, history: str = ""):
    """The ensemble as a CF dataset: the deterministic layout (``writer.forecast_dataset``) with
    ``rainfall_rate`` the ensemble mean, plus the members along ``realization`` and one
    exceedance probability per threshold.

    The members are packed to 0.01 mm/h in 16 bits (the store's precision), compressed.
    """
    import xarray as xr

    from nowcast.predict.writer import forecast_dataset

    ds = forecast_dataset(result.forecast, loaded, cfg, history)
    ds["rainfall_rate"].attrs.update({"long_name": "ensemble mean rain rate", "cell_methods": "realization: mean"})
    n_members, ny, nx = len(result.members), *result.members.shape[-2:]
    ds = ds.assign_coords(
        realization=("realization", np.arange(n_members, dtype=np.int32), {"standard_name": "realization"}),
        threshold=(
            "threshold",
            np.asarray(result.thresholds, np.float32),
            {
                "standard_name": "rainfall_rate",
                "long_name": "rain rate threshold",
                "units": "mm h-1",
                "spp__relative_to_threshold": "greater_than_or_equal_to",
            },
        ),
    )
    ds["rainfall_rate_members"] = xr.Variable(
        ("realization", "time", "y", "x"),
        result.members,
        {
            "units": "mm h-1",
            "standard_name": "rainfall_rate",
            "long_name": "forecast rain rate of each ensemble member",
            "grid_mapping": "crs",
        },
        encoding={
            "dtype": "uint16",
            "scale_factor": 0.01,
            "_FillValue": np.uint16(65535),
            "zlib": True,
            "complevel": 4,
            "chunksizes": (1, 1, ny, nx),
        },
    )
    ds["probability_of_rainfall_rate_above_threshold"] = xr.Variable(
        ("threshold", "time", "y", "x"),
        result.probabilities,
        {
            "units": "1",
            "long_name": "probability of rain rate at or above the threshold (fraction of members)",
            "grid_mapping": "crs",
        },
        encoding={"dtype": "float32", "_FillValue": np.float32(np.nan), "zlib": True, "chunksizes": (1, 1, ny, nx)},
    )
    ds.attrs.update(
        {
            "source": ds.attrs["source"].rsplit(":", 1)[0]
            + ": ensemble (STEPS-like perturbations of a cascade forecast)",
            "forecast_method": "ensemble",
            "fallback": 0,
            "ensemble_members": n_members,
            "ensemble_seed": result.seed,
            "ensemble_centre": result.centre,
            "ensemble_config": cfg.ensemble.model_dump_json(),
            "no_data_rule": "NaN where any input frame has no data or a member's trace left the domain; "
            "probabilities and mean NaN where any member has no data",
        }
    )
    return ds


def ensemble_to_file(
    loaded: LoadedModel,
    window: Window,
    cfg: PredictConfig,
    out: str | Path,
    n_members: int,
    seed: int = 0,
    thresholds: tuple[float, ...] = DEFAULT_PROBABILITY_THRESHOLDS_MMH,
    history: str = "",
) -> dict[str, Any]:
    """Forecast an ensemble, write it atomically (``writer.write_dataset``) and, if ``cfg.plot``,
    the probability maps beside it.

    Returns:
        {"ensemble": EnsembleForecast, "paths": {"forecast", "probabilities"}}.
    """
    from nowcast.predict.writer import check_out_path, write_dataset

    out = check_out_path(out)
    result = make_ensemble(loaded, window, cfg, n_members, seed, thresholds, cfg.ensemble)
    paths = {"forecast": write_dataset(ensemble_dataset(result, loaded, cfg, history), out)}
    log.info("wrote %s: %d members, %d leads from %s", out, n_members, result.members.shape[1], window.init_time)
    if cfg.plot:
        from nowcast.predict.ensemble_plot import plot_probabilities

        paths["probabilities"] = plot_probabilities(result, out.with_suffix(".probabilities.png"))
    return {"ensemble": result, "paths": paths}
