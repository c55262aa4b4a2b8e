"""Rain fields of the synthetic archive, one per scan, generated in memory.

Each scan: the latent field (``latent.py``) is moved by the wind and evolved; the pixels above
the scan's wet-fraction quantile rain, with a log-intensity growing with the height above that
threshold (median ~0.4 mm/h, 99th percentile ~5 mm/h on wet pixels, as in 5-minute radar
composites); convective cells (``cells.py``) add the heavy cores; values are rounded to
0.01 mm/h, below 0.1 mm/h set dry, and the no-data mask set to NaN.

Random streams (all spawned from ``seed``, in this order): weather, latent field, cells,
coverage, missing scans. So changing, say, the missing fraction leaves the fields unchanged,
and a longer archive starts exactly like a shorter one.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from nowcast.synth.cells import ConvectiveCells
from nowcast.synth.config import SynthConfig
from nowcast.synth.coverage import missing_indices, nodata_mask
from nowcast.synth.latent import LatentField, padded_shape
from nowcast.synth.weather import Weather, draw_weather

MIN_RAIN_MMH = 0.1  # the lowest rate a radar reports as rain
MAX_RAIN_MMH = 300.0
# Wet-pixel intensity: rain = MIN_RAIN * exp(SCALE * gain * d ** EXPONENT), d = latent - threshold.
# Fitted to the wet-pixel percentiles of 5-minute radar composites (p10 ~0.12, median ~0.4,
# p90 ~1.5, p99 ~5 mm/h); the concave power keeps the mass near the threshold without a spike.
INTENSITY_SCALE = 2.4
INTENSITY_EXPONENT = 0.7
QUANTILE_SAMPLES = 65_536  # the wet threshold is estimated on at most this many pixels


def _streams(seed: int) -> list[np.random.SeedSequence]:
    return np.random.SeedSequence(seed).spawn(5)  # weather, latent, cells, coverage, missing


def scan_times(config: SynthConfig) -> np.ndarray:
    """Every scan time of the archive, written or missing: datetime64[s], (n_scans,)."""
    return config.start_time + np.arange(config.n_scans) * np.timedelta64(config.time_step_s, "s")


def missing_times(config: SynthConfig) -> set[np.datetime64]:
    """The scan times whose files ``write_archive`` leaves out (``generate_fields`` still yields them)."""
    index = missing_indices(config, np.random.default_rng(_streams(config.seed)[4]))
    return {np.datetime64(t, "s") for t in scan_times(config)[index]}


def wind_series(config: SynthConfig) -> np.ndarray:
    """The domain-uniform wind (u eastward, v northward) in m/s that moves the rain into each scan: (n_scans, 2)."""
    return draw_weather(config, _streams(config.seed)[0]).wind_ms


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


def rain_from_latent(latent: np.ndarray, threshold: float, gain: float) -> np.ndarray:
    """Wet where latent > threshold, with intensity rising with the excess; float32 mm/h."""
    excess = latent - np.float32(threshold)
    rain = np.zeros(latent.shape, dtype=np.float32)
    wet = excess > 0
    rain[wet] = MIN_RAIN_MMH * np.exp(
        np.float32(INTENSITY_SCALE * gain) * excess[wet] ** np.float32(INTENSITY_EXPONENT)
    )
    return rain


def _threshold(window: np.ndarray, wet_fraction: float) -> float:
    step = max(1, int(np.sqrt(window.size / QUANTILE_SAMPLES)))
    return float(np.quantile(window[::step, ::step], 1.0 - wet_fraction))


def generate_fields(config: SynthConfig) -> Iterator[tuple[np.datetime64, np.ndarray]]:
    """Yield ``(time, rain)`` for every scan, the missing ones included (see ``missing_times``).

    Args:
        config: the archive configuration.

    Yields:
        The scan time (datetime64[s]) and a new (height, width) float32 array of rain rate in
        mm/h, rounded to 0.01, 0 for dry (< 0.1 mm/h) and NaN for no data; rows run north to
        south.
    """
    weather_seed, latent_seed, cells_seed, coverage_seed, _ = _streams(config.seed)
    weather: Weather = draw_weather(config, weather_seed)
    mask = nodata_mask(config, np.random.default_rng(coverage_seed))
    shape = padded_shape((config.height, config.width), config.pixel_size_m, config.largest_scale_km)
    offset = ((shape[0] - config.height) // 2, (shape[1] - config.width) // 2)
    window = (slice(offset[0], offset[0] + config.height), slice(offset[1], offset[1] + config.width))
    field = LatentField(
        shape,
        config.pixel_size_m,
        config.spectral_slope,
        config.largest_scale_km,
        config.lifetime_minutes_100km,
        config.time_step_minutes,
        np.random.default_rng(latent_seed),
    )
    cells = ConvectiveCells(
        shape,
        config.pixel_size_m,
        config.time_step_minutes,
        config.convective_cell_rate,
        config.max_cell_rain_mmh,
        np.random.default_rng(cells_seed),
    )
    px_per_ms = config.time_step_s / config.pixel_size_m  # pixels moved per step by 1 m/s
    swirl = _Swirl(shape, config.wind_perturbation * config.wind_speed_ms * px_per_ms)
    use_swirl = config.wind_perturbation > 0 and config.wind_speed_ms > 0
    for i, time in enumerate(scan_times(config)):
        u, v = weather.wind_ms[i]
        shift = (-v * px_per_ms, u * px_per_ms)  # rows run south, columns east
        phase = weather.swirl_phase[i]
        latent = field.step(shift, swirl.field(phase) if use_swirl else None)
        threshold = _threshold(latent[window], weather.wet_fraction[i])
        rain = rain_from_latent(latent[window], threshold, weather.intensity_gain[i])

        def velocity(row: float, col: float, shift=shift, phase=phase) -> tuple[float, float]:
            drow, dcol = swirl.at(row, col, phase) if use_swirl else (0.0, 0.0)
            return shift[0] + drow, shift[1] + dcol

        cells.step(velocity, latent, threshold, weather.intensity_gain[i])
        cells.render(rain, latent[window], offset)
        rain = np.minimum(np.rint(rain * 100) / 100, MAX_RAIN_MMH).astype(np.float32)
        rain[rain < MIN_RAIN_MMH] = 0.0
        rain[mask] = np.nan
        yield np.datetime64(time, "s"), rain
