"""Baseline nowcasts that any model must beat: persistence, optical-flow extrapolation and S-PROG.

``nowcast-sprog`` is nowcast's own S-PROG (torch, nothing learned): what a trained checkpoint
must beat to justify its training, scored cheaply and paired with it start by start.

Contract of every baseline (one call = one forecast)::

    baseline(frames, n_leads, pixel_size_m, time_step_s) -> forecast

    frames        (T_in, H, W) float mm/h, NaN = no data, oldest first, last = the init time
    n_leads       number of future frames, one per time step
    pixel_size_m  grid spacing in metres
    time_step_s   spacing of the frames in seconds
    forecast      (n_leads, H, W) float32 mm/h, NaN where the forecast has no data

Motion and advection come from pysteps (Lucas-Kanade and semi-Lagrangian): no hand-written
optical flow here. pysteps is imported on first use, with its import banner silenced.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import logging
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from nowcast.errors import ConfigError

log = logging.getLogger(__name__)

Baseline = Callable[[np.ndarray, int, float, int], np.ndarray]
Forecaster = Callable[[np.ndarray, int], np.ndarray]

# pysteps' usual choices for rain rates in dB (its nowcasting examples use the same)
DB_THRESHOLD_MMH = 0.1  # rates below this are "no rain" in dB space
DB_ZEROVALUE = -15.0  # the dB value given to no rain
DB_BACK_THRESHOLD = -10.0  # on the way back, dB below this (0.1 mm/h) becomes 0 mm/h


def import_pysteps(module: str) -> Any:
    """Import a pysteps module without its "configuration file found" banner on stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        return importlib.import_module(module)


def _lucas_kanade(motion: Any, frames_db: np.ndarray) -> np.ndarray:
    """pysteps' dense Lucas-Kanade: (2, H, W) motion (u, v) in pixels per time step.

    With very few tracked features, pysteps' outlier check takes the covariance of one or two
    vectors and numpy warns; no vector is dropped then and the motion is still right, so those
    warnings (and only those) are silenced here.
    """
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.filterwarnings("ignore", message="Degrees of freedom <= 0", category=RuntimeWarning)
        return motion.get_method("LK")(frames_db)


def _check_frames(frames: np.ndarray, n_leads: int, min_frames: int = 1) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise ValueError(f"frames must be (T_in, H, W), got shape {frames.shape}")
    if frames.shape[0] < min_frames:
        raise ValueError(f"this baseline needs at least {min_frames} input frames, got {frames.shape[0]}")
    if n_leads < 1:
        raise ValueError(f"n_leads must be at least 1, got {n_leads}")
    return frames


def persistence(frames: np.ndarray, n_leads: int, pixel_size_m: float = 1000.0, time_step_s: int = 300) -> np.ndarray:
    """The last observed frame, repeated for every lead (Eulerian persistence).

    Args:
        frames: (T_in, H, W) mm/h with NaN.
        n_leads: number of lead times.
        pixel_size_m: unused (part of the baseline contract).
        time_step_s: unused (part of the baseline contract).

    Returns:
        (n_leads, H, W) float32 mm/h.
    """
    frames = _check_frames(frames, n_leads)
    last = frames[-1].astype(np.float32)
    return np.repeat(last[None], n_leads, axis=0)


def extrapolation(
    frames: np.ndarray, n_leads: int, pixel_size_m: float = 1000.0, time_step_s: int = 300, num_motion_frames: int = 3
) -> np.ndarray:
    """Lagrangian persistence: advect the last frame along the Lucas-Kanade motion field.

    Rain rates go to dB (pysteps ``dB_transform``, threshold 0.1 mm/h, zero value -15 dB);
    pysteps' dense Lucas-Kanade estimates the motion from the last ``num_motion_frames`` frames
    (it masks NaN itself: no features are tracked in no-data areas); the semi-Lagrangian scheme
    advects the last frame, with NaN where the source lies outside the domain or in no data;
    the result goes back to mm/h (below 0.1 mm/h becomes 0).

    Args:
        frames: (T_in, H, W) mm/h with NaN; at least two frames.
        n_leads: number of lead times.
        pixel_size_m: unused: motion is in pixels per time step.
        time_step_s: unused for the same reason.
        num_motion_frames: how many of the last frames feed the motion estimate.

    Returns:
        (n_leads, H, W) float32 mm/h, NaN where the forecast has no data.
    """
    frames = _check_frames(frames, n_leads, min_frames=2)
    if not np.isfinite(frames[-1]).any():
        return np.full((n_leads, *frames.shape[1:]), np.nan, np.float32)
    recent_db, metadata, velocity = _db_and_motion(frames, num_motion_frames)
    advect = import_pysteps("pysteps.extrapolation").get_method("semilagrangian")
    forecast_db = advect(recent_db[-1], velocity, n_leads, outval=np.nan, allow_nonfinite_values=True)
    return _db_to_rain(forecast_db, metadata)


def sprog(
    frames: np.ndarray,
    n_leads: int,
    pixel_size_m: float = 1000.0,
    time_step_s: int = 300,
    num_motion_frames: int = 3,
    n_cascade_levels: int = 6,
) -> np.ndarray:
    """pySTEPS' S-PROG (``pysteps.nowcasts.sprog``), with its examples' settings.

    The last three frames in dB (as ``extrapolation``), Lucas-Kanade motion from the last
    ``num_motion_frames``, ``n_cascade_levels`` cascade levels, AR(2) per level, the percentile
    mask and CDF match to the last frame. Its progress printing is silenced.

    Args:
        frames: (T_in, H, W) mm/h with NaN; at least three frames.
        n_leads: number of lead times.
        pixel_size_m: unused: motion is in pixels per time step.
        time_step_s: unused for the same reason (the AR model counts input steps).
        num_motion_frames: how many of the last frames feed the motion estimate.
        n_cascade_levels: bandpass levels of the cascade (pySTEPS' default, 6).

    Returns:
        (n_leads, H, W) float32 mm/h, NaN where the forecast has no data.
    """
    frames = _check_frames(frames, n_leads, min_frames=3)
    if not np.isfinite(frames[-3:]).all(axis=0).any():
        return np.full((n_leads, *frames.shape[1:]), np.nan, np.float32)
    recent_db, metadata, velocity = _db_and_motion(frames, max(num_motion_frames, 3))
    method = import_pysteps("pysteps.nowcasts").get_method("sprog")
    with contextlib.redirect_stdout(io.StringIO()):
        forecast_db = method(
            recent_db[-3:], velocity, n_leads, n_cascade_levels=n_cascade_levels, precip_thr=DB_BACK_THRESHOLD
        )
    return _db_to_rain(forecast_db, metadata)


@functools.lru_cache(maxsize=4)
def _nowcast_sprog_model(num_input_frames: int, n_leads: int) -> Any:
    from nowcast.predict.loading import sprog_model  # torch: imported only when this baseline is used

    return sprog_model(num_input_frames=num_input_frames, num_output_frames=n_leads).model


def nowcast_sprog(frames: np.ndarray, n_leads: int, pixel_size_m: float = 1000.0, time_step_s: int = 300) -> np.ndarray:
    """nowcast's torch S-PROG (``--method sprog``) on all the given frames (at least three).

    Returns:
        (n_leads, H, W) float32 mm/h, NaN where the forecast has no data.
    """
    from nowcast.predict.forecast import run_model

    frames = _check_frames(frames, n_leads, min_frames=3)
    if not np.isfinite(frames[-1]).any():
        return np.full((n_leads, *frames.shape[1:]), np.nan, np.float32)
    model = _nowcast_sprog_model(frames.shape[0], n_leads)
    return run_model(model, frames, time_step_s=time_step_s, pixel_size_m=pixel_size_m)


def _db_and_motion(frames: np.ndarray, num_motion_frames: int) -> tuple[np.ndarray, dict, np.ndarray]:
    """The last ``num_motion_frames`` frames in dB, their metadata, and their Lucas-Kanade motion (2, H, W)."""
    if num_motion_frames < 2:
        raise ValueError(f"num_motion_frames must be at least 2, got {num_motion_frames}")
    transformation = import_pysteps("pysteps.utils.transformation")
    recent = np.array(frames[-num_motion_frames:], dtype=np.float64)
    recent_db, metadata = transformation.dB_transform(recent, threshold=DB_THRESHOLD_MMH, zerovalue=DB_ZEROVALUE)
    # all-dry (or all no-data) inputs have nothing to track; LK would return zero motion anyway
    if np.nanmax(recent_db, initial=DB_ZEROVALUE) > DB_ZEROVALUE:
        velocity = _lucas_kanade(import_pysteps("pysteps.motion"), recent_db)
    else:
        velocity = np.zeros((2, *frames.shape[1:]))
    return recent_db, metadata, velocity


def _db_to_rain(forecast_db: np.ndarray, metadata: dict) -> np.ndarray:
    """dB back to mm/h (below 0.1 mm/h: 0), float32."""
    transformation = import_pysteps("pysteps.utils.transformation")
    forecast, _ = transformation.dB_transform(forecast_db, metadata, threshold=DB_BACK_THRESHOLD, inverse=True)
    return np.asarray(forecast, dtype=np.float32)


BASELINES: dict[str, Baseline] = {
    "persistence": persistence,
    "extrapolation": extrapolation,
    "sprog": sprog,
    "nowcast-sprog": nowcast_sprog,
}


def get_baseline(name: str) -> Baseline:
    """The baseline called ``name``.

    Raises:
        ConfigError: for an unknown name; the message lists the available ones.
    """
    try:
        return BASELINES[name]
    except KeyError:
        raise ConfigError(f"unknown baseline {name!r}; available: {', '.join(sorted(BASELINES))}") from None


def make_forecaster(name: str, pixel_size_m: float, time_step_s: int, **options: Any) -> Forecaster:
    """A baseline bound to a grid and time step: ``f(frames, n_leads) -> forecast``, as ``evaluate`` wants.

    Args:
        name: a key of ``BASELINES``.
        pixel_size_m: grid spacing in metres.
        time_step_s: frame spacing in seconds.
        **options: extra keyword arguments of that baseline (e.g. ``num_motion_frames``).
    """
    baseline: Callable[..., np.ndarray] = get_baseline(name)  # by keyword: the contract names its arguments
    return functools.partial(baseline, pixel_size_m=pixel_size_m, time_step_s=time_step_s, **options)
