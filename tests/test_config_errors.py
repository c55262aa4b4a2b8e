"""Bad configs stop every command before any work, with the key and the file named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from nowcast.cli import app
from nowcast.store import write_mock_store

runner = CliRunner()


def run(tmp_path: Path, command: str, config: dict, *extra: str):
    path = tmp_path / f"{command}.yaml"
    path.write_text(yaml.safe_dump(config))
    args = (
        [command, "--config", str(path), *extra]
        if command != "synth"
        else [command, str(tmp_path / "archive"), "--config", str(path), *extra]
    )
    result = runner.invoke(app, args)
    return result, path


def flat(text: str) -> str:
    return " ".join(text.split())


INGEST = {"source": {"paths": ["SRC"]}, "store": {"path": "STORE"}}
TRAIN = {
    "data": {"stores": ["STORE"], "crop_size": 32},
    "model": {"hidden_channels": [4, 8], "kernel_sizes": [3, 3], "downsample": [2], "stem_channels": 4},
    "optim": {"max_steps": 2, "num_workers": 0},
    "run": {"out_dir": "RUNS", "name": "t"},
}
CASES = [
    ("ingest", INGEST, ("store", "chunk_time"), "many", "store.chunk_time"),  # wrong type
    ("ingest", INGEST, ("store", "chunk_tme"), 4, "store.chunk_tme: unknown key"),  # unknown key
    ("ingest", INGEST, ("store", "chunk_space"), -5, "store.chunk_space"),  # negative size
    ("ingest", INGEST, ("source", "paths"), ["NOWHERE/*.h5"], "source.paths"),  # no such files
    ("ingest", INGEST, ("align", "pixel_size_m"), 0, "align.pixel_size_m"),
    ("train", TRAIN, ("optim", "batch_size"), "four", "optim.batch_size"),
    ("train", TRAIN, ("model", "hiden_channels"), [4], "model.hiden_channels: unknown key"),
    ("train", TRAIN, ("data", "crop_size"), -32, "data.crop_size"),
    ("train", TRAIN, ("data", "stores"), ["NOWHERE.zarr"], "data.stores"),  # store does not exist
    ("synth", {}, ("height",), -1, "height"),
    ("synth", {}, ("n_scanz",), 3, "n_scanz: unknown key"),
]


@pytest.mark.parametrize("command, base, key, value, expected", CASES, ids=[f"{c[0]}-{'.'.join(c[2])}" for c in CASES])
def test_bad_config_stops_before_work_naming_key_and_file(tmp_path, command, base, key, value, expected):
    store = tmp_path / "store.zarr"
    write_mock_store(str(store), n_times=24, shape=(32, 32))
    (tmp_path / "src").mkdir()
    config = yaml.safe_load(
        yaml.safe_dump(base)
        .replace("STORE", str(store))
        .replace("SRC", str(tmp_path / "src"))
        .replace("RUNS", str(tmp_path / "runs"))
        .replace("NOWHERE", str(tmp_path / "nowhere"))
    )
    node = config
    for part in key[:-1]:
        node = node.setdefault(part, {})
    node[key[-1]] = (
        value if not isinstance(value, list) else [str(v).replace("NOWHERE", str(tmp_path / "nowhere")) for v in value]
    )
    before = sorted(p.name for p in tmp_path.iterdir())
    result, path = run(tmp_path, command, config)
    output = flat(result.output + str(result.stderr_bytes or b"", "utf-8", "ignore"))
    assert result.exit_code == 2, output
    assert expected in output and path.name in output, output
    assert "Traceback" not in output
    assert sorted(p.name for p in tmp_path.iterdir()) == before + [path.name] or sorted(
        p.name for p in tmp_path.iterdir()
    ) == sorted(before + [path.name])  # nothing else was made


def test_logs_go_to_stderr_and_a_log_file_unwrapped(tmp_path):
    """Redirected output: messages on stderr, one line each (a long path is never split), and a copy in --log-file."""
    import subprocess
    import sys

    deep = tmp_path / ("a-long-folder-name-" * 6) / "missing-input"
    log_file = tmp_path / "logs" / "nowcast.log"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nowcast",
            "--log-file",
            str(log_file),
            "predict",
            "--method",
            "sprog",
            "--input",
            str(deep),
            "--out",
            str(tmp_path / "f.nc"),
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2 and done.stdout == ""
    error = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(error) == 1 and str(deep) in error[0]
    assert str(deep) in log_file.read_text()
