"""Configuration of the synthetic radar archive: size, time axis, weather and radar coverage."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from pydantic import Field, field_validator, model_validator

from nowcast.config import Section
from nowcast.synth.regimes import REGIME_NAMES


def _known_regime(name: str) -> str:
    if name not in REGIME_NAMES:
        raise ValueError(f"unknown regime {name!r}; available: {', '.join(REGIME_NAMES)}")
    return name


class RegimeSegment(Section):
    """One stretch of an archive that walks through several regimes."""

    regime: str
    hours: float = Field(gt=0)

    @field_validator("regime")
    @classmethod
    def _known(cls, value: str) -> str:
        return _known_regime(value)


class SynthConfig(Section):
    """What `nowcast synth` generates; every random choice follows from ``seed``.

    Winds are the direction the rain moves *towards*, in degrees clockwise from north
    (90 = eastward), so that they read like the displacement seen in the pictures.
    """

    # size and time axis
    n_scans: int = Field(288, ge=1, le=10_000_000)  # one day of 5-minute scans by default
    height: int = Field(256, ge=8, le=8192)  # pixels (rows, north to south)
    width: int = Field(256, ge=8, le=8192)  # pixels (columns, west to east)
    pixel_size_m: float = Field(1000.0, gt=0)
    time_step_minutes: float = Field(5.0, gt=0)
    start: str = "2024-06-01T00:00:00"  # UTC time of the first scan
    seed: int = Field(0, ge=0)
    # the weather regime (``regimes.py``): one name for the whole archive, or a list of
    # {regime, hours} segments, repeated until n_scans; the other regimes replace the rain and
    # wind speed keys below (``mixed`` keeps them), the grid, time, coverage and wind direction stay
    regime: str | list[RegimeSegment] = "mixed"
    # missing scans (files not written): n_missing, when given, wins over missing_fraction
    missing_fraction: float = Field(0.01, ge=0, le=0.5)
    n_missing: int | None = Field(None, ge=0)
    # rain: mean wet fraction (pixels >= 0.1 mm/h) and how much it wanders over hours
    wet_fraction: float = Field(0.2, gt=0, lt=1)
    wet_fraction_variability: float = Field(0.6, ge=0, le=3)  # std of the slow log-odds change
    spectral_slope: float = Field(3.3, ge=1.5, le=4.5)  # beta in P(k) ~ k^-beta of the latent field
    largest_scale_km: float = Field(200.0, gt=0)  # the spectrum flattens above this wavelength
    lifetime_minutes_100km: float = Field(600.0, gt=0)  # Lagrangian decorrelation time of 100 km features
    convective_cell_rate: float = Field(1.5, ge=0)  # new cells per hour per 10,000 km2 of raining area
    max_cell_rain_mmh: float = Field(60.0, ge=10, le=300)  # peak of the strongest cells
    # wind: a domain-uniform part drifting slowly, plus a weak smooth rotation/shear
    wind_speed_ms: float = Field(8.0, ge=0, le=60)
    wind_direction_deg: float | None = Field(None, ge=0, lt=360)  # None: drawn from the seed
    wind_direction_drift_deg: float = Field(30.0, ge=0, le=180)  # std of the slow direction change
    wind_speed_variability: float = Field(0.25, ge=0, le=1)  # std of the slow log-speed change
    wind_perturbation: float = Field(0.2, ge=0, le=1)  # rotation/shear speed relative to wind_speed_ms
    # radar coverage: pixels outside every range circle or inside a blocked sector are NaN
    n_radars: int = Field(3, ge=0, le=16)  # 0: the whole domain has data
    radar_range_km: float | None = Field(None, gt=0)  # None: chosen to cover most of the domain
    blocked_sectors: int = Field(1, ge=0, le=16)
    # where the grid lies (Lambert azimuthal equal-area centred here)
    center_lat: float = Field(52.0, ge=-89.0, le=89.0)
    center_lon: float = Field(5.0, ge=-180.0, le=180.0)

    @field_validator("start", mode="before")
    @classmethod
    def _iso_time(cls, value):
        # YAML turns an unquoted timestamp into a datetime: accept it, store naive UTC ISO text.
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                value = value.astimezone(UTC).replace(tzinfo=None)
            value = value.isoformat()
        if not isinstance(value, str):
            raise ValueError("start must be an ISO time such as 2024-06-01T00:00:00")
        text = value.strip().removesuffix("Z")
        try:
            parsed = np.datetime64(text, "s")
        except ValueError:
            raise ValueError(f"start {value!r} is not an ISO time such as 2024-06-01T00:00:00") from None
        if np.isnat(parsed):
            raise ValueError("start must be a time, not NaT")
        return str(parsed)

    @field_validator("regime")
    @classmethod
    def _regime(cls, value):
        if isinstance(value, str):
            return _known_regime(value)
        if not value:
            raise ValueError("regime: give one regime name or at least one {regime, hours} segment")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SynthConfig:
        seconds = self.time_step_minutes * 60
        if abs(seconds - round(seconds)) > 1e-6:
            raise ValueError(f"time_step_minutes {self.time_step_minutes} is not a whole number of seconds")
        if not isinstance(self.regime, str):
            for i, segment in enumerate(self.regime):
                scans = segment.hours * 60 / self.time_step_minutes
                if abs(scans - round(scans)) > 1e-6 or round(scans) < 1:
                    raise ValueError(
                        f"regime[{i}].hours {segment.hours} is not a whole number (>= 1) of "
                        f"{self.time_step_minutes}-minute scans"
                    )
        allowed = max(self.n_scans - 2, 0)  # the first and last scans are always written
        if self.n_missing is not None and self.n_missing > allowed:
            raise ValueError(
                f"n_missing {self.n_missing} is more than the {allowed} scans that may be "
                f"missing (all but the first and last of n_scans={self.n_scans})"
            )
        return self

    @property
    def time_step_s(self) -> int:
        return int(round(self.time_step_minutes * 60))

    @property
    def start_time(self) -> np.datetime64:
        return np.datetime64(self.start, "s")
