"""The model shipped in nowcast/assets loads safely, records its data facts, and forecasts real radar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nowcast.checkpoint import load_checkpoint, model_from_checkpoint
from nowcast.ingest.readers import read_scan
from nowcast.predict import check_data_facts, load_model, run_model
from nowcast.predict.loading import default_checkpoint

REPO = Path(__file__).resolve().parents[1]
KNMI = REPO / ".." / "shared" / "data" / "radar" / "KNMI"
MAX_BYTES = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def shipped() -> Path:
    path = default_checkpoint()
    assert path.is_file(), f"no shipped model at {path}"
    return path


def test_loads_with_weights_only_and_is_small(shipped):
    assert shipped.stat().st_size <= MAX_BYTES
    raw = torch.load(shipped, map_location="cpu", weights_only=True)  # raises if it would run code
    assert raw["format"] == "nowcast-checkpoint"
    assert "optimizer" not in raw, "the shipped file carries only what forecasting needs"
    model, cfg = model_from_checkpoint(load_checkpoint(shipped))
    assert not model.training
    assert cfg.num_output_frames >= 12  # 60 min at 5 min


def test_runs_at_any_pixel_size_and_time_step(shipped, caplog):
    """S-PROG measures motion and decay from the input itself: no grid is refused or warned about."""
    loaded = load_model(shipped)
    assert loaded.cfg.name == "sprog"
    assert loaded.cfg.num_output_frames >= 24  # two hours at 5 min
    with caplog.at_level("INFO"):
        for pixel_size_m, time_step_s in ((1000.0, 300), (2000.0, 900), (500.0, 120), (999.7, 360)):
            check_data_facts(loaded, pixel_size_m, time_step_s, crs="+proj=aea +lat_1=-18 +lat_2=-36 +lon_0=132")
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


@pytest.mark.slow
def test_forecasts_a_real_knmi_window(shipped):
    files = sorted(KNMI.rglob("*.h5"))
    if len(files) < 4:
        pytest.skip(f"KNMI sample data not found under {KNMI}")
    loaded = load_model(shipped)
    n_in = loaded.cfg.num_input_frames
    scans = [read_scan(str(f)) for f in files[40 : 40 + n_in]]  # a rainy morning hour, 2010-08-26
    frames = np.stack([s.rain_rate for s in scans])  # (T_in, 765, 700) mm/h, NaN outside the radars
    torch.set_num_threads(2)
    out = run_model(loaded.model, frames)
    assert out.shape == (loaded.cfg.num_output_frames, *frames.shape[1:])
    inside = np.isfinite(frames[-1])
    assert np.isnan(out[:, ~inside]).all()
    # inside the coverage, no data only where the rain would come from outside it (as pySTEPS):
    # a band that widens from the upwind edge, lead by lead
    known = np.isfinite(out[:, inside]).mean(axis=1)
    assert known[0] > 0.97 and known[11] > 0.6 and (np.diff(known) <= 1e-3).all(), known
    assert (out[np.isfinite(out)] >= 0).all()
    assert np.nanmax(out) <= loaded.cfg.max_rain_mmh
    # sane amounts: it rains at the first lead where it rained at the start, and the domain mean
    # stays within a factor of a few of the observed one (no explosion, no fade to nothing)
    obs_mean = float(np.nanmean(frames[-1]))
    means = np.nanmean(out[:, inside], axis=1)
    assert 0.2 * obs_mean < means[0] < 5 * obs_mean
    assert (means > 0.05 * obs_mean).all() and (means < 10 * obs_mean).all()
    wet = frames[-1] >= 1.0
    assert (out[0][wet & np.isfinite(out[0])] >= 0.1).mean() > 0.5
    # no fade to drizzle: an hour ahead, the mean and the heavy rain (> 5 mm/h) are still there
    heavy_now = (frames[-1][inside] > 5).mean()
    assert heavy_now > 0.001, "the test window needs heavy rain"
    assert 0.5 * obs_mean < means[-1] < 2 * obs_mean, means
    assert (out[-1][np.isfinite(out[-1])] > 5).mean() > 0.2 * heavy_now
