"""Rain fields of the synthetic archive, one per scan, generated in memory.

Each scan: the latent field (``latent.py``) is moved by the wind and evolved; the pixels above
the scan's wet-fraction quantile rain, with a log-intensity growing with the height above that
threshold (median ~0.4 mm/h, 99th percentile ~5 mm/h on wet pixels, as in 5-minute radar
composites); lines (``lines.py``) and convective cells (``cells.py``) add the heavy cores;
values are rounded to 0.01 mm/h, below 0.1 mm/h set dry, and the no-data mask set to NaN. The
regime (``regimes.py``) sets the parameters of all this; an archive of several regimes runs
one generator per segment and cross-fades from one to the next.

Random streams (all spawned from ``seed``, in this order): weather, latent field, cells,
coverage, missing scans; then lines (5) and clutter (6) of a single regime, and one stream per
segment of a regime list (``SEGMENT_STREAMS`` + its index). So changing, say, the missing
fraction leaves the fields unchanged, and a longer archive starts exactly like a shorter one.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from nowcast.synth.cells import ConvectiveCells
from nowcast.synth.config import SynthConfig
from nowcast.synth.coverage import missing_indices, nodata_mask
from nowcast.synth.latent import LatentField, padded_shape
from nowcast.synth.lines import Lines
from nowcast.synth.regimes import (
    INTENSITY_EXPONENT,
    INTENSITY_SCALE,
    Regime,
    Segment,
    get_regime,
    plan_segments,
    transition_scans,
    weight,
)
from nowcast.synth.weather import Weather, draw_weather

MIN_RAIN_MMH = 0.1  # the lowest rate a radar reports as rain
MAX_RAIN_MMH = 300.0
# Wet-pixel intensity: rain = MIN_RAIN * exp(SCALE * gain * d ** EXPONENT), d = latent - threshold.
# Fitted (regimes.INTENSITY_SCALE, INTENSITY_EXPONENT) to the wet-pixel percentiles of 5-minute
# radar composites (p10 ~0.12, median ~0.4, p90 ~1.5, p99 ~5 mm/h); the concave power keeps the
# mass near the threshold without a spike.
QUANTILE_SAMPLES = 65_536  # the wet threshold is estimated on at most this many pixels


CLUTTER_MMH = (0.02, 0.09)  # sub-threshold clutter of the dry regime
CLUTTER_ON = 0.5  # chance that a clutter pixel shows in a scan
SEGMENT_STREAMS = 100


def _streams(seed: int) -> list[np.random.SeedSequence]:
    return np.random.SeedSequence(seed).spawn(5)  # weather, latent, cells, coverage, missing


def _run_seeds(config: SynthConfig, segment: Segment) -> list[np.random.SeedSequence]:
    """Weather, latent, cells, lines and clutter streams of one segment's generator."""
    if isinstance(config.regime, str):  # the archive's own streams, as before regimes existed
        weather, latent, cells = _streams(config.seed)[:3]
        return [weather, latent, cells, *(np.random.SeedSequence(config.seed, spawn_key=(k,)) for k in (5, 6))]
    return np.random.SeedSequence(config.seed, spawn_key=(SEGMENT_STREAMS + segment.index,)).spawn(5)


def _run_length(config: SynthConfig, segment: Segment) -> int:
    """Scans a segment's generator runs for: its own, then its fade-out (not cut at the archive's end)."""
    if isinstance(config.regime, str):
        return config.n_scans
    return segment.stop - segment.start + transition_scans(config)


def scan_times(config: SynthConfig) -> np.ndarray:
    """Every scan time of the archive, written or missing: datetime64[s], (n_scans,)."""
    return config.start_time + np.arange(config.n_scans) * np.timedelta64(config.time_step_s, "s")


def missing_times(config: SynthConfig) -> set[np.datetime64]:
    """The scan times whose files ``write_archive`` leaves out (``generate_fields`` still yields them)."""
    index = missing_indices(config, np.random.default_rng(_streams(config.seed)[4]))
    return {np.datetime64(t, "s") for t in scan_times(config)[index]}


def wind_series(config: SynthConfig) -> np.ndarray:
    """The domain-uniform wind (u eastward, v northward) in m/s that moves the rain into each scan: (n_scans, 2).

    Where regimes change, the wind of the regime whose segment holds the scan.
    """
    parts = []
    for segment in plan_segments(config):
        regime = get_regime(segment.regime, config)
        seed = _run_seeds(config, segment)[0]
        wind = draw_weather(regime, _run_length(config, segment), config.time_step_minutes, seed).wind_ms
        parts.append(wind[: min(segment.stop, config.n_scans) - segment.start])
    return np.concatenate(parts)


def regime_series(config: SynthConfig) -> np.ndarray:
    """The regime whose segment holds each scan: (n_scans,) str."""
    names = np.empty(config.n_scans, dtype=object)
    for segment in plan_segments(config):
        names[segment.start : segment.stop] = segment.regime
    return names.astype(str)


def nodata(config: SynthConfig) -> np.ndarray:
    """The no-data mask (height, width), True = NaN in every scan."""
    return nodata_mask(config, np.random.default_rng(_streams(config.seed)[3]))


class _Swirl:
    """A weak, smooth, divergence-free rotation/shear on the periodic working domain.

    Stream function psi = S sin(2 pi c / Px + a) sin(2 pi r / Py + b): one pair of counter-rotating
    eddies across the domain, whose phases (a, b) drift slowly with the weather.
    """

    def __init__(self, shape: tuple[int, int], max_step_px: float) -> None:
        self.shape = shape
        ny, nx = shape
        s = max_step_px / (2 * np.pi / min(ny, nx))  # so the largest displacement is max_step_px
        self._row_amp, self._col_amp = -s * 2 * np.pi / nx, s * 2 * np.pi / ny
        self._r = 2 * np.pi * np.arange(ny) / ny
        self._c = 2 * np.pi * np.arange(nx) / nx

    def field(self, phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b = phase
        drow = self._row_amp * np.outer(np.sin(self._r + b), np.cos(self._c + a))
        dcol = self._col_amp * np.outer(np.cos(self._r + b), np.sin(self._c + a))
        return drow.astype(np.float32), dcol.astype(np.float32)

    def at(self, row: float, col: float, phase: np.ndarray) -> tuple[float, float]:
        a, b = phase
        r, c = 2 * np.pi * row / self.shape[0] + b, 2 * np.pi * col / self.shape[1] + a
        return self._row_amp * np.sin(r) * np.cos(c), self._col_amp * np.cos(r) * np.sin(c)


def rain_from_latent(latent: np.ndarray, threshold: float, gain: float, regime: Regime | None = None) -> np.ndarray:
    """Wet where latent > threshold, with intensity rising with the excess; float32 mm/h.

    The regime sets the intensity curve (the mixed one by default) and, for stratiform rain, a
    soft ceiling: log(rain / 0.1) tends to log(ceiling / 0.1) (a tanh) instead of growing on.
    """
    scale, exponent = (
        (regime.intensity_scale, regime.intensity_exponent) if regime else (INTENSITY_SCALE, INTENSITY_EXPONENT)
    )
    excess = latent - np.float32(threshold)
    rain = np.zeros(latent.shape, dtype=np.float32)
    wet = excess > 0
    log_rain = np.float32(scale * gain) * excess[wet] ** np.float32(exponent)
    if regime is not None and regime.max_latent_rain_mmh is not None:
        top = np.float32(np.log(regime.max_latent_rain_mmh / MIN_RAIN_MMH))
        log_rain = top * np.tanh(log_rain / top)
    rain[wet] = MIN_RAIN_MMH * np.exp(log_rain)
    return rain


def _threshold(window: np.ndarray, wet_fraction: float) -> float:
    step = max(1, int(np.sqrt(window.size / QUANTILE_SAMPLES)))
    return float(np.quantile(window[::step, ::step], 1.0 - wet_fraction))


class _RegimeRain:
    """The rain of one regime over one run of scans: its weather, latent field, cells, lines and clutter."""

    def __init__(self, config: SynthConfig, regime: Regime, n_scans: int, seeds: list[np.random.SeedSequence]):
        weather_seed, latent_seed, cells_seed, lines_seed, clutter_seed = seeds
        self.regime = regime
        self.weather: Weather = draw_weather(regime, n_scans, config.time_step_minutes, weather_seed)
        self.shape = (config.height, config.width)
        shape = padded_shape(self.shape, config.pixel_size_m, config.largest_scale_km)
        self._offset = ((shape[0] - config.height) // 2, (shape[1] - config.width) // 2)
        self._window = tuple(slice(o, o + n) for o, n in zip(self._offset, self.shape))
        self._px_per_ms = config.time_step_s / config.pixel_size_m  # pixels moved per step by 1 m/s
        self._swirl = _Swirl(shape, regime.wind_perturbation * regime.wind_speed_ms * self._px_per_ms)
        self._use_swirl = regime.wind_perturbation > 0 and regime.wind_speed_ms > 0
        self._field: LatentField | None = None
        self._cells: ConvectiveCells | None = None
        self._lines: Lines | None = None
        if regime.rain:
            self._field = LatentField(
                shape,
                config.pixel_size_m,
                regime.spectral_slope,
                config.largest_scale_km,
                regime.lifetime_minutes_100km,
                config.time_step_minutes,
                np.random.default_rng(latent_seed),
            )
            self._cells = ConvectiveCells(
                shape,
                config.pixel_size_m,
                config.time_step_minutes,
                regime.cell_rate,
                regime.max_cell_rain_mmh,
                np.random.default_rng(cells_seed),
                regime.cells,
            )
            if regime.lines is not None:
                self._lines = Lines(
                    regime.lines,
                    (*self._offset, *self.shape),
                    config.pixel_size_m,
                    config.time_step_minutes,
                    regime.max_cell_rain_mmh,
                    np.random.default_rng(lines_seed),
                )
        self._clutter_rng = np.random.default_rng(clutter_seed)
        area_10k_km2 = config.height * config.width * (config.pixel_size_m / 1000.0) ** 2 / 1e4
        count = int(round(regime.clutter_per_10k_km2 * area_10k_km2))
        self._clutter_at = self._clutter_rng.integers(0, config.height * config.width, count)
        self._step = 0

    def step(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The next scan: rain (height, width) float32 mm/h, unrounded, and sub-threshold clutter or None."""
        i, self._step = self._step, self._step + 1
        weather = self.weather
        u, v = weather.wind_ms[i]
        shift = (-v * self._px_per_ms, u * self._px_per_ms)  # rows run south, columns east
        phase = weather.swirl_phase[i]
        if self._field is None or self._cells is None:
            rain = np.zeros(self.shape, dtype=np.float32)
        else:
            swirl, use_swirl, window = self._swirl, self._use_swirl, self._window
            latent = self._field.step(shift, swirl.field(phase) if use_swirl else None)
            threshold = _threshold(latent[window], weather.wet_fraction[i])
            rain = rain_from_latent(latent[window], threshold, weather.intensity_gain[i], self.regime)

            def velocity(row: float, col: float, shift=shift, phase=phase) -> tuple[float, float]:
                drow, dcol = swirl.at(row, col, phase) if use_swirl else (0.0, 0.0)
                return shift[0] + drow, shift[1] + dcol

            if self._lines is not None:
                self._lines.step(velocity, shift, weather.intensity_gain[i])
                self._lines.render(rain, latent[window])
            self._cells.step(velocity, latent, threshold, weather.intensity_gain[i])
            self._cells.render(rain, latent[window], self._offset)
        if not len(self._clutter_at):
            return rain, None
        clutter = np.zeros(self.shape, dtype=np.float32)
        low, high = (int(round(x * 100)) for x in CLUTTER_MMH)
        values = self._clutter_rng.integers(low, high + 1, len(self._clutter_at)) / 100
        shows = self._clutter_rng.random(len(self._clutter_at)) < CLUTTER_ON
        clutter.flat[self._clutter_at[shows]] = values[shows]
        return rain, clutter


def generate_fields(config: SynthConfig) -> Iterator[tuple[np.datetime64, np.ndarray]]:
    """Yield ``(time, rain)`` for every scan, the missing ones included (see ``missing_times``).

    Args:
        config: the archive configuration.

    Yields:
        The scan time (datetime64[s]) and a new (height, width) float32 array of rain rate in
        mm/h, rounded to 0.01, 0 for dry (< 0.1 mm/h; the dry regime's clutter pixels excepted)
        and NaN for no data; rows run north to south.
    """
    mask = nodata_mask(config, np.random.default_rng(_streams(config.seed)[3]))
    segments, transition = plan_segments(config), transition_scans(config)
    runs: dict[int, _RegimeRain] = {}
    for i, time in enumerate(scan_times(config)):
        rain = clutter = None
        for segment in segments:
            strength = weight(segment, i, transition)
            if strength <= 0:
                runs.pop(segment.index, None)
                continue
            if segment.index not in runs:
                regime = get_regime(segment.regime, config)
                runs[segment.index] = _RegimeRain(
                    config, regime, _run_length(config, segment), _run_seeds(config, segment)
                )
            part, noise = runs[segment.index].step()
            if strength < 1:
                part *= np.float32(strength)
            rain = part if rain is None else np.maximum(rain, part)
            if noise is not None:
                clutter = noise if clutter is None else np.maximum(clutter, noise)
        assert rain is not None, f"no regime covers scan {i}"  # segments tile the archive
        rain = np.minimum(np.rint(rain * 100) / 100, MAX_RAIN_MMH).astype(np.float32)
        rain[rain < MIN_RAIN_MMH] = 0.0
        if clutter is not None:
            rain = np.where(rain > 0, rain, clutter)
        rain[mask] = np.nan
        yield np.datetime64(time, "s"), rain
