"""Evaluation over a store: start selection across gaps, accumulation per lead, reports, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nowcast.cli import app
from nowcast.errors import MissingFramesError
from nowcast.store import write_mock_store
from nowcast.verify.baselines import make_forecaster, persistence
from nowcast.verify.evaluate import evaluate, select_starts
from nowcast.verify.metrics import ScoreAccumulator
from nowcast.verify.report import markdown, write_reports

T_IN, N_LEADS = 3, 4


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """48 five-minute frames of 40x40 with time 20 missing and a no-data strip along the top."""
    return write_mock_store(
        str(tmp_path_factory.mktemp("verify") / "mock.zarr"), n_times=48, shape=(40, 40), missing=(20,)
    )


def windows_brute_force(valid, t_in, n_leads):
    """Every start whose window [s - t_in + 1, s + n_leads] is inside the axis, split by validity."""
    whole, broken = [], []
    for s in range(t_in - 1, len(valid) - n_leads):
        (whole if all(valid[s - t_in + 1 : s + n_leads + 1]) else broken).append(s)
    return whole, broken


def test_select_starts_never_crosses_a_gap():
    rng = np.random.default_rng(3)
    valid = rng.random(200) > 0.05
    whole, broken = windows_brute_force(valid, 4, 6)
    selection = select_starts(valid, 4, 6)
    assert selection.starts.tolist() == whole and selection.n_skipped_gap == len(broken) > 0
    assert select_starts(valid, 4, 6, stride=3, max_starts=5).starts.tolist() == whole[::3][:5]
    assert select_starts(valid, 4, 6, first=50, last=120).starts.tolist() == [s for s in whole if 50 <= s <= 120]
    assert select_starts(valid[:8], 4, 6).starts.size == 0  # shorter than one window


def test_evaluate_skips_gap_and_matches_manual_accumulation(store):
    result = evaluate(
        store, {"persistence": make_forecaster("persistence", 1000.0, 300)}, T_IN, N_LEADS, common_mask=False
    )
    whole, broken = windows_brute_force(store.valid, T_IN, N_LEADS)
    assert result.n_starts == len(whole) and result.n_skipped_gap == len(broken) == T_IN + N_LEADS
    assert result.lead_minutes == [5.0, 10.0, 15.0, 20.0]
    assert result.first_init_time == str(store.times[whole[0]])
    manual = ScoreAccumulator(N_LEADS, store.grid.pixel_size)
    for s in whole:
        manual.add(persistence(store.read(s - T_IN + 1, s + 1), N_LEADS), store.read(s + 1, s + 1 + N_LEADS))
    np.testing.assert_equal(result.methods["persistence"], manual.result())
    r = result.methods["persistence"]
    assert r["n_pixels"][0] == len(whole) * 37 * 40  # the no-data strip never counts
    assert r["MAE"][-1] > r["MAE"][0] > 0


def test_evaluate_scores_methods_on_common_pixels(store):
    forecasters = {
        name: make_forecaster(name, store.grid.pixel_size, store.layout.time_step_s)
        for name in ("persistence", "extrapolation")
    }
    result = evaluate(store, forecasters, T_IN, N_LEADS, start="2024-06-01T00:30", stride=4, max_starts=5)
    assert result.n_starts == 5 and result.first_init_time == "2024-06-01T00:30:00"
    per, ext = result.methods["persistence"], result.methods["extrapolation"]
    assert per["n_pixels"] == ext["n_pixels"] and per["mean_obs"] == ext["mean_obs"]
    assert ext["MAE"][-1] < per["MAE"][-1]  # the mock blobs move east: extrapolation follows them


def test_evaluate_without_whole_window_says_why(store):
    with pytest.raises(MissingFramesError, match="no start between"):
        evaluate(
            store,
            {"persistence": make_forecaster("persistence", 1000.0, 300)},
            T_IN,
            N_LEADS,
            start="2024-06-01T01:35",
            end="2024-06-01T01:45",
        )
    with pytest.raises(ValueError, match="returned shape"):
        evaluate(store, {"bad": lambda frames, n: frames[-1:]}, T_IN, N_LEADS, max_starts=1)


def test_reports_written(store, tmp_path):
    forecasters = {
        "persistence": make_forecaster("persistence", 1000.0, 300),
        "never rains": lambda frames, n: np.zeros((n, *frames.shape[1:]), np.float32),
    }
    result = evaluate(store, forecasters, T_IN, N_LEADS, max_starts=3)
    paths = write_reports(result, tmp_path / "report")
    scores = json.loads(paths["json"].read_text())  # strict JSON: undefined scores are null
    assert scores["n_starts"] == 3 and set(scores["methods"]) == {"persistence", "never rains"}
    assert scores["methods"]["never rains"]["FAR@1"] == [None] * N_LEADS
    text = paths["markdown"].read_text()
    assert text == markdown(result) and "## CSI@1" in text and "## MAE" in text
    assert text.count("| 20 |") == 5  # the last lead row in each of the four tables and the comparison
    assert "## persistence against never rains" in text and "Fewer than 5 windows that share no frame" in text
    png = paths["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_cli_evaluate_baselines(store, tmp_path):
    out = tmp_path / "cli"
    runner = CliRunner(env={"COLUMNS": "200"})  # one line per message: no wrapping inside the box
    done = runner.invoke(
        app,
        [
            "evaluate-baselines",
            "--store",
            store.path,
            "--out",
            str(out),
            "--leads",
            "3",
            "--max-starts",
            "2",
            "--baseline",
            "persistence",
        ],
    )
    assert done.exit_code == 0, done.output
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n_starts"] == 2 and list(scores["methods"]) == ["persistence"]
    assert (out / "scores.png").stat().st_size > 0
    bad = runner.invoke(app, ["evaluate-baselines", "--store", store.path, "--out", str(out), "--baseline", "nope"])
    assert bad.exit_code != 0 and "available: extrapolation, nowcast-sprog, persistence" in bad.output
    bad = runner.invoke(app, ["evaluate-baselines", "--store", store.path, "--out", str(out), "--start", "noon"])
    assert bad.exit_code != 0 and "is not a time" in bad.output
