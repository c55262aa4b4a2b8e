"""Security: no code runs from configs or checkpoints, no shell, outputs only where the user said."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from nowcast.config import load_config
from nowcast.errors import ConfigError
from nowcast.ingest.config import IngestConfig
from nowcast.ingest.run import run_ingest
from tests.cf_archive import write_cf_file

ROOT = Path(__file__).resolve().parents[1]


def test_yaml_python_tags_are_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    config = tmp_path / "evil.yaml"
    config.write_text(f"source: !!python/object/apply:os.system ['touch {marker}']\nstore: {{path: x}}\n")
    with pytest.raises(ConfigError, match="evil.yaml"):
        load_config(IngestConfig, config)
    assert not marker.exists()


def test_no_shell_eval_or_unsafe_loading_in_the_package():
    unsafe = re.compile(
        r"shell\s*=\s*True|(?<![.\w])eval\(|(?<![.\w])exec\(|yaml\.load\(|yaml\.unsafe_load|weights_only\s*=\s*False"
        r"|os\.system\(|pickle\.loads?\((?!pickle\.dumps)"
    )
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted((ROOT / "nowcast").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if unsafe.search(line)
    ]
    assert found == []
    loads = [p for p in (ROOT / "nowcast").rglob("*.py") if "torch.load(" in p.read_text()]
    for path in loads:
        for call in re.findall(r"torch\.load\([^)]*\)", path.read_text()):
            assert "weights_only=True" in call, f"{path}: {call}"


def test_names_inside_radar_files_never_become_output_paths(tmp_path):
    """A file whose attributes hold path-like text writes nothing outside the store."""
    src, outside = tmp_path / "src", tmp_path / "outside"
    src.mkdir()
    outside.mkdir()
    rain = np.ones((16, 16), np.float32)
    path = write_cf_file(src / "radar_202406010000.nc", np.datetime64("2024-06-01T00:00"), rain)
    import netCDF4

    with netCDF4.Dataset(path, "r+") as ds:
        escape = f"../../{outside.name}/escaped"
        ds.title = escape
        ds.source = escape
        ds["rainfall_rate"].long_name = escape
    before = set(tmp_path.rglob("*"))
    config = IngestConfig.model_validate(
        {"source": {"paths": [str(src)]}, "store": {"path": str(tmp_path / "s.zarr")}, "engine": {"name": "serial"}}
    )
    assert run_ingest(config, progress=False).counts["ingested"] == 1
    created = set(tmp_path.rglob("*")) - before
    assert created and all(p.is_relative_to(tmp_path / "s.zarr") for p in created), sorted(created)
    assert list(outside.iterdir()) == []
