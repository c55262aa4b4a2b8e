"""nowcast predict --members and nowcast evaluate --members: the files, their CF layout, the scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from nowcast.cli import app
from nowcast.errors import ConfigError
from nowcast.predict.ensemble import parse_thresholds
from nowcast.store import write_mock_store
from tests.predict_helpers import write_checkpoint


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_mock_store(str(tmp_path_factory.mktemp("ens") / "mock.zarr"), n_times=24, shape=(48, 56))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.pt")


def invoke(*args):
    return CliRunner(env={"COLUMNS": "250"}).invoke(app, [str(a) for a in args])


def test_predict_members_writes_members_probabilities_and_mean(store, ckpt, tmp_path):
    out = tmp_path / "f.nc"
    args = ["predict", "--checkpoint", ckpt, "--input", store.path, "--out", out, "--members", 4, "--seed", 3]
    done = invoke(*args, "--probabilities", "1,5", "--plot")
    assert done.exit_code == 0, done.output
    assert out.with_suffix(".probabilities.png").is_file()
    with xr.open_dataset(out) as ds:
        members = ds["rainfall_rate_members"].values
        assert ds["rainfall_rate_members"].dims == ("realization", "time", "y", "x")
        assert members.shape == (4, 4, 48, 56)
        assert ds["realization"].attrs["standard_name"] == "realization"
        probability = ds["probability_of_rainfall_rate_above_threshold"]
        assert probability.dims == ("threshold", "time", "y", "x")
        assert ds["threshold"].values.tolist() == [1.0, 5.0]
        assert ds["threshold"].attrs["units"] == "mm h-1"
        assert ds["threshold"].attrs["spp__relative_to_threshold"] == "greater_than_or_equal_to"
        assert probability.attrs["units"] == "1"
        both = np.isfinite(probability.values[0])
        expected = (members >= 1.0).mean(axis=0)
        np.testing.assert_allclose(probability.values[0][both], expected[both], atol=1e-6)
        np.testing.assert_allclose(ds["rainfall_rate"].values[both], members.mean(axis=0)[both], atol=0.01)
        assert ds["rainfall_rate"].attrs["cell_methods"] == "realization: mean"
        assert ds.attrs["ensemble_members"] == 4 and ds.attrs["ensemble_seed"] == 3
        assert ds.attrs["ensemble_centre"] == "S-PROG (the model is not a cascade)"  # the tiny model is a ConvLSTM
        assert (members[np.isfinite(members)] >= 0).all() and np.isnan(members).any()
    again = tmp_path / "g.zarr"
    assert invoke(*[a if a != out else again for a in args], "--probabilities", "1,5").exit_code == 0
    with xr.open_dataset(again, engine="zarr", consolidated=False) as ds:  # same seed, same members, in either format
        np.testing.assert_allclose(ds["rainfall_rate_members"].values, members, atol=0.006, equal_nan=True)


def test_predict_members_refuses_bad_probabilities(store, ckpt, tmp_path):
    done = invoke(
        "predict", "--checkpoint", ckpt, "--input", store.path, "--out", tmp_path / "f.nc", "--members", 3,
        "--probabilities", "1,x",
    )  # fmt: skip
    assert done.exit_code == 2 and "--probabilities" in done.output
    assert not (tmp_path / "f.nc").exists()
    with pytest.raises(ConfigError):
        parse_thresholds("0,1")
    assert parse_thresholds("5, 1,1") == (1.0, 5.0)


def test_evaluate_members_scores_the_ensemble_and_steps(store, ckpt, tmp_path):
    out = tmp_path / "scores"
    done = invoke(
        "evaluate", "--checkpoint", ckpt, "--store", store.path, "--out", out, "--leads", 3, "--max-starts", 2,
        "--stride", 3, "--members", 4, "--baselines", "persistence",
        "ensemble.noise_scale=0", "ensemble.motion_scale=0",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert {"ensemble.json", "ensemble.md", "ensemble.png", "scores.json"} <= {p.name for p in out.iterdir()}
    scores = json.loads((out / "ensemble.json").read_text())
    assert list(scores["methods"]) == ["model ensemble", "steps"] and scores["n_members"] == 4
    for method in scores["methods"].values():
        assert len(method["CRPS"]) == 3 and all(v >= 0 for v in method["CRPS"])
        assert len(method["rank_histogram"][0]) == 5
    assert "CRPS" in scores["comparisons"]["steps"]
    # the config's ensemble section reaches the members: unperturbed, they are all the control
    assert all(v == 0 for v in scores["methods"]["model ensemble"]["spread"])
    assert all(v > 0 for v in scores["methods"]["steps"]["spread"])
    assert "## CRPS" in done.output
