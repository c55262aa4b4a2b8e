"""The slowly varying weather of a synthetic archive: one value per scan, no fields.

Wind (domain-uniform part), target wet fraction and intensity gain wander as
smooth random processes with time scales of hours, so rain areas grow and decay and the
motion turns slowly, as in real sequences. Each series draws from its own random stream so
that a longer archive starts exactly like a shorter one with the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from nowcast.synth.config import SynthConfig

# Time scales (hours) of the slow changes: a few hours, about the life of a rain system.
WIND_SPEED_HOURS = 6.0
WIND_DIRECTION_HOURS = 12.0
WET_FRACTION_HOURS = 6.0
INTENSITY_HOURS = 3.0
INTENSITY_VARIABILITY = 0.25  # std of the log intensity gain
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


def draw_weather(config: SynthConfig, seed: np.random.SeedSequence) -> Weather:
    """Draw every per-scan series of the archive from ``seed`` (spawned into one stream each).

    Args:
        config: the archive configuration.
        seed: the weather's seed sequence.

    Returns:
        The Weather series, one row per scan.
    """
    n, hours = config.n_scans, config.time_step_minutes / 60.0
    speed_rng, direction_rng, wet_rng, gain_rng, swirl_rng, swirl_rng2 = (
        np.random.default_rng(s) for s in seed.spawn(6)
    )

    direction0 = config.wind_direction_deg
    first = direction_rng.uniform(0.0, 360.0)  # drawn always, so the stream does not depend on the config
    if direction0 is None:
        direction0 = first
    direction = np.deg2rad(
        direction0 + smooth_series(direction_rng, n, hours, WIND_DIRECTION_HOURS, config.wind_direction_drift_deg)
    )
    speed = config.wind_speed_ms * np.exp(
        smooth_series(speed_rng, n, hours, WIND_SPEED_HOURS, config.wind_speed_variability)
    )
    wind = np.stack([speed * np.sin(direction), speed * np.cos(direction)], axis=1)

    logit = np.log(config.wet_fraction / (1 - config.wet_fraction))
    logit = logit + smooth_series(wet_rng, n, hours, WET_FRACTION_HOURS, config.wet_fraction_variability)
    wet = np.clip(1 / (1 + np.exp(-logit)), *WET_FRACTION_RANGE)

    gain = np.exp(smooth_series(gain_rng, n, hours, INTENSITY_HOURS, INTENSITY_VARIABILITY))

    phase0 = swirl_rng.uniform(0, 2 * np.pi, 2)
    swirl = phase0 + np.stack(
        [smooth_series(rng, n, hours, SWIRL_HOURS, np.pi) for rng in (swirl_rng, swirl_rng2)], axis=1
    )
    return Weather(wind_ms=wind, wet_fraction=wet, intensity_gain=gain, swirl_phase=swirl)
