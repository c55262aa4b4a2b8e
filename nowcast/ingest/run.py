"""The ingest orchestrator: plan on the driver, map chunk jobs on an engine, record the result.

1. list the source files; skip those the store's manifest already holds;
2. give each new file a row on the store's regular time axis (from its name, or by reading it);
3. create the store template, or grow its time axis (driver only, before any task runs);
4. one job per time chunk, mapped on the engine; each job writes its chunk and its manifest part;
5. fold the manifest parts; report what was ingested, quarantined or skipped.

A run killed at any point loses nothing: a re-run reads again exactly the files whose chunk
was not recorded, and rewrites those chunks whole.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import fsspec
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nowcast import store
from nowcast.config import dump_config
from nowcast.errors import ReaderError, StoreError
from nowcast.ingest import manifest
from nowcast.ingest.align import SpatialPlan, plan_spatial
from nowcast.ingest.config import IngestConfig
from nowcast.ingest.engines import Engine, open_engine
from nowcast.ingest.lock import store_lock
from nowcast.ingest.manifest import INCOMPLETE, INGESTED, QUARANTINED, Record
from nowcast.ingest.readers import read_scan
from nowcast.ingest.sources import SourceFile, list_sources, time_from_name
from nowcast.ingest.tasks import ChunkJob, ChunkResult, FileJob, ingest_chunk, target_index

log = logging.getLogger(__name__)
PROBE_BATCH = 64


@dataclass
class IngestSummary:
    store_path: str
    n_sources: int = 0
    n_new: int = 0
    counts: Counter = field(default_factory=Counter)
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    failed_chunks: list[str] = field(default_factory=list)
    n_times: int = 0
    n_valid: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed_chunks


def _probe_times(paths: list[str], reader) -> list[tuple[str, str | None, str]]:
    """Read the valid time of each file (for archives whose names carry none)."""
    out = []
    for path in paths:
        try:
            scan = read_scan(path, reader)
            out.append((path, str(scan.time), "", scan.grid))
        except ReaderError as e:
            out.append((path, None, str(e), None))
    return out


def _plan_times(
    new: list[SourceFile], config: IngestConfig, engine: Engine
) -> tuple[dict[str, np.datetime64], list[Record]]:
    times: dict[str, np.datetime64] = {}
    to_probe = []
    for src in new:
        t = time_from_name(src.path) if config.source.time_from_name else None
        if t is None:
            to_probe.append(src.path)
        else:
            times[src.path] = t
    bad: list[Record] = []
    if to_probe:
        log.info("reading the valid time of %d files whose names carry none", len(to_probe))
        by_path = {s.path: s for s in new}
        for path, t, reason, _ in _probe(to_probe, config, engine):
            if t is None:
                src = by_path[path]
                bad.append(Record(path, src.size, src.mtime, QUARANTINED, reason=reason))
            else:
                times[path] = np.datetime64(t, "s")
    return times, bad


def _probe(paths: list[str], config: IngestConfig, engine: Engine):
    """Read ``paths`` on the engine in batches; yields (path, time or None, reason, grid or None)."""
    batches = [paths[i : i + PROBE_BATCH] for i in range(0, len(paths), PROBE_BATCH)]
    for batch, outcome in engine.map_unordered(_ProbeBatch(config.source.reader), batches):
        if isinstance(outcome, Exception):
            outcome = [(p, None, f"{p}: {outcome}", None) for p in batch]
        yield from outcome


class _ProbeBatch:
    """Picklable callable for the engines: probe the times of a batch of files."""

    def __init__(self, reader):
        self.reader = reader

    def __call__(self, paths):
        return _probe_times(paths, self.reader)


OUTLIER_GAP = np.timedelta64(7, "D")


def _stored_span(path: str) -> list[np.datetime64]:
    reader = store.StoreReader(path)
    valid_times = reader.times[reader.valid]
    return [valid_times[0], valid_times[-1]] if len(valid_times) else []


def _split_outlying_times(
    times: dict[str, np.datetime64], anchors: list[np.datetime64]
) -> tuple[dict[str, np.datetime64], list[str]]:
    """Split planned times into the trusted ones and files to read before they stretch the axis.

    Rows are planned from file names, before files are read; a stray file of another year
    (or another network) would otherwise grow the store by years of empty rows. Times are
    split where they jump by more than a week; the group holding the stored times (or the
    largest group, for a new store) is trusted.
    """
    if not times:
        return times, []
    points = sorted([(t, p) for p, t in times.items()] + [(t, None) for t in anchors], key=lambda x: x[0])
    groups: list[list[tuple[np.datetime64, str | None]]] = [[points[0]]]
    for prev, cur in zip(points, points[1:]):
        if cur[0] - prev[0] > OUTLIER_GAP:
            groups.append([])
        groups[-1].append(cur)
    trusted_groups = [g for g in groups if any(p is None for _, p in g)] or [max(groups, key=len)]
    trusted = {p: t for g in trusted_groups for t, p in g if p is not None}
    return trusted, [p for p in times if p not in trusted]


def _check_doubtful(
    doubtful: list[str],
    times: dict[str, np.datetime64],
    source_grid,
    new: list[SourceFile],
    config: IngestConfig,
    engine: Engine,
) -> list[Record]:
    """Read the outlying files; quarantine those unreadable, of another time or another grid."""
    log.info("reading %d files whose times lie weeks away from the rest before planning them", len(doubtful))
    by_path = {s.path: s for s in new}
    bad = []
    for file_path, t, reason, grid in _probe(doubtful, config, engine):
        if t is not None and np.datetime64(t, "s") != times[file_path]:
            reason = f"{file_path}: valid time {t} in the file differs from the time {times[file_path]} in its name"
        elif grid is not None and not grid.same_as(source_grid):
            reason = f"{file_path}: grid {grid.describe()} differs from the source grid {source_grid.describe()}"
        elif t is not None:
            continue
        src = by_path[file_path]
        bad.append(Record(file_path, src.size, src.mtime, QUARANTINED, time=t, reason=reason))
    return bad


def _source_grid_from(new: list[SourceFile], times: dict, config: IngestConfig):
    """The source grid, read from the first new file that reads (in time order)."""
    for src in sorted((s for s in new if s.path in times), key=lambda s: times[s.path]):
        try:
            return read_scan(src.path, config.source.reader).grid
        except ReaderError as e:
            log.debug("grid probe: %s", e)
    return None


def _layout_for(
    config: IngestConfig,
    spatial: SpatialPlan,
    times: list[np.datetime64],
    scans_per_step: int,
    existing: store.StoreLayout | None,
) -> store.StoreLayout:
    step = config.align.time_step_s
    if existing is not None:
        problems = []
        if existing.time_step_s != step:
            problems.append(f"time step {existing.time_step_s} s in the store, {step} s in the config")
        if not existing.grid.same_as(spatial.target):
            problems.append(f"grid {existing.grid.describe()} in the store, {spatial.target.describe()} from the files")
        if existing.chunk_time != config.store.chunk_time:
            problems.append(f"chunk_time {existing.chunk_time} in the store, {config.store.chunk_time} in the config")
        if problems:
            raise StoreError(
                f"{config.store.path} does not match this ingest: "
                + "; ".join(problems)
                + ". Ingest into a new store, or align the config with the store."
            )
        return existing
    epoch_steps = [store.to_epoch_s(t) / step for t in times]
    first = int(np.min(np.ceil(epoch_steps) if scans_per_step > 1 else np.round(epoch_steps)))
    origin = store.from_epoch_s(first * step)[()]
    return store.StoreLayout(spatial.target, origin, step, config.store.chunk_time, config.store.chunk_space)


def _store_exists(path: str) -> bool:
    """True for a usable store; a template half-made by a killed run counts as absent."""
    fs, root = fsspec.core.url_to_fs(path)
    if not fs.exists(f"{root}/zarr.json"):
        return False
    try:
        group = store.zarr.open_group(path, mode="r", zarr_format=3)
        if store.template_complete(group):
            return True
    except Exception:  # noqa: BLE001 - unreadable metadata from a killed run
        pass
    if fs.exists(f"{root}/{manifest.MANIFEST_DIR}"):
        raise StoreError(f"{path} has a manifest but its metadata is damaged; restore it or ingest into a new store")
    log.warning("%s holds an unfinished store template from an interrupted run: recreating it", path)
    return False


def run_ingest(config: IngestConfig, progress: bool = True) -> IngestSummary:
    """Ingest the configured sources into the configured store (see the module docstring)."""
    path = config.store.path
    if "://" not in path:  # workers resolve relative paths against their own working folders
        path = os.path.abspath(path)
        config = config.model_copy(update={"store": config.store.model_copy(update={"path": path})})
    summary = IngestSummary(path)
    sources = list_sources(config.source.paths, config.source.exclude)
    summary.n_sources = len(sources)
    with store_lock(path):
        exists = _store_exists(path)
        seen = manifest.read_manifest(path) if exists else {}
        new = [s for s in sources if s.path not in seen or seen[s.path].status == INCOMPLETE]
        changed = [
            s for s in sources if s.path in seen and seen[s.path].status != INCOMPLETE and (seen[s.path].size != s.size)
        ]
        for src in changed:
            log.warning(
                "%s changed since it was ingested; its time is not written twice (ingest it into a new store "
                "to use the new content)",
                src.path,
            )
        summary.n_new = len(new)
        log.info("%d source files, %d already in the store, %d new", len(sources), len(sources) - len(new), len(new))
        if not new:
            _finish(summary, path)
            return summary
        run_id = manifest.new_run_id()
        with open_engine(config.engine) as engine:
            times, probe_failures = _plan_times(new, config, engine)
            records = list(probe_failures)
            anchors = _stored_span(path) if exists else []
            trusted, doubtful = _split_outlying_times(times, anchors)
            source_grid = _source_grid_from(new, trusted, config) or _source_grid_from(
                new, {p: times[p] for p in doubtful}, config
            )
            if doubtful and source_grid is not None:
                bad = _check_doubtful(doubtful, times, source_grid, new, config, engine)
                records += bad
                times = {p: t for p, t in times.items() if p not in {r.path for r in bad}}
            if source_grid is None:
                records += [
                    Record(s.path, s.size, s.mtime, QUARANTINED, reason=f"{s.path}: not readable")
                    for s in new
                    if s.path in times
                ]
                if exists:
                    manifest.write_part(path, run_id, "plan", records)
                    manifest.fold_run(path, run_id)
                _report(summary, records)
                raise StoreError(
                    f"none of the {len(new)} new files could be read; nothing was written "
                    f"(first reason: {records[0].reason if records else 'none'})"
                )
            spatial = plan_spatial(source_grid, config.align)
            scans_per_step = config.align.scans_per_step
            root = store.open_group(path, mode="r+") if exists else None
            layout = _layout_for(
                config,
                spatial,
                list(times.values()),
                scans_per_step,
                store.read_layout(root) if root is not None else None,
            )
            by_chunk: dict[int, list[FileJob]] = defaultdict(list)
            max_index = -1
            by_path = {s.path: s for s in new}
            for file_path, t in sorted(times.items(), key=lambda kv: (kv[1], kv[0])):
                src = by_path[file_path]
                index = target_index(layout, t, scans_per_step, config.align.tolerance_s)
                if index is None or index < 0:
                    why = (
                        "is not on the time grid"
                        if index is None
                        else f"is before the store's first time {layout.time_origin}; ingest it into a new store"
                    )
                    records.append(
                        Record(
                            src.path,
                            src.size,
                            src.mtime,
                            QUARANTINED,
                            time=str(t),
                            reason=f"{src.path}: time {t} {why}",
                        )
                    )
                    continue
                by_chunk[layout.chunk_of(index)].append(FileJob(src, index))
                max_index = max(max_index, index)
            if root is None:
                root = store.create_store(
                    path,
                    layout,
                    max_index + 1,
                    attrs={"source": ", ".join(config.source.paths), "ingest_config": dump_config(config)},
                )
                log.info(
                    "created %s: %s, %d s step from %s",
                    path,
                    layout.grid.describe(),
                    layout.time_step_s,
                    layout.time_origin,
                )
            n_times = store.ensure_length(root, layout, max_index + 1)
            if records:
                manifest.write_part(path, run_id, "plan", records)
            jobs = _chunk_jobs(by_chunk, seen, sources, layout, n_times, run_id, spatial, scans_per_step, config)
            log.info(
                "ingesting %d files into %d time chunks with the %s engine",
                sum(len(j.files) for j in jobs),
                len(jobs),
                engine.name,
            )
            records += _run_jobs(engine, jobs, summary, progress)
            if not summary.failed_chunks:  # rows planned for files that turned out bad are given back
                store.trim_trailing_missing(root, layout)
        manifest.fold_run(path, run_id)
        _report(summary, records)
        _finish(summary, path)
        _save_config(config, path)
    return summary


def _chunk_jobs(
    by_chunk: dict[int, list[FileJob]],
    seen: dict[str, Record],
    sources: list[SourceFile],
    layout: store.StoreLayout,
    n_times: int,
    run_id: str,
    spatial: SpatialPlan,
    scans_per_step: int,
    config: IngestConfig,
) -> list[ChunkJob]:
    """One job per time chunk with new files; the chunk's known files go along to rebuild it whole."""
    present = {s.path: s for s in sources}
    known_by_chunk: dict[int, list[Record]] = defaultdict(list)
    for record in seen.values():
        if record.status == INGESTED and record.index is not None:
            known_by_chunk[layout.chunk_of(record.index)].append(record)
    jobs = []
    for chunk, new_files in sorted(by_chunk.items()):
        start, stop = store.chunk_bounds(layout, chunk, n_times)
        known, keep = [], []
        for record in sorted(known_by_chunk.get(chunk, []), key=lambda r: r.path):
            src = present.get(record.path)
            if src is not None and src.size == record.size:
                known.append(FileJob(src, record.index, known=True))
            else:  # gone or changed since: its row stays as stored, never written twice
                keep.append(record.index)
        jobs.append(
            ChunkJob(
                store_path=config.store.path,
                run_id=run_id,
                chunk=chunk,
                start=start,
                stop=stop,
                files=tuple(known + sorted(new_files, key=lambda f: f.source.path)),
                layout=layout,
                spatial=spatial,
                reader=config.source.reader,
                scans_per_step=scans_per_step,
                tolerance_s=config.align.tolerance_s,
                keep_rows=tuple(keep),
            )
        )
    return jobs


def _run_jobs(engine: Engine, jobs: list[ChunkJob], summary: IngestSummary, progress: bool) -> list[Record]:
    records: list[Record] = []
    columns = (
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("ingest", total=len(jobs))
        for job, outcome in engine.map_unordered(ingest_chunk, jobs):
            if isinstance(outcome, ChunkResult):
                records += outcome.records
            else:
                summary.failed_chunks.append(str(outcome))
                log.error("chunk %d failed: %s", job.chunk, outcome)
            bar.advance(task)
    return records


def _report(summary: IngestSummary, records: list[Record]) -> None:
    summary.counts.update(r.status for r in records)
    summary.quarantined += [(r.path, r.reason) for r in records if r.status == QUARANTINED]


def _finish(summary: IngestSummary, path: str) -> None:
    root = store.open_group(path)
    valid = np.asarray(root[store.VALID][:], dtype=bool)
    summary.n_times, summary.n_valid = len(valid), int(valid.sum())


def _save_config(config: IngestConfig, path: str) -> None:
    """The resolved config beside the store's data, as every run does."""
    fs, root = fsspec.core.url_to_fs(path)
    fs.pipe_file(f"{root}/ingest-config.yaml", dump_config(config).encode())
