"""The slowly varying weather of a synthetic archive: one value per scan, no fields.

Wind (domain-uniform part), target wet fraction and intensity gain wander as
Ornstein-Uhlenbeck processes with time scales of hours, so rain areas grow and decay and the
motion turns slowly, as in real sequences. Each series draws from its own random stream so
that a longer archive starts exactly like a shorter one with the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nowcast.synth.config import SynthConfig

# Time scales (hours) of the slow changes: a few hours, about the life of a rain system.
WIND_SPEED_HOURS = 6.0
WIND_DIRECTION_HOURS = 12.0
WET_FRACTION_HOURS = 6.0
INTENSITY_HOURS = 3.0
INTENSITY_VARIABILITY = 0.25  # std of the log intensity gain
SWIRL_PHASE_RAD_PER_DAY = 1.0  # std of the random walk of the rotation pattern's phase
WET_FRACTION_RANGE = (0.01, 0.95)


@dataclass(frozen=True)
class Weather:
    """Per-scan series, index i = scan i."""

    wind_ms: np.ndarray  # (n, 2) uniform wind (u eastward, v northward), m/s
    wet_fraction: np.ndarray  # (n,) target fraction of wet pixels
    intensity_gain: np.ndarray  # (n,) multiplies the log-intensity of wet pixels
    swirl_phase: np.ndarray  # (n, 2) phases (rad) of the rotation/shear pattern


def ou_series(rng: np.random.Generator, n: int, step_hours: float, tau_hours: float, std: float) -> np.ndarray:
    """A stationary Ornstein-Uhlenbeck (AR(1)) series of length n with standard deviation std."""
    r = np.exp(-step_hours / tau_hours)
    draws = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = std * draws[0]
    innovation = std * np.sqrt(1 - r * r) * draws
    for i in range(1, n):
        x[i] = r * x[i - 1] + innovation[i]
    return x


def draw_weather(config: SynthConfig, seed: np.random.SeedSequence) -> Weather:
    """Draw every per-scan series of the archive from ``seed`` (spawned into one stream each).

    Args:
        config: the archive configuration.
        seed: the weather's seed sequence.

    Returns:
        The Weather series, one row per scan.
    """
    n, hours = config.n_scans, config.time_step_minutes / 60.0
    speed_rng, direction_rng, wet_rng, gain_rng, swirl_rng = (np.random.default_rng(s) for s in seed.spawn(5))

    direction0 = config.wind_direction_deg
    first = direction_rng.uniform(0.0, 360.0)  # drawn always, so the stream does not depend on the config
    if direction0 is None:
        direction0 = first
    direction = np.deg2rad(direction0 + ou_series(direction_rng, n, hours, WIND_DIRECTION_HOURS,
                                                  config.wind_direction_drift_deg))
    speed = config.wind_speed_ms * np.exp(ou_series(speed_rng, n, hours, WIND_SPEED_HOURS,
                                                    config.wind_speed_variability))
    wind = np.stack([speed * np.sin(direction), speed * np.cos(direction)], axis=1)

    logit = np.log(config.wet_fraction / (1 - config.wet_fraction))
    logit = logit + ou_series(wet_rng, n, hours, WET_FRACTION_HOURS, config.wet_fraction_variability)
    wet = np.clip(1 / (1 + np.exp(-logit)), *WET_FRACTION_RANGE)

    gain = np.exp(ou_series(gain_rng, n, hours, INTENSITY_HOURS, INTENSITY_VARIABILITY))

    phase0 = swirl_rng.uniform(0, 2 * np.pi, 2)
    steps = swirl_rng.standard_normal((n, 2)) * SWIRL_PHASE_RAD_PER_DAY * np.sqrt(hours / 24.0)
    swirl = phase0 + np.cumsum(steps, axis=0)
    return Weather(wind_ms=wind, wet_fraction=wet, intensity_gain=gain, swirl_phase=swirl)
