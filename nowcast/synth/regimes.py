"""Weather regimes: what kind of rain a stretch of the synthetic archive shows.

A regime is one set of generator parameters (``Regime``). ``mixed``, the default, is the
archive as configured by the SynthConfig keys, exactly as before regimes existed. Each of the
others fixes the rain, cells, lines and wind speed that make it what it is, and keeps the
config's grid, time axis, radar coverage, wind direction (and its drift) and
``max_cell_rain_mmh``:

- ``mixed``: mostly dry, lognormal-like rain, a few heavy cells, 8 m/s (the config's keys);
- ``convective_showers``: many small (2-8 km) cells living 10-40 min, scattered, cores above
  10 mm/h in weak rain (cells born anywhere, a weak background);
- ``fast_motion``: rain moving at 60-120 km/h with rotation/shear of the flow (fast wind, a
  stronger swirl, quicker evolution);
- ``lines``: squall/frontal lines whose segments grow and decay along their length, crossing
  the domain over hours (``lines.py``, over a little weak rain);
- ``stratiform``: wide, smooth, slowly evolving rain of 1-5 mm/h with embedded bands (a steep
  spectrum, a ceiling on the intensity, wide weak bands);
- ``dry``: no rain; a few fixed pixels of clutter below 0.1 mm/h.

The config's ``regime`` is one name (the whole archive), or a list of segments (regime and
hours) that repeats until ``n_scans``. At each segment's start the new regime grows in while
the old one fades out, over ``TRANSITION_MINUTES``; from then on only the new one is seen.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from nowcast.synth.cells import CellParams
from nowcast.synth.lines import LineParams

if TYPE_CHECKING:
    from nowcast.synth.config import SynthConfig

TRANSITION_MINUTES = 30.0
# The latent rain's intensity: rain = 0.1 mm/h * exp(scale * gain * excess ** exponent) (``fields.py``).
INTENSITY_SCALE = 2.4
INTENSITY_EXPONENT = 0.7
INTENSITY_VARIABILITY = 0.25  # std of the slow log-intensity gain


@dataclass(frozen=True)
class Regime:
    """Every parameter the generator takes from the regime (the rest comes from the config)."""

    name: str
    # the latent rain (``latent.py``); rain=False: none at all
    rain: bool
    wet_fraction: float
    wet_fraction_variability: float
    spectral_slope: float
    lifetime_minutes_100km: float
    intensity_scale: float = INTENSITY_SCALE
    intensity_exponent: float = INTENSITY_EXPONENT
    intensity_variability: float = INTENSITY_VARIABILITY
    max_latent_rain_mmh: float | None = None  # a soft ceiling on the latent rain (stratiform)
    # wind (``weather.py``)
    wind_speed_ms: float = 8.0
    wind_speed_variability: float = 0.25
    wind_speed_range_ms: tuple[float, float] | None = None  # the slow speed changes are clipped to this
    wind_direction_deg: float | None = None
    wind_direction_drift_deg: float = 30.0
    wind_perturbation: float = 0.2
    # cells (``cells.py``) and lines or bands (``lines.py``)
    cell_rate: float = 1.5  # new cells per hour per 10,000 km2 (of raining area unless cells.anywhere)
    cells: CellParams = CellParams()
    max_cell_rain_mmh: float = 60.0
    lines: LineParams | None = None
    clutter_per_10k_km2: float = 0.0  # fixed pixels of sub-threshold clutter (dry)


SHOWER_CELLS = CellParams(
    min_peak_mmh=15.0,
    sigma_km=(0.4, 1.6),  # Gaussian cores of 15-60 mm/h: 2-8 km across at 1 mm/h
    min_sigma_px=0.5,
    life_minutes=(10.0, 40.0),
    aspect=(1.0, 1.5),
    profile=1.0,
    anywhere=True,
)
SQUALL_LINES = LineParams()
STRATIFORM_BANDS = LineParams(
    mean_count=2.5,
    length_km=(150.0, 400.0),
    core_sigma_km=(3.0, 7.0),
    peak_mmh=(0.6, 1.2),  # embedded: the rain under the band's axis is multiplied by 1 + this
    trailing_mmh=(0.0, 0.0),
    life_minutes=(360.0, 720.0),
    segment_minutes=180.0,
    shortest_km=40.0,  # smooth along their length
    continuity=0.9,
    across_wind_deg=90.0,
    bend=0.1,
    embedded=True,
)

# What each regime changes from the config's (``mixed``) parameters.
_OVERRIDES: dict[str, dict] = {
    "mixed": {},
    "convective_showers": {
        "wet_fraction": 0.15,  # weak rain (mostly under 1 mm/h) around the cells
        "wet_fraction_variability": 0.3,
        "intensity_scale": 1.1,
        "lifetime_minutes_100km": 300.0,
        "wind_speed_ms": 5.0,
        "wind_speed_variability": 0.3,
        "wind_perturbation": 0.2,
        "cell_rate": 20.0,
        "cells": SHOWER_CELLS,
    },
    "fast_motion": {
        "wet_fraction": 0.25,
        "wet_fraction_variability": 0.4,
        "lifetime_minutes_100km": 300.0,  # fast systems change quickly too, and wrap around sooner
        "wind_speed_ms": 25.0,
        "wind_speed_variability": 0.15,
        "wind_speed_range_ms": (21.0, 29.0),  # 76-104 km/h, and the swirl (up to 14 km/h) keeps it within 60-120
        "wind_perturbation": 0.16,
    },
    "lines": {
        "wet_fraction": 0.05,  # a little weak rain about, the lines carry the rest
        "wet_fraction_variability": 0.3,
        "intensity_scale": 1.4,
        "wind_speed_ms": 12.0,
        "wind_speed_variability": 0.2,
        "wind_perturbation": 0.1,
        "cell_rate": 0.0,
        "lines": SQUALL_LINES,
    },
    "stratiform": {
        "wet_fraction": 0.75,
        "wet_fraction_variability": 0.25,
        "spectral_slope": 4.3,  # smoother than convective rain
        "lifetime_minutes_100km": 1500.0,  # evolves slowly
        "intensity_scale": 3.8,
        "intensity_exponent": 0.5,
        "intensity_variability": 0.1,
        "max_latent_rain_mmh": 4.0,
        "wind_speed_ms": 10.0,
        "wind_perturbation": 0.1,
        "cell_rate": 0.0,
        "lines": STRATIFORM_BANDS,
    },
    "dry": {"rain": False, "cell_rate": 0.0, "clutter_per_10k_km2": 3.0},
}
REGIME_NAMES = tuple(_OVERRIDES)


def get_regime(name: str, config: SynthConfig) -> Regime:
    """The generator parameters of regime ``name`` for this archive.

    Raises:
        ValueError: ``name`` is not a regime.
    """
    if name not in _OVERRIDES:
        raise ValueError(f"unknown regime {name!r}; available: {', '.join(REGIME_NAMES)}")
    mixed = Regime(
        name="mixed",
        rain=True,
        wet_fraction=config.wet_fraction,
        wet_fraction_variability=config.wet_fraction_variability,
        spectral_slope=config.spectral_slope,
        lifetime_minutes_100km=config.lifetime_minutes_100km,
        wind_speed_ms=config.wind_speed_ms,
        wind_speed_variability=config.wind_speed_variability,
        wind_direction_deg=config.wind_direction_deg,
        wind_direction_drift_deg=config.wind_direction_drift_deg,
        wind_perturbation=config.wind_perturbation,
        cell_rate=config.convective_cell_rate,
        max_cell_rain_mmh=config.max_cell_rain_mmh,
    )
    return replace(mixed, name=name, **_OVERRIDES[name])


@dataclass(frozen=True)
class Segment:
    """One stretch of the archive: scans ``start`` to ``stop - 1`` belong to ``regime``."""

    index: int  # 0, 1, ... in time order, counting repeats of the list
    regime: str
    start: int
    stop: int  # may lie beyond the archive's end


def plan_segments(config: SynthConfig) -> list[Segment]:
    """The segments that cover the archive's scans, in order (one for a single regime name)."""
    if isinstance(config.regime, str):
        return [Segment(0, config.regime, 0, config.n_scans)]
    segments: list[Segment] = []
    start = 0
    while start < config.n_scans:
        for item in config.regime:
            stop = start + int(round(item.hours * 60 / config.time_step_minutes))
            segments.append(Segment(len(segments), item.regime, start, stop))
            start = stop
            if start >= config.n_scans:
                break
    return segments


def transition_scans(config: SynthConfig) -> int:
    """How many scans a change of regime takes (at least one)."""
    return max(1, int(round(TRANSITION_MINUTES / config.time_step_minutes)))


def weight(segment: Segment, scan: int, transition: int) -> float:
    """How strongly ``segment``'s rain shows at ``scan``: grows in from its start, fades out after its stop.

    The first segment starts at full strength; 0 outside its run.
    """
    grow = 1.0 if segment.index == 0 else min(1.0, (scan - segment.start + 1) / (transition + 1))
    fade = 1.0 if scan < segment.stop else max(0.0, 1.0 - (scan - segment.stop + 1) / (transition + 1))
    return grow * fade if scan >= segment.start else 0.0
