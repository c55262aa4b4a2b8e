"""The synthetic archive: deterministic, realistic statistics, advection, evolution, CF files."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr
from pyproj import CRS
from typer.testing import CliRunner

from nowcast.cli import app
from nowcast.config import load_config
from nowcast.errors import ConfigError, NowcastError
from nowcast.synth import (
    SynthConfig,
    archive_name,
    generate_fields,
    missing_times,
    nodata,
    scan_times,
    synth_grid,
    wind_series,
    write_archive,
)
from tests.synth_helpers import phase_correlation_shift


def fields(config: SynthConfig) -> np.ndarray:
    return np.stack([rain for _, rain in generate_fields(config)])  # (T, H, W)


@pytest.fixture(scope="module")
def archive():
    """Three hours of a busy convective day on a small domain, shared by the statistics tests."""
    config = SynthConfig(n_scans=36, height=128, width=128, seed=7, convective_cell_rate=10.0)
    return config, fields(config)


def radial_spectrum_slope(rain: np.ndarray) -> float:
    """Log-log slope of the radially averaged power spectrum of dBR (as pysteps fits it), 4 to n/2 px."""
    rain = np.nan_to_num(rain)
    field = np.where(rain >= 0.1, 10 * np.log10(np.maximum(rain, 0.1)), -15.0)
    n = field.shape[0]
    power = np.abs(np.fft.fft2(field - field.mean())) ** 2
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij")).ravel()
    edges = np.logspace(np.log10(2 / n), np.log10(0.25), 10)
    band = np.digitize(k, edges)
    mean_power = np.array([power.ravel()[band == i].mean() for i in range(1, len(edges))])
    centres = np.sqrt(edges[1:] * edges[:-1])
    return float(np.polyfit(np.log(centres), np.log(mean_power), 1)[0])


def test_same_seed_same_fields_different_seed_different():
    config = SynthConfig(n_scans=6, height=48, width=64, seed=1)
    first, again = fields(config), fields(config)
    np.testing.assert_array_equal(first, again)
    other = fields(config.model_copy(update={"seed": 2}))
    assert not np.array_equal(np.nan_to_num(first), np.nan_to_num(other))
    assert first.shape == (6, 48, 64) and first.dtype == np.float32


def test_longer_archive_starts_like_a_shorter_one():
    short = fields(SynthConfig(n_scans=5, height=40, width=40, seed=4))
    long = fields(SynthConfig(n_scans=9, height=40, width=40, seed=4))
    np.testing.assert_array_equal(short, long[:5])


def test_mostly_dry_with_lognormal_wet_rates_and_heavy_cells(archive):
    config, rain = archive
    valid = rain[np.isfinite(rain)]
    dry = np.mean(valid < 0.1)
    assert 0.6 <= dry <= 0.95, dry
    wet = valid[valid >= 0.1]
    assert 0.2 <= np.median(wet) <= 1.5, np.median(wet)
    assert wet.max() >= 10.0, wet.max()  # convective cores
    assert wet.max() <= 300.0
    assert np.mean(valid > 10.0) < 0.03  # ... but few heavy pixels, even on this busy day
    np.testing.assert_array_equal(valid, np.round(valid, 2))  # 0.01 mm/h resolution
    assert not np.any((valid > 0) & (valid < 0.1))


def test_power_spectrum_is_a_realistic_power_law(archive):
    _, rain = archive
    slopes = [radial_spectrum_slope(frame) for frame in rain[::6]]
    assert all(-4.0 <= s <= -2.0 for s in slopes), slopes


def test_rain_moves_with_the_configured_wind():
    config = SynthConfig(
        n_scans=12,
        height=128,
        width=128,
        seed=5,
        wind_speed_ms=10.0,
        wind_direction_deg=60.0,
        wind_perturbation=0.0,
        convective_cell_rate=0.0,
        n_radars=0,
        wet_fraction=0.4,
        wet_fraction_variability=0.0,
    )
    rain = fields(config)
    wind = wind_series(config)
    px_per_ms = config.time_step_s / config.pixel_size_m
    errors = []
    for t in range(1, config.n_scans):
        u, v = wind[t]
        expected = np.array([-v, u]) * px_per_ms  # rows run south
        errors.append(np.abs(phase_correlation_shift(rain[t - 1], rain[t]) - expected))
    assert np.median(errors) < 0.3, np.round(errors, 2)
    assert np.max(errors) < 1.0, np.round(errors, 2)


def test_wind_turns_slowly_and_keeps_its_speed():
    config = SynthConfig(n_scans=288, wind_speed_ms=8.0, wind_direction_deg=90.0, seed=3)
    u, v = wind_series(config).T
    direction = np.rad2deg(np.unwrap(np.arctan2(u, v)))
    steps = np.abs(np.diff(direction))
    assert steps.max() < 10.0  # degrees per 5 minutes: slow
    assert np.ptp(direction) > 5.0  # but it does turn over a day
    assert 3.0 < np.median(np.hypot(u, v)) < 20.0


def test_rain_grows_and_decays(archive):
    _, rain = archive
    filled = np.nan_to_num(rain)
    wet_area = (filled >= 0.1).mean(axis=(1, 2))
    wet_mean = np.array([f[f >= 0.1].mean() for f in filled])
    assert np.ptp(wet_area) > 0.01, wet_area
    assert np.ptp(wet_mean) / wet_mean.mean() > 0.05, wet_mean


def test_rain_evolves_beyond_translation():
    """Lagrangian decorrelation: once the motion is undone, later scans resemble the first less and less."""
    config = SynthConfig(
        n_scans=25,
        height=128,
        width=128,
        seed=2,
        wind_perturbation=0.0,
        convective_cell_rate=0.0,
        n_radars=0,
        wet_fraction=0.4,
        wet_fraction_variability=0.0,
    )
    rain = np.log1p(fields(config))
    wind, px_per_ms = wind_series(config), config.time_step_s / config.pixel_size_m

    def moved_correlation(lag: int) -> float:
        drow = int(round(-wind[1 : lag + 1, 1].sum() * px_per_ms))
        dcol = int(round(wind[1 : lag + 1, 0].sum() * px_per_ms))
        n = rain.shape[1]
        rows, cols = slice(max(0, -drow), min(n, n - drow)), slice(max(0, -dcol), min(n, n - dcol))
        moved = slice(rows.start + drow, rows.stop + drow), slice(cols.start + dcol, cols.stop + dcol)
        return float(np.corrcoef(rain[0][rows, cols].ravel(), rain[lag][moved].ravel())[0, 1])

    first, half_hour, two_hours = moved_correlation(1), moved_correlation(6), moved_correlation(24)
    assert first > 0.9  # five minutes on, the rain has mostly just moved
    assert half_hour > two_hours and two_hours < first - 0.15  # but it grows and decays over hours


def test_nodata_regions_are_present_and_fixed(archive):
    config, rain = archive
    mask = np.isnan(rain)
    assert 0.0 < mask[0].mean() < 0.6
    assert np.all(mask == mask[0])
    np.testing.assert_array_equal(mask[0], nodata(config))
    one = SynthConfig(height=64, width=64, n_radars=1, blocked_sectors=1, radar_range_km=28.0, seed=2)
    single = nodata(one)
    assert single[0, 0] and single[-1, -1] and not single[32, 32]  # a range circle with dark corners
    no_block = nodata(one.model_copy(update={"blocked_sectors": 0}))
    assert single.sum() > no_block.sum()  # the blocked sector adds no-data inside the range
    assert not nodata(one.model_copy(update={"n_radars": 0})).any()


def test_missing_times_are_deterministic_and_never_first_or_last():
    config = SynthConfig(n_scans=200, missing_fraction=0.05, height=16, width=16, seed=9)
    missing = missing_times(config)
    times = scan_times(config)
    assert len(missing) == 10 and missing == missing_times(config)
    assert times[0] not in missing and times[-1] not in missing
    assert missing != missing_times(config.model_copy(update={"seed": 10}))
    assert len(missing_times(SynthConfig(n_scans=50, n_missing=7, missing_fraction=0.5, height=16, width=16))) == 7


def test_archive_files_are_cf_and_match_the_fields(tmp_path):
    config = SynthConfig(n_scans=12, height=40, width=48, seed=11, n_missing=2)
    paths = write_archive(tmp_path / "archive", config, progress=False)
    missing = missing_times(config)
    generated = list(generate_fields(config))
    assert len(generated) == 12 and {t for t, _ in generated} >= missing
    assert len(paths) == 10 and len(missing) == 2
    names = sorted(p.name for p in (tmp_path / "archive").iterdir())
    assert names == sorted([p.name for p in paths] + ["synth.yaml"])
    for time in missing:
        assert not (tmp_path / "archive" / archive_name(time)).exists()
    assert load_config(SynthConfig, tmp_path / "archive" / "synth.yaml") == config

    time, rain = generated[1]
    path = tmp_path / "archive" / archive_name(time)
    assert path.name == "synth_20240601000500.nc"
    with xr.open_dataset(path, engine="netcdf4") as ds:
        assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["source"] == "nowcast synthetic archive"
        assert int(ds.attrs["seed"]) == 11
        var = ds["rainfall_rate"]
        assert var.dims == ("time", "y", "x") and var.attrs["units"] == "mm h-1"
        assert var.attrs["standard_name"] == "rainfall_rate" and var.attrs["grid_mapping"] == "crs"
        assert ds["time"].values[0] == np.datetime64(time, "ns")
        assert np.all(np.diff(ds["y"].values) < 0) and np.all(np.diff(ds["x"].values) > 0)
        assert ds["x"].attrs["standard_name"] == "projection_x_coordinate" and ds["y"].attrs["units"] == "m"
        np.testing.assert_allclose(ds["x"].values, synth_grid(config).x)
        values = var.values[0]
        np.testing.assert_array_equal(np.isnan(values), np.isnan(rain))
        np.testing.assert_allclose(values, rain, atol=1e-4)
        crs = CRS.from_cf(dict(ds["crs"].attrs))
        assert crs.is_projected and crs.coordinate_operation.method_name == "Lambert Azimuthal Equal Area"
    with netCDF4.Dataset(path) as nc:
        assert nc["time"].units == "seconds since 1970-01-01 00:00:00" and nc["time"].standard_name == "time"
        assert nc["time"].shape == (1,) and nc["rainfall_rate"].dtype == np.int16
        assert nc["crs"].grid_mapping_name == "lambert_azimuthal_equal_area"


def test_rerun_is_a_no_op_and_another_config_needs_overwrite(tmp_path):
    config = SynthConfig(n_scans=4, height=16, width=16, n_missing=0)
    first = write_archive(tmp_path, config, progress=False)
    stamp = first[0].stat().st_mtime_ns
    assert write_archive(tmp_path, config, progress=False) == first
    assert first[0].stat().st_mtime_ns == stamp
    other = config.model_copy(update={"n_scans": 3})
    with pytest.raises(NowcastError, match="overwrite"):
        write_archive(tmp_path, other, progress=False)
    again = write_archive(tmp_path, other, progress=False, overwrite=True)
    assert sorted(tmp_path.glob("synth_*.nc")) == again and len(again) == 3
    assert not list(tmp_path.glob(".*part"))


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"height": -5}, "height"),
        ({"n_scans": 0}, "n_scans"),
        ({"pixel_size_m": -1}, "pixel_size_m"),
        ({"start": "yesterday"}, "start"),
        ({"n_scans": 10, "n_missing": 9}, "n_missing"),
        ({"missing_fraction": 0.9}, "missing_fraction"),
        ({"time_step_minutes": 0.001}, "whole number of seconds"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_config_is_refused_with_the_key_named(tmp_path, bad, key):
    path = tmp_path / "synth.yaml"
    path.write_text("\n".join(f"{k}: {v}" for k, v in bad.items()))
    with pytest.raises(ConfigError, match=key):
        load_config(SynthConfig, path)


def test_yaml_timestamp_is_accepted(tmp_path):
    path = tmp_path / "synth.yaml"
    path.write_text("start: 2023-01-02T03:04:00Z\n")
    assert load_config(SynthConfig, path).start == "2023-01-02T03:04:00"


def test_cli_writes_an_archive(tmp_path):
    out = tmp_path / "archive"
    result = CliRunner().invoke(
        app,
        [
            "synth",
            str(out),
            "--n-scans",
            "5",
            "--height",
            "24",
            "--width",
            "32",
            "--seed",
            "3",
            "--no-progress",
            "n_missing=1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("synth_*.nc"))) == 4
    saved = load_config(SynthConfig, out / "synth.yaml")
    assert (saved.height, saved.width, saved.seed, saved.n_missing) == (24, 32, 3, 1)
    refused = CliRunner().invoke(app, ["synth", str(tmp_path / "bad"), "--height", "-3"])
    assert refused.exit_code == 2
