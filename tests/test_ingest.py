"""Ingest end to end on small CF archives with known contents: values, gaps, re-runs, appends."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from nowcast import store
from nowcast.config import validate
from nowcast.errors import ConfigError, StoreError
from nowcast.ingest import manifest
from nowcast.ingest.config import IngestConfig
from nowcast.ingest.run import run_ingest
from tests.cf_archive import write_archive, write_cf_file


def make_config(src: Path, dst: Path, engine: str = "serial", **align) -> IngestConfig:
    return validate(
        IngestConfig,
        {
            "source": {"paths": [str(src)]},
            "store": {"path": str(dst), "chunk_time": 4, "chunk_space": 16},
            "align": align,
            "engine": {"name": engine, "n_workers": 2},
        },
    )


def store_bytes(path: Path) -> dict[str, str]:
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(path))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_ingest_writes_known_values_and_keeps_gaps(tmp_path):
    fields = write_archive(tmp_path / "src", 11, missing=(3, 7))
    summary = run_ingest(make_config(tmp_path / "src", tmp_path / "s.zarr"), progress=False)
    assert summary.counts["ingested"] == 9 and not summary.quarantined
    reader = store.StoreReader(str(tmp_path / "s.zarr"))
    assert reader.n_times == 11
    assert reader.valid.tolist() == [i not in (3, 7) for i in range(11)]
    data = reader.read(0, 11)
    for i, expected in fields.items():
        np.testing.assert_allclose(data[i], expected, atol=0.005)  # lossless to 0.01 mm/h
        assert np.array_equal(np.isnan(data[i]), np.isnan(expected))  # no-data stays no-data
        assert (data[i] == 0).sum() == (expected == 0).sum()  # dry stays dry, distinct from no-data
    assert np.isnan(data[3]).all() and np.isnan(data[7]).all()  # a missing scan is never invented
    assert str(reader.times[0]) == "2024-06-01T00:00:00"
    assert reader.layout.time_step_s == 300 and reader.grid.pixel_size == 1000.0
    assert "+proj=laea" in reader.attrs["crs"]


def test_rerun_writes_nothing_and_append_extends(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "s.zarr"
    write_archive(src, 6)
    config = make_config(src, dst)
    run_ingest(config, progress=False)
    before = store_bytes(dst)
    again = run_ingest(config, progress=False)
    assert again.n_new == 0 and sum(again.counts.values()) == 0
    assert store_bytes(dst) == before

    later = write_archive(src, 5, first_index=8)  # steps 8..12 arrive later; 6 and 7 never do
    summary = run_ingest(config, progress=False)
    assert summary.n_new == 5 and summary.counts["ingested"] == 5
    reader = store.StoreReader(str(dst))
    assert reader.n_times == 13
    assert reader.valid.tolist() == [True] * 6 + [False] * 2 + [True] * 5
    np.testing.assert_allclose(reader.read(12, 13)[0], later[12], atol=0.005)
    recorded = manifest.read_manifest(str(dst))
    assert len(recorded) == 11 and {r.status for r in recorded.values()} == {"ingested"}
    assert sorted(r.index for r in recorded.values()) == [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12]


def test_damaged_files_are_quarantined_and_good_ones_land(tmp_path):
    src = tmp_path / "src"
    fields = write_archive(src, 8)
    good = sorted(src.iterdir())
    (src / "radar_202406010040.nc").write_bytes(good[0].read_bytes()[:500])  # truncated copy
    (src / "radar_202406010045.nc").write_bytes(b"")  # empty
    (src / "radar_202406010050.nc").write_bytes(os.urandom(4096))  # not a radar file
    summary = run_ingest(make_config(src, tmp_path / "s.zarr"), progress=False)
    assert summary.counts["ingested"] == 8
    assert summary.counts["quarantined"] == 3
    reasons = dict(summary.quarantined)
    for name in ("radar_202406010040.nc", "radar_202406010045.nc", "radar_202406010050.nc"):
        path = str((src / name).resolve())
        assert name in reasons[path]  # the reason names the file
    reader = store.StoreReader(str(tmp_path / "s.zarr"))
    assert reader.valid[:8].all() and not reader.valid[8:].any()
    np.testing.assert_allclose(reader.read(5, 6)[0], fields[5], atol=0.005)
    assert sum(r.status == "quarantined" for r in manifest.read_manifest(str(tmp_path / "s.zarr")).values()) == 3


def test_duplicate_time_is_not_written_twice(tmp_path):
    src = tmp_path / "src"
    write_archive(src, 4)
    run_ingest(make_config(src, tmp_path / "s.zarr"), progress=False)
    other = np.full((32, 40), 99.0, np.float32)
    write_cf_file(src / "copy_of_202406010005.nc", np.datetime64("2024-06-01T00:05"), other)
    summary = run_ingest(make_config(src, tmp_path / "s.zarr"), progress=False)
    assert summary.counts == {"duplicate": 1}
    assert np.nanmax(store.StoreReader(str(tmp_path / "s.zarr")).read(1, 2)) < 99


def test_coarsen_and_average_to_coarser_step(tmp_path):
    src = tmp_path / "src"
    fields = write_archive(src, 8, shape=(32, 40), pixel_size=500.0)
    config = make_config(
        src,
        tmp_path / "s.zarr",
        pixel_size_m=1000.0,
        time_step_s=600,
        source_time_step_s=300,
        min_valid_fraction=1.0,
    )
    summary = run_ingest(config, progress=False)
    reader = store.StoreReader(str(tmp_path / "s.zarr"))
    assert reader.grid.shape == (16, 20) and reader.grid.pixel_size == 1000.0
    # the 10-min step ending at 00:10 averages the scans of 00:05 and 00:10
    assert str(reader.times[0]) == "2024-06-01T00:00:00" and not reader.valid[0]  # 00:00 alone: incomplete
    assert summary.counts["incomplete"] == 2  # 00:00 and 00:35 (its step ends at 00:40) wait for partners
    assert reader.valid.tolist() == [False, True, True, True]  # the incomplete last step is not kept

    def block_mean(a):
        return a.reshape(16, 2, 20, 2).mean(axis=(1, 3))

    expected = (block_mean(fields[1]) + block_mean(fields[2])) / 2
    got = reader.read(1, 2)[0]
    np.testing.assert_allclose(got, expected, atol=0.006)
    assert np.array_equal(np.isnan(got), np.isnan(expected))


def test_store_mismatch_and_bad_config_stop_before_work(tmp_path):
    src = tmp_path / "src"
    write_archive(src, 4)
    run_ingest(make_config(src, tmp_path / "s.zarr"), progress=False)
    write_archive(tmp_path / "src2", 2, first_index=10, shape=(20, 20))
    with pytest.raises(StoreError, match="does not match"):
        run_ingest(make_config(tmp_path / "src2", tmp_path / "s.zarr"), progress=False)
    with pytest.raises(ConfigError, match="matches no file"):
        run_ingest(make_config(tmp_path / "nowhere", tmp_path / "t.zarr"), progress=False)
    with pytest.raises(ConfigError, match="store.chunk_time"):
        validate(IngestConfig, {"source": {"paths": ["x"]}, "store": {"path": "s", "chunk_time": -1}})
    unknown_reader = {"paths": [str(src)], "reader": {"format": "mrms"}}
    grib = validate(
        IngestConfig,
        {"source": unknown_reader, "store": {"path": str(tmp_path / "g.zarr")}, "engine": {"name": "serial"}},
    )
    with pytest.raises(
        ConfigError, match="source.reader.format: unknown reader 'mrms'; available: cf, grib, knmi, odim"
    ):
        run_ingest(grib, progress=False)  # not a quarantine of every file
    assert not (tmp_path / "g.zarr").exists()


def test_dask_engine_matches_serial(tmp_path):
    src = tmp_path / "src"
    write_archive(src, 10, missing=(4,))
    run_ingest(make_config(src, tmp_path / "serial.zarr", "serial"), progress=False)
    summary = run_ingest(make_config(src, tmp_path / "dask.zarr", "dask"), progress=False)
    assert summary.counts["ingested"] == 9
    a, b = store.StoreReader(str(tmp_path / "serial.zarr")), store.StoreReader(str(tmp_path / "dask.zarr"))
    assert np.array_equal(a.valid, b.valid)
    np.testing.assert_array_equal(a.read(0, 10), b.read(0, 10))


def test_renamed_config_keys_still_read_with_a_warning(caplog):
    old = {
        "source": {"paths": ["x"], "reader": {"max_rain_rate": 300}},
        "store": {"path": "s"},
        "align": {"time_step_minutes": 2.5, "source_time_step_minutes": 0.5, "time_tolerance_seconds": 20},
    }
    with caplog.at_level("WARNING", logger="nowcast.ingest.config"):
        config = validate(IngestConfig, old)
    assert config.source.reader.max_rain_mmh == 300
    assert (config.align.time_step_s, config.align.source_time_step_s, config.align.tolerance_s) == (150, 30, 20)
    assert config.align.scans_per_step == 5
    assert "align.time_step_minutes is deprecated: use align.time_step_s: 150" in caplog.text
    assert "source.reader.max_rain_rate is deprecated: use source.reader.max_rain_mmh: 300" in caplog.text
    with pytest.raises(ConfigError, match="give only time_step_s"):
        validate(IngestConfig, {**old, "align": {"time_step_minutes": 5, "time_step_s": 300}})
    with pytest.raises(ConfigError, match="whole multiple"):
        validate(IngestConfig, {**old, "align": {"time_step_s": 300, "source_time_step_s": 120}})


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[1].glob("configs/ingest/*.yaml")), ids=lambda p: p.name)
def test_shipped_ingest_configs_use_the_current_keys(path, caplog):
    from nowcast.config import load_config

    with caplog.at_level("WARNING", logger="nowcast.ingest.config"):
        load_config(IngestConfig, path)
    assert "deprecated" not in caplog.text


def test_plan_writes_nothing_and_execute_does_the_plan(tmp_path):
    from nowcast.ingest.engines.serial import SerialEngine
    from nowcast.ingest.run import execute, plan

    src, dst = tmp_path / "src", tmp_path / "s.zarr"
    fields = write_archive(src, 6)
    config = make_config(src, dst)
    first = plan(config, SerialEngine())
    assert not dst.exists() and not first.store_exists and first.n_new == 6 and first.n_times == 6
    assert [(job.chunk, job.start, job.stop, len(job.files)) for job in first.jobs] == [(0, 0, 4, 4), (1, 4, 6, 2)]
    execute(first, SerialEngine(), progress=False)
    np.testing.assert_allclose(store.StoreReader(str(dst)).read(5, 6)[0], fields[5], atol=0.005)

    write_archive(src, 2, first_index=6)
    (src / "radar_202406010040.nc").write_bytes(b"")  # a damaged file among the new ones
    before = store_bytes(dst)
    second = plan(config, SerialEngine())
    assert store_bytes(dst) == before  # planning an append changes nothing either
    assert second.n_new == 3 and second.n_times == 9
    # the chunk with new files goes with its known files, to be rebuilt whole
    assert [(job.chunk, [(f.index, f.known) for f in job.files]) for job in second.jobs] == [
        (1, [(4, True), (5, True), (6, False), (7, False)]),
        (2, [(8, False)]),
    ]
    summary = execute(second, SerialEngine(), progress=False)
    assert summary.counts == {"ingested": 2, "quarantined": 1}
    assert store.StoreReader(str(dst)).valid.tolist() == [True] * 8


def test_a_file_is_placed_without_touching_a_store(tmp_path):
    from nowcast.ingest.align import plan_spatial
    from nowcast.ingest.config import ReaderOptions
    from nowcast.ingest.readers import read_scan
    from nowcast.ingest.sources import list_sources
    from nowcast.ingest.tasks import ChunkJob, FileJob, JobContext, assemble_chunk, place_file

    src = tmp_path / "src"
    fields = write_archive(src, 2)
    (src / "radar_202406010010.nc").write_bytes(b"")
    good, other, damaged = list_sources([str(src)])
    grid = read_scan(good.path).grid
    layout = store.StoreLayout(grid, np.datetime64("2024-06-01T00:00", "s"), 300, 4, 16)
    context = JobContext(
        str(tmp_path / "absent.zarr"), "run", layout, plan_spatial(grid, make_config(src, src).align), ReaderOptions()
    )
    placed = place_file(FileJob(good, 0), context)
    assert placed.record.index == 0 and placed.record.status == "quarantined"  # settled by the assembly
    np.testing.assert_allclose(placed.field, fields[0], atol=0.005)
    misplaced = place_file(FileJob(other, 3), context)
    assert misplaced.field is None and "differs from the time" in misplaced.record.reason
    unreadable = place_file(FileJob(damaged, 2), context)
    assert unreadable.field is None and damaged.path in unreadable.record.reason and not unreadable.carry

    job = ChunkJob(context, 0, 0, 4, ())
    chunk = assemble_chunk(job, [placed, place_file(FileJob(good, 0), context), misplaced, unreadable])
    assert chunk.valid.tolist() == [True, False, False, False] and chunk.used_rows == {0}
    assert [r.status for r in chunk.records] == ["ingested", "duplicate", "quarantined", "quarantined"]
    assert not (tmp_path / "absent.zarr").exists()


def test_quarantined_file_read_again_once_changed(tmp_path):
    """A file quarantined while still being copied is read again when it changes, and fills its time."""
    src = tmp_path / "src"
    fields = write_archive(src, 4, shape=(16, 20))
    broken = sorted(src.glob("*.nc"))[2]
    good = broken.read_bytes()
    broken.write_bytes(good[: len(good) // 3])  # cut short, as a copy in progress
    cfg = make_config(src, tmp_path / "s.zarr")
    first = run_ingest(cfg, progress=False)
    assert first.counts["quarantined"] == 1 and first.counts["ingested"] == 3
    assert not store.StoreReader(str(tmp_path / "s.zarr")).valid[2]
    assert run_ingest(cfg, progress=False).n_new == 0  # unchanged: not read again
    broken.write_bytes(good)
    second = run_ingest(cfg, progress=False)
    assert second.counts["ingested"] == 1
    reader = store.StoreReader(str(tmp_path / "s.zarr"))
    assert reader.valid.all()
    np.testing.assert_allclose(reader.read(2, 3)[0], fields[2], atol=0.005)


def test_manifest_compacted_reads_the_same(tmp_path):
    """Many runs folded into one manifest file: the same records, and later ingests go on from it."""
    src = tmp_path / "src"
    write_archive(src, 6, shape=(16, 20))
    cfg = make_config(src, tmp_path / "s.zarr")
    files = sorted(src.glob("*.nc"))
    for f in files[:3]:  # one run per file, as nowcast watch does
        run_ingest(cfg.model_copy(update={"source": cfg.source.model_copy(update={"paths": [str(f)]})}), False)
    before = manifest.read_manifest(str(tmp_path / "s.zarr"))
    assert manifest.compact(str(tmp_path / "s.zarr")) == 3
    assert manifest.read_manifest(str(tmp_path / "s.zarr")) == before
    assert len(list((tmp_path / "s.zarr" / manifest.MANIFEST_DIR).glob("run-*.json"))) == 1
    assert run_ingest(cfg, progress=False).counts == {"ingested": 3}
