"""The command line's option handling: conflicting flags stop with both named, baselines by one name."""

from __future__ import annotations

import pytest
import typer

from nowcast.cli import _baseline_names, _engine_overrides
from nowcast.errors import ConfigError


@pytest.mark.parametrize(
    ("command", "flags", "named"),
    [
        ("ingest", ["--engine", "dask", "--master", "yarn"], ["--engine dask", "--master yarn"]),
        (
            "ingest",
            ["--engine", "serial", "--master", "spark://h:7077"],
            ["--engine serial", "--master spark://h:7077"],
        ),
        ("ingest", ["--engine", "spark", "--address", "tcp://h:8786"], ["--engine spark", "--address tcp://h:8786"]),
        ("ingest", ["--master", "yarn", "--address", "tcp://h:8786"], ["--master yarn", "--address tcp://h:8786"]),
        ("tune", ["--engine", "dask", "--master", "yarn"], ["--engine dask", "--master yarn"]),
        ("tune", ["--engine", "spark", "--scheduler", "tcp://h:8786"], ["--engine spark", "--scheduler tcp://h:8786"]),
        ("tune", ["--master", "yarn", "--scheduler", "tcp://h:8786"], ["--master yarn", "--scheduler tcp://h:8786"]),
    ],
)
def test_conflicting_engine_flags_are_an_error_naming_both(tmp_path, command, flags, named, cli):
    done = cli(command, "--config", tmp_path / "unused.yaml", *flags)
    assert done.exit_code == 2
    text = " ".join(done.output.split())  # the usage box may wrap
    assert all(flag in text for flag in named), done.output


def test_engine_flags_become_overrides():
    assert _engine_overrides(None, "yarn", None) == ["engine.spark.master=yarn", "engine.name=spark"]
    assert _engine_overrides("spark", "yarn", None) == ["engine.name=spark", "engine.spark.master=yarn"]
    assert _engine_overrides(None, None, "tcp://h:8786") == ["engine.address=tcp://h:8786", "engine.name=dask"]
    assert _engine_overrides("serial", None, None) == ["engine.name=serial"]
    with pytest.raises(typer.BadParameter, match="--engine dask conflicts with --master yarn"):
        _engine_overrides("dask", "yarn", None)


def test_baselines_one_option_checked_by_the_registry():
    default = ["persistence", "extrapolation"]
    assert _baseline_names(None, None, default) == default
    assert _baseline_names(["sprog", "persistence"], None, default) == ["sprog", "persistence"]
    assert _baseline_names(["none"], None, default) == []
    assert _baseline_names(None, "persistence, sprog", default) == ["persistence", "sprog"]  # deprecated spelling
    assert _baseline_names(None, "", default) == []
    available = "available: extrapolation, nowcast-sprog, persistence, sprog"
    with pytest.raises(ConfigError, match=f"unknown baseline 'nope'; {available}"):
        _baseline_names(["persistence", "nope"], None, default)
    with pytest.raises(typer.BadParameter, match="'none' cannot be combined"):
        _baseline_names(["none", "sprog"], None, default)


def test_demo_evaluates_from_where_its_training_config_holds_out(tmp_path):
    import numpy as np

    from nowcast.demo import _held_out_start
    from nowcast.store import write_mock_store

    reader = write_mock_store(str(tmp_path / "mock.zarr"), n_times=40, missing=(3,))
    valid_times = reader.times[reader.valid]  # 39; configs/train/demo.yaml holds out val_fraction 0.2: the last 8
    assert (
        _held_out_start(tmp_path / "mock.zarr") == str(valid_times[-8]) == str(np.datetime64("2024-06-01T02:40", "s"))
    )
