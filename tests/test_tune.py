"""nowcast tune: the search space, the samplers, the reports, and real searches on a Dask
LocalCluster (the default engine) over a mock store: a failing trial is recorded, not fatal, and
a re-run resumes (finished trials skipped, an unrecorded one continued from its checkpoint)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from nowcast.config import load_config, read_yaml, validate
from nowcast.errors import ConfigError
from nowcast.store import write_mock_store
from nowcast.train.config import TrainConfig
from nowcast.tune.config import TuneConfig
from nowcast.tune.report import ranked, write_reports
from nowcast.tune.run import RESULTS, base_train_config, read_results, run_tune
from nowcast.tune.samplers import grid, random_trial, tpe_batch
from nowcast.tune.trial import set_key, trial_config

ROOT = Path(__file__).resolve().parents[1]
DEBUG = ROOT / "configs" / "tune" / "debug.yaml"


def tune_config(tmp_path: Path, store: Path | str = "unused.zarr", search=None, **top) -> TuneConfig:
    """configs/tune/debug.yaml on ``store``, writing under tmp_path; ``search`` keys replace the file's."""
    data = read_yaml(DEBUG)
    data["train_config"] = str(ROOT / data["train_config"])
    data["fixed"] = {"data.stores": [str(store)]}
    data["out_dir"] = str(tmp_path / "tune")
    data["search"] = {**data["search"], **(search or {})}
    return validate(TuneConfig, {**data, **top}, "test")


def search(tmp_path, sampler="random", n_trials=4, **space):
    space = space or {"optim.lr": {"low": 1e-4, "high": 1e-2, "log": True}, "model.stem_channels": {"choices": [4, 8]}}
    return tune_config(tmp_path, search={"sampler": sampler, "n_trials": n_trials, "space": space}).search


def test_grid_enumerates_every_combination_in_order(tmp_path):
    s = search(
        tmp_path,
        "grid",
        None,
        **{"optim.batch_size": {"choices": [2, 4]}, "model.stem_channels": {"low": 4, "high": 12, "step": 4}},
    )
    assert grid(s) == [{"optim.batch_size": b, "model.stem_channels": c} for b in (2, 4) for c in (4, 8, 12)]
    assert len(grid(search(tmp_path, "grid", 4, **{"optim.lr": {"low": 0.1, "high": 0.3, "step": 0.1}}))) == 3


def test_random_trials_are_reproducible_and_inside_the_space(tmp_path):
    s = search(
        tmp_path,
        **{
            "optim.lr": {"low": 1e-4, "high": 1e-2, "log": True},
            "optim.warmup_steps": {"low": 0, "high": 10, "step": 5},
            "data.flips": {"choices": [True, False]},
            "optim.weight_decay": {"low": 0.0, "high": 0.1},
        },
    )
    trials = [random_trial(s, n) for n in range(40)]
    assert trials == [random_trial(s, n) for n in range(40)]  # a pure function of (seed, number)
    assert all(1e-4 <= t["optim.lr"] <= 1e-2 and t["optim.warmup_steps"] in (0, 5, 10) for t in trials)
    assert all(isinstance(t["optim.warmup_steps"], int) and 0 <= t["optim.weight_decay"] <= 0.1 for t in trials)
    lrs = np.log10([t["optim.lr"] for t in trials])
    assert lrs.min() < -3.3 and lrs.max() > -2.7  # spread over the decades, not bunched at the top
    assert {t["data.flips"] for t in trials} == {True, False}


def test_tpe_asks_inside_the_space_and_learns_from_results(tmp_path):
    s = search(
        tmp_path,
        "tpe",
        8,
        **{
            "optim.lr": {"low": 1e-4, "high": 1e-2, "log": True},
            "model.hidden_channels": {"choices": [[4, 8], [8, 16]]},
        },
    )
    history = [
        {"params": {"optim.lr": 1e-3 * (i + 1), "model.hidden_channels": [4, 8]}, "state": "complete", "score": i / 10}
        for i in range(5)
    ] + [{"params": {"optim.lr": 5e-3, "model.hidden_channels": [8, 16]}, "state": "failed", "score": None}]
    asked = tpe_batch(s, "maximize", history, 3)
    assert len(asked) == 3
    assert all(1e-4 <= p["optim.lr"] <= 1e-2 and p["model.hidden_channels"] in ([4, 8], [8, 16]) for p in asked)
    assert asked == tpe_batch(s, "maximize", history, 3)  # seeded by the history: a re-run asks the same


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ({"choices": [1], "low": 0, "high": 1}, "not both"),
        ({"low": 2, "high": 1}, "must be below"),
        ({"low": 0.0, "high": 1.0, "log": True}, "log needs low > 0"),
        ({"low": 1}, "both low and high"),
    ],
)
def test_a_bad_search_space_names_the_key(tmp_path, param, message):
    with pytest.raises(ConfigError, match=rf"search.space.optim.lr[\s\S]*{message}"):
        tune_config(tmp_path, search={"space": {"optim.lr": param}})


def test_a_grid_over_a_float_range_needs_a_step(tmp_path):
    with pytest.raises(ConfigError, match="grid search needs choices, an int range or a step for: optim.lr"):
        tune_config(tmp_path, search={"sampler": "grid", "space": {"optim.lr": {"low": 0.1, "high": 0.2}}})


def test_searched_keys_and_values_are_checked_against_the_train_config(tmp_path):
    for space, message in (
        ({"optim.lrr": {"choices": [0.1]}}, r"search.space.optim.lrr = 0.1 .*\n?.*optim.lrr: unknown key"),
        ({"data.crop_size": {"choices": [32, 33]}}, r"search.space.data.crop_size = 33 .*divisible"),
    ):
        with pytest.raises(ConfigError, match=message):
            base_train_config(tune_config(tmp_path, search={"space": space}), "tune.yaml")


def test_set_key_merges_sections_and_trial_config_sets_budget_and_run(tmp_path):
    tree = {"data": {"stores": ["a"], "crop_size": 32}, "run": {"name": "x"}}
    assert set_key(tree, "data", {"stores": ["b"]}) == {
        "data": {"stores": ["b"], "crop_size": 32},
        "run": {"name": "x"},
    }
    assert tree["data"]["stores"] == ["a"]  # the input is not changed
    cfg = trial_config(tree, {"optim.lr": 0.5}, 7, "/runs/trials", 3)
    assert cfg["optim"] == {"lr": 0.5, "max_steps": 7} and cfg["run"] == {
        "name": "trial-0003",
        "out_dir": "/runs/trials",
    }


def test_reports_sort_by_score_and_write_the_best_config(tmp_path):
    cfg = tune_config(tmp_path, "store.zarr")
    base = base_train_config(cfg, "test")
    results = [
        {"number": 0, "params": {"optim.lr": 1e-3, "model.stem_channels": 4}, "state": "complete", "score": 0.5},
        {
            "number": 1,
            "params": {"optim.lr": 2e-3, "model.stem_channels": 8},
            "state": "failed",
            "score": None,
            "error": "ConfigError: too few windows\nsecond line",
        },
        {"number": 2, "params": {"optim.lr": 3e-3, "model.stem_channels": 8}, "state": "complete", "score": 0.7},
    ]
    assert [r["number"] for r in ranked(results, "maximize")] == [2, 0, 1]
    assert [r["number"] for r in ranked(results, "minimize")] == [0, 2, 1]
    folder = tmp_path / "reports"
    folder.mkdir()
    paths = write_reports(results, cfg, base, folder)
    table = paths["markdown"].read_text().splitlines()
    assert table[4].startswith("| 1 | 2 | complete | 0.7 |") and "too few windows" in table[6]
    assert paths["csv"].read_text().splitlines()[0].startswith("rank,trial,state,csi_1mm_mean,optim.lr")
    assert paths["plot"].stat().st_size > 0
    best = load_config(TrainConfig, paths["best"])  # a train config, ready for `nowcast train`
    assert best.optim.lr == 3e-3 and best.model.stem_channels == 8
    assert best.optim.max_steps == 20  # the train config's own schedule, not the search's budget


@pytest.mark.slow
def test_search_on_dask_records_a_failing_trial_and_resumes(tmp_path):
    store = tmp_path / "mock.zarr"
    write_mock_store(str(store), n_times=48, shape=(48, 48), chunk_time=8, missing=(20,))
    space = {"optim.batch_size": {"choices": [2, 512]}, "optim.lr": {"choices": [0.003, 0.01]}}
    cfg = tune_config(tmp_path, store, search={"sampler": "grid", "n_trials": 3, "space": space})
    summary = run_tune(cfg, "test")
    assert summary.ran == 3 and summary.n_complete == 2 and summary.n_failed == 1
    failed = next(r for r in summary.results if r["state"] == "failed")
    assert failed["params"]["optim.batch_size"] == 512 and "ConfigError" in failed["error"]
    assert "too few" in failed["error"]
    assert all(math.isfinite(r["score"]) and r["step"] == cfg.budget_steps for r in summary.results if r["score"])
    for kind in ("csv", "markdown", "plot", "best"):
        assert summary.paths[kind].exists()

    # a re-run runs nothing; one more trial in n_trials runs just that one; a trial whose result
    # was lost (killed before it was recorded) resumes from its checkpoint to the same score
    assert run_tune(cfg, "test").ran == 0
    lines = (summary.out_dir / RESULTS).read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if json.loads(line)["state"] == "complete")
    lost = json.loads(lines.pop(i))
    (summary.out_dir / RESULTS).write_text("\n".join(lines) + "\n")
    bigger = tune_config(tmp_path, store, search={"sampler": "grid", "n_trials": 4, "space": space})
    again = run_tune(bigger, "test")
    assert again.ran == 2 and len(again.results) == 4
    assert read_results(summary.out_dir)[lost["number"]]["score"] == lost["score"]
    with pytest.raises(ConfigError, match="another search"):
        run_tune(tune_config(tmp_path, store, budget_steps=3, search={"sampler": "grid", "space": space}), "test")
