"""The model shipped in nowcast/assets loads safely, records its data facts, and forecasts real radar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nowcast.checkpoint import load_checkpoint, model_from_checkpoint
from nowcast.errors import CheckpointError
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


def test_records_the_data_it_was_trained_for(shipped, caplog):
    config = load_checkpoint(shipped)["config"]
    assert config["pixel_size_m"] == pytest.approx(1000.0)
    assert config["time_step_s"] == 300
    assert config["crs"]
    loaded = load_model(shipped)
    check_data_facts(loaded, 1000.0, 300)  # fits 1 km / 5 min
    with pytest.raises(CheckpointError, match="pixel_size_m"):
        check_data_facts(loaded, 2000.0, 300)
    with caplog.at_level("INFO"):  # another projection at the same pixel size: noted, not warned about
        check_data_facts(loaded, 1000.0, 300, crs="+proj=aea +lat_1=-18 +lat_2=-36 +lon_0=132 +units=m")
    assert "the input has '+proj=aea" in caplog.text
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
    assert np.isfinite(out[:, inside]).all()
    assert np.isnan(out[:, ~inside]).all()
    assert (out[:, inside] >= 0).all()
    assert out[:, inside].max() <= loaded.cfg.max_rain_mmh
    # sane amounts: it rains at the first lead where it rained at the start, and the domain mean
    # stays within a factor of a few of the observed one (no explosion, no fade to nothing)
    obs_mean = float(np.nanmean(frames[-1]))
    means = np.nanmean(out[:, inside], axis=1)
    assert 0.2 * obs_mean < means[0] < 5 * obs_mean
    assert (means > 0.05 * obs_mean).all() and (means < 10 * obs_mean).all()
    wet = frames[-1] >= 1.0
    assert (out[0][wet] >= 0.1).mean() > 0.5
    # no fade to drizzle: an hour ahead, the mean and the heavy rain (> 5 mm/h) are still there
    heavy_now = (frames[-1][inside] > 5).mean()
    assert heavy_now > 0.001, "the test window needs heavy rain"
    assert 0.5 * obs_mean < means[-1] < 2 * obs_mean, means
    assert (out[-1][inside] > 5).mean() > 0.2 * heavy_now
