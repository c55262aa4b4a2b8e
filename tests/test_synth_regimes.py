"""Weather regimes of the synthetic archive: each shows the property it claims, measured on its fields."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from nowcast.config import load_config
from nowcast.errors import ConfigError
from nowcast.synth import SynthConfig, generate_fields, regime_series, wind_series, write_archive
from nowcast.synth.regimes import REGIME_NAMES
from tests.synth_helpers import (
    component_areas,
    elongation,
    moved_correlation,
    phase_correlation_shift,
    track_durations,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "synth"


def fields(config: SynthConfig) -> np.ndarray:
    return np.stack([rain for _, rain in generate_fields(config)])  # (T, H, W)


def regime(name: str, **keys) -> SynthConfig:
    """A small archive of one regime, seen whole (no radar gaps)."""
    return SynthConfig(regime=name, **{"n_scans": 24, "height": 128, "width": 128, "n_radars": 0, **keys})


def displacements(config: SynthConfig) -> np.ndarray:
    """The domain-uniform displacement (rows, cols) in pixels into each scan: (T, 2)."""
    u, v = wind_series(config).T
    return np.stack([-v, u], axis=1) * config.time_step_s / config.pixel_size_m


def test_mixed_is_the_default_and_unchanged():
    """The default regime is the archive as it was before regimes existed (digest taken then)."""
    config = SynthConfig(n_scans=8, height=48, width=64, seed=5, convective_cell_rate=20.0)
    assert config.regime == "mixed"
    digest = hashlib.sha256()
    for _, rain in generate_fields(config):
        digest.update(np.rint(np.nan_to_num(rain, nan=-1.0) * 100).astype(np.int32).tobytes())
    assert digest.hexdigest() == "e1ec98d4352f1a13f06768deda927c67ca7f828be2513a965d9609ed1525a2a1"


@pytest.mark.parametrize("name", [*REGIME_NAMES, "segments"])
def test_same_seed_same_fields(name):
    if name == "segments":
        config = SynthConfig(
            regime=[{"regime": "lines", "hours": 0.25}, {"regime": "convective_showers", "hours": 0.25}],
            n_scans=8,
            height=48,
            width=48,
        )
    else:
        config = SynthConfig(regime=name, n_scans=5, height=48, width=48, seed=3)
    first = fields(config)
    np.testing.assert_array_equal(first, fields(config))
    other = fields(config.model_copy(update={"seed": config.seed + 1}))
    assert not np.array_equal(np.nan_to_num(first), np.nan_to_num(other))


def test_a_longer_archive_of_segments_starts_like_a_shorter_one():
    segments = [{"regime": "stratiform", "hours": 0.5}, {"regime": "fast_motion", "hours": 0.5}]
    short = fields(SynthConfig(regime=segments, n_scans=9, height=40, width=40, seed=2))
    long = fields(SynthConfig(regime=segments, n_scans=20, height=40, width=40, seed=2))
    np.testing.assert_array_equal(short, long[:9])


def test_convective_showers_are_small_short_lived_intense_cells_in_weak_rain():
    config = regime("convective_showers", n_scans=36, seed=1)
    rain = fields(config)
    areas = np.concatenate([component_areas(frame, 1.0) for frame in rain])
    assert len(areas) / len(rain) >= 8  # many cells at once on 128 x 128 km
    assert np.median(areas) <= 40, np.median(areas)  # 2-8 km across: 3-50 px at 1 km
    lives = track_durations(rain, displacements(config), 1.0) * config.time_step_minutes
    assert len(lives) >= 30
    assert 10 <= np.median(lives) <= 40, np.median(lives)
    peaks = []
    for frame in rain:
        labels, n = ndimage.label(frame >= 1.0, structure=np.ones((3, 3)))
        peaks.extend(ndimage.maximum(frame, labels, np.arange(1, n + 1)))
    assert np.mean(np.array(peaks) > 10) >= 0.8  # intense cores ...
    assert np.median(rain[rain >= 0.1]) < 1.0  # ... in weak rain


def test_fast_motion_moves_at_60_to_120_kmh_with_rotation_and_shear():
    config = regime("fast_motion", n_scans=12, height=192, width=192, largest_scale_km=100.0, seed=1)
    rain = fields(config)
    km_per_px, steps_per_hour = config.pixel_size_m / 1000, 60 / config.time_step_minutes
    speeds = [
        np.hypot(*phase_correlation_shift(rain[t - 1], rain[t])) * km_per_px * steps_per_hour
        for t in range(1, len(rain))
    ]
    assert 60 <= np.median(speeds) <= 120, np.round(speeds)
    assert np.mean((np.array(speeds) >= 60) & (np.array(speeds) <= 120)) >= 0.8, np.round(speeds)

    def quadrant_spread(rain: np.ndarray) -> float:
        """How differently the four quadrants move (px per step): 0 for a uniform translation."""
        h = rain.shape[1] // 2
        spreads = []
        for t in range(1, len(rain)):
            shifts = [
                phase_correlation_shift(rain[t - 1][a : a + h, b : b + h], rain[t][a : a + h, b : b + h])
                for a in (0, h)
                for b in (0, h)
            ]
            spreads.append(np.ptp(np.array(shifts), axis=0).max())
        return float(np.median(spreads))

    uniform = SynthConfig(
        n_scans=12, height=192, width=192, n_radars=0, seed=1, wind_speed_ms=25.0, wind_perturbation=0.0
    )
    assert quadrant_spread(rain) > 1.0 > 2 * quadrant_spread(fields(uniform))


def test_lines_are_long_and_grow_and_decay_along_their_length():
    config = regime("lines", n_scans=25, height=192, width=192, largest_scale_km=100.0, seed=3)
    rain = fields(config)
    ratios = []
    for frame in rain >= 5:  # the cores of one line, beads joined: long and thin
        labels, n = ndimage.label(ndimage.binary_dilation(frame, iterations=4))
        if n:
            largest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
            ratios.append(elongation((labels == largest) & frame)[0])
    assert len(ratios) >= 0.75 * len(rain)  # a line is in view most of the time
    assert np.median(ratios) >= 4, np.round(ratios, 1)  # mixed rain or showers: 1-3.7

    cores = rain >= 10

    moved = np.cumsum(displacements(config), axis=0)

    def kept(lag: int) -> float:
        """Fraction of the cores that, moved with the wind, still lie on (or by) a core ``lag`` scans later."""
        found = total = 0
        for t in range(len(cores) - lag):
            offset = np.rint(moved[t + lag] - moved[t]).astype(int)
            before = np.roll(cores[t], tuple(offset), axis=(0, 1))
            found += (before & ndimage.binary_dilation(cores[t + lag], iterations=2)).sum()
            total += before.sum()
        return found / total

    next_scan, an_hour_on = kept(1), kept(12)
    # segments come and go: a line that only moved would keep ~all its cores
    assert next_scan > 0.85 and an_hour_on < min(0.85, next_scan - 0.15), (next_scan, an_hour_on)
    area = cores.sum(axis=(1, 2))
    assert area.max() > 1.3 * area.min(), area  # and the line's heavy rain grows or wanes


def test_stratiform_is_wide_moderate_and_slowly_changing():
    config = regime("stratiform", n_scans=13, seed=2)
    rain = fields(config)
    wet = rain[rain >= 0.1]
    assert np.mean(rain >= 0.1, axis=(1, 2)).min() >= 0.5
    assert 1.0 <= np.median(wet) <= 3.0, np.median(wet)
    assert np.percentile(wet, 95) <= 5.0 and rain.max() <= 12.0, (np.percentile(wet, 95), rain.max())
    moves = displacements(config)
    half_hour, hour = (moved_correlation(rain[0], rain[lag], moves[1 : lag + 1].sum(axis=0)) for lag in (6, 12))
    assert half_hour > 0.9 and hour > 0.8, (half_hour, hour)  # mixed rain: ~0.8 after half an hour


def test_dry_has_no_rain_only_sub_threshold_clutter():
    rain = fields(SynthConfig(regime="dry", n_scans=12, height=128, width=128, seed=4))
    valid = rain[np.isfinite(rain)]
    assert not np.any(valid >= 0.1)
    assert 0 < np.count_nonzero(valid) <= 12 * 10  # a few clutter pixels
    assert np.isnan(rain).any()  # radar coverage as in any regime


def test_segments_switch_regime_at_the_stated_times():
    config = SynthConfig(
        regime=[{"regime": "dry", "hours": 1}, {"regime": "stratiform", "hours": 1}],
        n_scans=36,
        height=64,
        width=64,
        n_radars=0,
        seed=6,
    )
    rain = fields(config)
    wet = np.mean(rain >= 0.1, axis=(1, 2))
    names = regime_series(config)
    assert list(names) == ["dry"] * 12 + ["stratiform"] * 12 + ["dry"] * 12  # the list repeats
    assert np.all(wet[:12] == 0)  # dry until 01:00
    assert wet[12] > 0  # stratiform grows in from 01:00 ...
    assert np.all(wet[18:24] >= 0.5)  # ... and holds alone after 30 minutes
    assert np.all(wet[30:] == 0)  # dry again 30 minutes after 02:00
    assert len(wind_series(config)) == 36


@pytest.mark.parametrize(
    "value, message",
    [
        ("drizzle", "unknown regime 'drizzle'; available: mixed, convective_showers"),
        ([], "at least one"),
        ([{"regime": "dry", "hours": 0.1}], "whole number"),
        ([{"regime": "hail", "hours": 1}], "unknown regime 'hail'"),
        ([{"regime": "dry"}], "hours"),
    ],
)
def test_bad_regime_is_refused_with_the_key_named(tmp_path, value, message):
    path = tmp_path / "synth.yaml"
    path.write_text(f"regime: {value!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError, match="regime") as error:
        load_config(SynthConfig, path)
    assert message in str(error.value)


def test_regime_configs_load(tmp_path):
    path = tmp_path / "synth.yaml"
    path.write_text("regime:\n  - {regime: lines, hours: 2}\n  - {regime: dry, hours: 0.5}\n")
    config = load_config(SynthConfig, path)
    assert [(s.regime, s.hours) for s in config.regime] == [("lines", 2.0), ("dry", 0.5)]


def test_an_archive_written_before_regimes_is_still_recognised(tmp_path):
    config = SynthConfig(n_scans=3, height=16, width=16, n_missing=0)
    first = write_archive(tmp_path, config, progress=False)
    saved = tmp_path / "synth.yaml"
    saved.write_text(saved.read_text().replace("regime: mixed\n", ""))  # as written before the key existed
    stamp = first[0].stat().st_mtime_ns
    assert write_archive(tmp_path, config, progress=False) == first
    assert first[0].stat().st_mtime_ns == stamp


def test_shipped_configs_load_and_the_training_archive_holds_every_regime():
    for path in sorted(CONFIGS.rglob("*.yaml")):
        config = load_config(SynthConfig, path)
        if path.parent.name == "regimes":
            assert config.regime == path.stem
    train = load_config(SynthConfig, CONFIGS / "train-regimes.yaml")
    assert (train.height, train.width, train.pixel_size_m, train.time_step_minutes) == (256, 256, 1000.0, 5.0)
    assert 1900 <= train.n_scans <= 2100
    names = regime_series(train)
    shares = {name: float(np.mean(names == name)) for name in REGIME_NAMES}
    assert all(0.05 <= share <= 0.3 for share in shares.values()), shares
