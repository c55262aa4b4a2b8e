"""nowcast evaluate: the model and the baselines scored over a store, reports written and printed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nowcast.store import write_mock_store
from tests.predict_helpers import write_checkpoint


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_mock_store(
        str(tmp_path_factory.mktemp("eval") / "mock.zarr"), n_times=30, shape=(64, 64), missing=(12,)
    )


def test_evaluate_scores_model_and_baselines(store, tmp_path, cli, tiny_checkpoint):
    out = tmp_path / "scores"
    done = cli(
        "evaluate",
        "--checkpoint",
        tiny_checkpoint,
        "--store",
        store.path,
        "--out",
        out,
        "--leads",
        "3",
        "--max-starts",
        "4",
        "--stride",
        "2",
    )
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in out.iterdir()) == ["scores.json", "scores.md", "scores.png"]
    scores = json.loads((out / "scores.json").read_text())
    assert list(scores["methods"]) == ["model", "persistence", "extrapolation"]
    assert scores["n_starts"] == 4 and scores["num_input_frames"] == 3 and scores["lead_minutes"] == [5, 10, 15]
    for method in scores["methods"].values():
        assert len(method["MAE"]) == 3 and all(v is not None and v >= 0 for v in method["MAE"])
    assert "| lead (min) | model | persistence | extrapolation |" in done.output
    assert (out / "scores.md").read_text() in done.output.replace("\r", "")
    assert np.isfinite(scores["methods"]["persistence"]["CSI@1"][0])


def test_evaluate_checks_the_checkpoint_against_the_store(store, tmp_path, cli):
    ckpt = write_checkpoint(tmp_path / "m.pt", time_step_s=600)
    done = cli("evaluate", "--checkpoint", ckpt, "--store", store.path, "--out", tmp_path / "s")
    assert done.exit_code == 2 and "600" in done.output and "300" in done.output
    bad = cli(
        "evaluate",
        "--checkpoint",
        ckpt,
        "--store",
        store.path,
        "--out",
        tmp_path / "s",
        "--baselines",
        "persistence,nope",
    )
    assert bad.exit_code != 0 and "available: extrapolation, nowcast-sprog, persistence" in bad.output
    assert not (tmp_path / "s").exists()
    stated = cli(
        "evaluate",
        "--checkpoint",
        ckpt,
        "--store",
        store.path,
        "--out",
        tmp_path / "s",
        "--leads",
        "2",
        "--max-starts",
        "2",
        "--input-time-step",
        "300",
    )
    assert stated.exit_code == 0, stated.output
    assert json.loads((tmp_path / "s" / "scores.json").read_text())["lead_minutes"] == [5, 10]


def test_evaluate_takes_a_config_and_overrides_like_predict(store, tmp_path, cli, tiny_checkpoint):
    config = tmp_path / "predict.yaml"
    config.write_text("leads: 2\nprecision: float32\n")
    args = ["evaluate", "--checkpoint", tiny_checkpoint, "--store", store.path, "--max-starts", "2", "--config", config]
    done = cli(*args, "--out", tmp_path / "a", "--baseline", "none", "tile_overlap=8")
    assert done.exit_code == 0, done.output
    scores = json.loads((tmp_path / "a" / "scores.json").read_text())
    assert list(scores["methods"]) == ["model"] and scores["lead_minutes"] == [5, 10]
    done = cli(*args, "--out", tmp_path / "b", "--baseline", "persistence", "--leads", "1", "precision=bogus")
    assert done.exit_code == 2 and "precision" in done.output and str(config) in done.output
    done = cli(*args, "--out", tmp_path / "c", "--leads", "9")
    assert done.exit_code == 2 and "the model forecasts 4 lead times" in done.output
