"""The slowly varying weather of a synthetic archive: one value per scan, no fields.

Wind (domain-uniform part), target wet fraction and intensity gain wander as
smooth random processes with time scales of hours, so rain areas grow and decay and the
motion turns slowly, as in real sequences. Each series draws from its own random stream so
that a longer archive starts exactly like a shorter one with the same seed. The parameters come
from the regime (``regimes.py``): the config's own for ``mixed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from nowcast.synth.regimes import Regime

# Time scales (hours) of the slow changes: a few hours, about the life of a rain system.
WIND_SPEED_HOURS = 6.0
WIND_DIRECTION_HOURS = 12.0
WET_FRACTION_HOURS = 6.0
INTENSITY_HOURS = 3.0
SWIRL_HOURS = 24.0  # the rotation/shear pattern shifts by about its size in a day
WET_FRACTION_RANGE = (0.01, 0.95)


@dataclass(frozen=True)
class Weather:
    """Per-scan series, index i = scan i."""

    wind_ms: np.ndarray  # (n, 2) uniform wind (u eastward, v northward), m/s
    wet_fraction: np.ndarray  # (n,) target fraction of wet pixels
    intensity_gain: np.ndarray  # (n,) multiplies the log-intensity of wet pixels
    swirl_phase: np.ndarray  # (n, 2) phases (rad) of the rotation/shear pattern


def smooth_series(rng: np.random.Generator, n: int, step_hours: float, tau_hours: float, std: float) -> np.ndarray:
    """A stationary, smooth random series of length n with standard deviation std.

    White noise through two AR(1) filters of time scale tau (a second-order process): unlike a
    plain Ornstein-Uhlenbeck process it has no scan-to-scan jitter, so winds turn smoothly. A
    burn-in of three time scales is discarded so the series starts stationary.
    """
    r = np.exp(-step_hours / tau_hours)
    burn_in = int(np.ceil(3 * tau_hours / step_hours))
    noise = rng.standard_normal(burn_in + n) * std * np.sqrt((1 - r * r) ** 3 / (1 + r * r))
    once = lfilter([1.0], [1.0, -r], noise)
    return lfilter([1.0], [1.0, -r], once)[burn_in:]


def draw_weather(regime: Regime, n: int, step_minutes: float, seed: np.random.SeedSequence) -> Weather:
    """Draw every per-scan series of a run of ``n`` scans from ``seed`` (spawned into one stream each).

    Args:
        regime: the wind, wet-fraction and intensity parameters.
        n: number of scans.
        step_minutes: time between scans.
        seed: the weather's seed sequence.

    Returns:
        The Weather series, one row per scan.
    """
    hours = step_minutes / 60.0
    speed_rng, direction_rng, wet_rng, gain_rng, swirl_rng, swirl_rng2 = (
        np.random.default_rng(s) for s in seed.spawn(6)
    )

    direction0 = regime.wind_direction_deg
    first = direction_rng.uniform(0.0, 360.0)  # drawn always, so the stream does not depend on the config
    if direction0 is None:
        direction0 = first
    direction = np.deg2rad(
        direction0 + smooth_series(direction_rng, n, hours, WIND_DIRECTION_HOURS, regime.wind_direction_drift_deg)
    )
    speed = regime.wind_speed_ms * np.exp(
        smooth_series(speed_rng, n, hours, WIND_SPEED_HOURS, regime.wind_speed_variability)
    )
    if regime.wind_speed_range_ms is not None:
        speed = np.clip(speed, *regime.wind_speed_range_ms)
    wind = np.stack([speed * np.sin(direction), speed * np.cos(direction)], axis=1)

    logit = np.log(regime.wet_fraction / (1 - regime.wet_fraction))
    logit = logit + smooth_series(wet_rng, n, hours, WET_FRACTION_HOURS, regime.wet_fraction_variability)
    wet = np.clip(1 / (1 + np.exp(-logit)), *WET_FRACTION_RANGE)

    gain = np.exp(smooth_series(gain_rng, n, hours, INTENSITY_HOURS, regime.intensity_variability))

    phase0 = swirl_rng.uniform(0, 2 * np.pi, 2)
    swirl = phase0 + np.stack(
        [smooth_series(rng, n, hours, SWIRL_HOURS, np.pi) for rng in (swirl_rng, swirl_rng2)], axis=1
    )
    return Weather(wind_ms=wind, wet_fraction=wet, intensity_gain=gain, swirl_phase=swirl)
