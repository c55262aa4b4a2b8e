"""atomic_write: the final name holds the old content or the new, never half, and no temp file stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from nowcast.atomic import atomic_write


def test_writes_through_a_hidden_unique_name_then_renames(tmp_path):
    out = tmp_path / "sub" / "report.json"
    seen = []
    for _ in range(2):
        with atomic_write(out) as tmp:
            seen.append(tmp)
            assert tmp.parent == out.parent and tmp.name.startswith(".report.json.") and tmp.name.endswith(".tmp")
            tmp.write_text("new")
            assert not out.exists() or out.read_text() == "new"
    assert seen[0] != seen[1]  # unique per write, never a fixed name
    assert out.read_text() == "new" and [p.name for p in out.parent.iterdir()] == ["report.json"]


def test_failure_leaves_no_temp_and_the_old_file_intact(tmp_path):
    out = tmp_path / "forecast.nc"
    out.write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_write(out) as tmp:
            tmp.write_text("half of a")
            raise RuntimeError("disk on fire")
    assert out.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["forecast.nc"]


def test_a_block_that_writes_nothing_fails_and_leaves_the_old_file(tmp_path):
    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(FileNotFoundError):
        with atomic_write(out):
            pass
    assert out.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_suffix_keeps_the_extension_for_writers_that_need_it(tmp_path):
    with atomic_write(tmp_path / "panel.png", suffix=".png") as tmp:
        assert tmp.suffix == ".png"
        tmp.write_bytes(b"\x89PNG")
    assert (tmp_path / "panel.png").read_bytes() == b"\x89PNG"


def test_a_folder_replaces_a_folder_and_a_failed_one_is_removed(tmp_path):
    out = tmp_path / "forecast.zarr"
    for text in ("first", "second"):
        with atomic_write(out) as tmp:
            (tmp / "group").mkdir(parents=True)
            (tmp / "group" / "zarr.json").write_text(text)
    assert (out / "group" / "zarr.json").read_text() == "second"
    with pytest.raises(ValueError):
        with atomic_write(out) as tmp:
            (tmp / "group").mkdir(parents=True)
            raise ValueError("encoding")
    assert (out / "group" / "zarr.json").read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["forecast.zarr"]


def test_write_file_on_a_local_file_system_goes_through_a_rename(tmp_path, monkeypatch):
    import fsspec

    from nowcast import atomic

    fs = fsspec.filesystem("file")
    renamed = []
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: renamed.append(b) or Path.rename(Path(a), b))
    atomic.write_file(fs, str(tmp_path / "run.json"), b"[]")
    assert (tmp_path / "run.json").read_bytes() == b"[]" and renamed == [tmp_path / "run.json"]
