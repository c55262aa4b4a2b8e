"""Ensemble baselines: pySTEPS' STEPS, the operational standard a probabilistic nowcast must beat.

Contract of every ensemble baseline (one call = one ensemble forecast)::

    baseline(frames, n_leads, n_members, pixel_size_m, time_step_s, seed) -> members

    frames        (T_in, H, W) float mm/h, NaN = no data, oldest first, last = the init time
    members       (n_members, n_leads, H, W) float32 mm/h, NaN where the forecast has no data

The inputs are those of the deterministic ``sprog`` baseline (``baselines.py``): rain in dB,
pySTEPS' Lucas-Kanade motion from the last three frames.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

import numpy as np

from nowcast.verify.baselines import (
    DB_BACK_THRESHOLD,
    DB_ZEROVALUE,
    _check_frames,
    _db_and_motion,
    _db_to_rain,
    import_pysteps,
)

EnsembleBaseline = Callable[..., np.ndarray]
EnsembleForecaster = Callable[[np.ndarray, int], np.ndarray]


def steps(
    frames: np.ndarray,
    n_leads: int,
    n_members: int,
    pixel_size_m: float = 1000.0,
    time_step_s: int = 300,
    seed: int = 0,
    num_workers: int = 1,
    num_motion_frames: int = 3,
    n_cascade_levels: int = 6,
) -> np.ndarray:
    """pySTEPS' STEPS (``pysteps.nowcasts.steps``) with the settings of its example.

    Nonparametric noise from the input frames, BPS motion perturbations with Bowler et al.'s
    parameters, the incremental wet-area mask and CDF matching to the last frame, 6 cascade
    levels, AR(2). Its progress printing is silenced.

    Args:
        frames: (T_in, H, W) mm/h with NaN; at least three frames.
        n_leads: number of lead times.
        n_members: ensemble size.
        pixel_size_m: grid spacing (the motion perturbations are in km/h).
        time_step_s: frame spacing.
        seed: pySTEPS' seed: the same seed gives the same members.
        num_workers: members computed in parallel (pySTEPS' dask threads).
        num_motion_frames: how many of the last frames feed the motion estimate.
        n_cascade_levels: bandpass levels of the cascade.

    Returns:
        (n_members, n_leads, H, W) float32 mm/h, NaN where the forecast has no data.
    """
    frames = _check_frames(frames, n_leads, min_frames=3)
    no_data = ~np.isfinite(frames[-3:]).all(axis=0)
    if no_data.all():
        return np.full((n_members, n_leads, *frames.shape[1:]), np.nan, np.float32)
    recent_db, metadata, velocity = _db_and_motion(frames, max(num_motion_frames, 3))
    if np.nanmax(recent_db[-3:], initial=DB_ZEROVALUE) <= DB_ZEROVALUE:  # no rain: no spectrum to draw noise from
        dry = np.where(no_data, np.nan, 0.0).astype(np.float32)
        return np.broadcast_to(dry, (n_members, n_leads, *dry.shape)).copy()
    method = import_pysteps("pysteps.nowcasts").get_method("steps")
    with contextlib.redirect_stdout(io.StringIO()):
        forecast_db = method(
            recent_db[-3:],
            velocity,
            n_leads,
            n_members,
            n_cascade_levels=n_cascade_levels,
            precip_thr=DB_BACK_THRESHOLD,
            kmperpixel=pixel_size_m / 1000.0,
            timestep=time_step_s / 60.0,
            noise_method="nonparametric",
            vel_pert_method="bps",
            mask_method="incremental",
            seed=seed,
            num_workers=num_workers,
        )
    return _db_to_rain(forecast_db, metadata)


ENSEMBLE_BASELINES: dict[str, EnsembleBaseline] = {"steps": steps}


def get_ensemble_baseline(name: str) -> EnsembleBaseline:
    """The ensemble baseline called ``name``.

    Raises:
        KeyError: for an unknown name; the message lists the available ones.
    """
    try:
        return ENSEMBLE_BASELINES[name]
    except KeyError:
        available = ", ".join(sorted(ENSEMBLE_BASELINES))
        raise KeyError(f"unknown ensemble baseline {name!r}; available: {available}") from None


def make_ensemble_forecaster(
    name: str, n_members: int, pixel_size_m: float, time_step_s: int, seed: int = 0, **options: Any
) -> EnsembleForecaster:
    """An ensemble baseline as ``f(frames, n_leads) -> (n_members, n_leads, H, W)``.

    Every call uses the next seed (``seed``, ``seed + 1``, ...): starts do not share their noise,
    and a rerun of the same evaluation draws the same members.
    """
    baseline = get_ensemble_baseline(name)
    calls = iter(range(seed, seed + 2**31))

    def forecast(frames: np.ndarray, n_leads: int) -> np.ndarray:
        return baseline(frames, n_leads, n_members, pixel_size_m, time_step_s, next(calls), **options)

    return forecast
