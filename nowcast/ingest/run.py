"""The ingest orchestrator: ``plan`` on the driver (writes nothing), then ``execute`` the plan.

``plan`` works out everything from the sources, the store and the config:
1. list the source files; skip those the store's manifest already holds;
2. give each new file a row on the store's regular time axis (from its name, or by reading it
   on the engine); files that cannot be placed are quarantined;
3. the store's layout (or check the existing one) and one job per time chunk.

``execute`` then does it:
4. create the store template, or grow its time axis (driver only, before any task runs);
5. map the chunk jobs on the engine; each job writes its chunk and its manifest part;
6. fold the manifest parts; report what was ingested, quarantined or skipped.

``run_ingest`` is the two under the store's lock. A run killed at any point loses nothing: a
re-run reads again exactly the files whose chunk was not recorded, and rewrites those chunks whole.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import fsspec
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nowcast import store
from nowcast.atomic import write_file
from nowcast.config import dump_config
from nowcast.errors import ReaderError, StoreError
from nowcast.ingest import manifest
from nowcast.ingest.align import SpatialPlan, plan_spatial
from nowcast.ingest.config import AlignConfig, EngineConfig, IngestConfig, ReaderOptions
from nowcast.ingest.engines import Engine, open_engine
from nowcast.ingest.lock import store_lock
from nowcast.ingest.manifest import INCOMPLETE, INGESTED, QUARANTINED, Record
from nowcast.ingest.readers import get_reader, read_scan
from nowcast.ingest.sources import SourceFile, list_sources, time_from_name
from nowcast.ingest.tasks import ChunkJob, ChunkResult, FileJob, JobContext, ingest_chunk, target_index
from nowcast.scan import Grid

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
    records: list[Record] = field(default_factory=list)  # this run's records of the files it read

    @property
    def ok(self) -> bool:
        return not self.failed_chunks


@dataclass(frozen=True)
class Plan:
    """What an ingest will do, worked out by ``plan`` without writing anything; ``execute`` does it."""

    config: IngestConfig  # with the store path made absolute
    n_sources: int
    n_new: int  # new files (not in the manifest, or waiting for partners to average)
    store_exists: bool
    run_id: str
    records: list[Record] = field(default_factory=list)  # files quarantined while planning
    failure: str | None = None  # why nothing can be ingested: ``execute`` records the files, then raises
    layout: store.StoreLayout | None = None
    n_times: int = 0  # rows the store's time axis will have
    jobs: list[ChunkJob] = field(default_factory=list)


class Probe(NamedTuple):
    """A file read while planning: its valid time and grid, or why it could not be read."""

    path: str
    time: str | None
    reason: str
    grid: Grid | None


def _probe_times(paths: list[str], reader: ReaderOptions) -> list[Probe]:
    """Read the valid time and grid of each file (for archives whose names carry none)."""
    out = []
    for path in paths:
        try:
            scan = read_scan(path, reader)
            out.append(Probe(path, str(scan.time), "", scan.grid))
        except ReaderError as e:
            out.append(Probe(path, None, str(e), None))
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
        for probe in _probe(to_probe, config, engine):
            if probe.time is None:
                src = by_path[probe.path]
                bad.append(Record(probe.path, src.size, src.mtime, QUARANTINED, reason=probe.reason))
            else:
                times[probe.path] = np.datetime64(probe.time, "s")
    return times, bad


def _probe(paths: list[str], config: IngestConfig, engine: Engine) -> Iterator[Probe]:
    """Read ``paths`` on the engine in batches."""
    batches = [paths[i : i + PROBE_BATCH] for i in range(0, len(paths), PROBE_BATCH)]
    for batch, outcome in engine.map_unordered(_ProbeBatch(config.source.reader), batches):
        if isinstance(outcome, Exception):
            outcome = [Probe(p, None, f"{p}: {outcome}", None) for p in batch]
        yield from outcome


class _ProbeBatch:
    """Picklable callable for the engines: probe the times of a batch of files."""

    def __init__(self, reader: ReaderOptions):
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


def _say_time_steps(times: list[np.datetime64], align: AlignConfig) -> None:
    """Files at another step than the store's axis: say what happens and the key that changes it."""
    seconds = np.unique(np.array(times, dtype="datetime64[s]").astype(np.int64))
    gaps, counts = np.unique(np.diff(seconds), return_counts=True)
    if len(seconds) < 3 or not len(gaps):
        return
    spacing = int(gaps[np.argmax(counts)])  # the usual spacing: missing files only widen some gaps
    axis = align.source_time_step_s or align.time_step_s
    if spacing == axis:
        log.info("files every %d s onto the store's %d s time axis", spacing, align.time_step_s)
    elif spacing > axis:
        log.warning(
            "files every %d s onto a %d s time axis: the steps between them stay missing; set "
            "align.time_step_s: %d to store them at their own step",
            spacing,
            axis,
            spacing,
        )
    else:
        log.warning(
            "files every %d s onto a %d s time axis: one scan per step is kept, the others are reported as "
            "duplicates; set align.source_time_step_s: %d to average them into each step",
            spacing,
            axis,
            spacing,
        )


def _source_grid_from(new: list[SourceFile], times: dict, config: IngestConfig):
    """The source grid, read from the first new file that reads (in time order)."""
    for src in sorted((s for s in new if s.path in times), key=lambda s: times[s.path]):
        try:
            scan = read_scan(src.path, config.source.reader)
            log.info("reading %s (%s, as in %s)", scan.quantity or "rain rate", config.source.reader.format, src.path)
            return scan.grid
        except ReaderError as e:
            log.debug("grid probe: %s", e)
    return None


def _layout_for(
    config: IngestConfig,
    spatial: SpatialPlan,
    times: list[np.datetime64],
    existing: store.StoreLayout | None,
) -> store.StoreLayout:
    """The existing store's layout, checked against this ingest; else a new one starting at the first time."""
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
    first = int(np.min(np.ceil(epoch_steps) if config.align.scans_per_step > 1 else np.round(epoch_steps)))
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


def _with_absolute_store_path(config: IngestConfig) -> IngestConfig:
    """Workers resolve relative paths against their own working folders: give them an absolute one."""
    path = config.store.path
    if "://" in path or os.path.isabs(path):
        return config
    return config.model_copy(update={"store": config.store.model_copy(update={"path": os.path.abspath(path)})})


def _to_read(src: SourceFile, record: Record | None) -> bool:
    """A file is read when new, when its time step still waits for partners, or when it was
    quarantined and has changed since (often a file first seen while still being copied): its
    time is then filled if no other file wrote it (otherwise it is a duplicate)."""
    if record is None or record.status == INCOMPLETE:
        return True
    return record.status == QUARANTINED and (record.size != src.size or record.mtime != src.mtime)


def plan(config: IngestConfig, engine: Engine, sources: list[SourceFile] | None = None) -> Plan:
    """Work out what an ingest of ``config`` will do. Reads the sources and the store, writes nothing.

    Files are read (on ``engine``) only where planning needs their content: names that carry no
    time, and times that lie weeks away from the rest.

    Args:
        config: the ingest config (its ``source.paths`` are listed unless ``sources`` is given).
        engine: where files are read.
        sources: the files to consider, instead of listing ``source.paths`` (``nowcast watch``
            passes the files that just landed); files of the store left out are kept as stored.

    Raises:
        ConfigError: a source pattern matches no file, an unknown reader, or an alignment that
            does not fit the files.
        StoreError: the store does not match this config (grid, time step, chunking), or its
            metadata is damaged.
    """
    config = _with_absolute_store_path(config)
    path = config.store.path
    if config.source.reader.format != "auto":
        get_reader(config.source.reader.format)  # a wrong name stops here, not file by file
    if sources is None:
        sources = list_sources(config.source.paths, config.source.exclude)
    exists = _store_exists(path)
    seen = manifest.read_manifest(path) if exists else {}
    new = [s for s in sources if _to_read(s, seen.get(s.path))]
    for src in sources:
        record = seen.get(src.path)
        if record is not None and record.status == QUARANTINED and src in new:
            log.info("%s changed since it was quarantined: reading it again", src.path)
        elif record is not None and record.status not in (INCOMPLETE, QUARANTINED) and record.size != src.size:
            log.warning(
                "%s changed since it was ingested; its time is not written twice (ingest it into a new store "
                "to use the new content)",
                src.path,
            )
    log.info("%d source files, %d already in the store, %d new", len(sources), len(sources) - len(new), len(new))
    base = Plan(config, len(sources), len(new), exists, manifest.new_run_id())
    if not new:
        return base

    times, records = _plan_times(new, config, engine)
    _say_time_steps(list(times.values()), config.align)
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
        failure = (
            f"none of the {len(new)} new files could be read; nothing was written "
            f"(first reason: {records[0].reason if records else 'none'})"
        )
        return replace(base, records=records, failure=failure)

    spatial = plan_spatial(source_grid, config.align)
    log.info("grid: %s", spatial.regrid.describe())
    root = store.open_group(path) if exists else None
    existing = store.read_layout(root) if root is not None else None
    layout = _layout_for(config, spatial, list(times.values()), existing)
    by_chunk, max_index, off_grid = _place_in_chunks(new, times, layout, config.align)
    n_times = max(max_index + 1, 1, store.time_length(root) if root is not None else 0)
    context = JobContext(
        store_path=path,
        run_id=base.run_id,
        layout=layout,
        spatial=spatial,
        reader=config.source.reader,
        scans_per_step=config.align.scans_per_step,
        tolerance_s=config.align.tolerance_s,
    )
    jobs = _chunk_jobs(context, by_chunk, seen, sources, n_times)
    return replace(base, records=records + off_grid, layout=layout, n_times=n_times, jobs=jobs)


def _place_in_chunks(
    new: list[SourceFile], times: dict[str, np.datetime64], layout: store.StoreLayout, align: AlignConfig
) -> tuple[dict[int, list[FileJob]], int, list[Record]]:
    """Each new file's row, grouped by time chunk; the highest row; records of files off the time axis."""
    by_chunk: dict[int, list[FileJob]] = defaultdict(list)
    max_index = -1
    off_grid = []
    by_path = {s.path: s for s in new}
    for file_path, t in sorted(times.items(), key=lambda kv: (kv[1], kv[0])):
        src = by_path[file_path]
        index = target_index(layout, t, align.scans_per_step, align.tolerance_s)
        if index is None or index < 0:
            why = (
                "is not on the time grid"
                if index is None
                else f"is before the store's first time {layout.time_origin}; ingest it into a new store"
            )
            off_grid.append(
                Record(src.path, src.size, src.mtime, QUARANTINED, time=str(t), reason=f"{src.path}: time {t} {why}")
            )
            continue
        by_chunk[layout.chunk_of(index)].append(FileJob(src, index))
        max_index = max(max_index, index)
    return by_chunk, max_index, off_grid


def _chunk_jobs(
    context: JobContext,
    by_chunk: dict[int, list[FileJob]],
    seen: dict[str, Record],
    sources: list[SourceFile],
    n_times: int,
) -> list[ChunkJob]:
    """One job per time chunk with new files; the chunk's known files go along to rebuild it whole."""
    layout = context.layout
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
        files = tuple(known + sorted(new_files, key=lambda f: f.source.path))
        jobs.append(ChunkJob(context, chunk, start, stop, files, keep_rows=tuple(keep)))
    return jobs


def execute(plan: Plan, engine: Engine, progress: bool = True) -> IngestSummary:
    """Do what ``plan`` worked out: make or grow the store, run the chunk jobs, record and report.

    Raises:
        StoreError: no new file could be read (after recording them in an existing store's
            manifest), or the store changed since it was planned.
    """
    config, path, run_id = plan.config, plan.config.store.path, plan.run_id
    summary = IngestSummary(path, n_sources=plan.n_sources, n_new=plan.n_new)
    if not plan.n_new:
        _finish(summary, path)
        return summary
    if plan.failure is not None:
        if plan.store_exists:
            manifest.write_part(path, run_id, "plan", plan.records)
            manifest.fold_run(path, run_id)
        _report(summary, plan.records)
        raise StoreError(plan.failure)
    layout = plan.layout
    assert layout is not None  # a plan with new files and no failure has one
    if plan.store_exists:
        root = store.open_group(path, mode="r+")
    else:
        attrs = {"source": ", ".join(config.source.paths), "ingest_config": dump_config(config)}
        root = store.create_store(path, layout, plan.n_times, attrs=attrs)
        log.info(
            "created %s: %s, %d s step from %s", path, layout.grid.describe(), layout.time_step_s, layout.time_origin
        )
    if store.ensure_length(root, layout, plan.n_times) != plan.n_times:
        raise StoreError(f"{path} changed since this ingest was planned; run it again")
    records = list(plan.records)
    if records:
        manifest.write_part(path, run_id, "plan", records)
    log.info(
        "ingesting %d files into %d time chunks with the %s engine",
        sum(len(j.files) for j in plan.jobs),
        len(plan.jobs),
        engine.name,
    )
    records += _run_jobs(engine, plan.jobs, summary, progress)
    if not summary.failed_chunks:  # rows planned for files that turned out bad are given back
        store.trim_trailing_missing(root, layout)
    manifest.fold_run(path, run_id)
    _report(summary, records)
    _finish(summary, path)
    _save_config(config, path)
    return summary


class _EngineOnDemand:
    """The configured engine, started at its first use (or by ``open``): a run with nothing new starts none."""

    def __init__(self, config: EngineConfig, stack: ExitStack):
        self.name: str = config.name
        self._config, self._stack = config, stack
        self._engine: Engine | None = None

    def open(self) -> Engine:
        if self._engine is None:
            self._engine = self._stack.enter_context(open_engine(self._config))
        return self._engine

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        return self.open().map_unordered(fn, items)


def run_ingest(config: IngestConfig, progress: bool = True) -> IngestSummary:
    """Ingest the configured sources into the configured store: ``plan``, then ``execute``, under the store's lock."""
    config = _with_absolute_store_path(config)
    with store_lock(config.store.path), ExitStack() as stack:
        engine = _EngineOnDemand(config.engine, stack)
        ingest_plan = plan(config, engine)
        if ingest_plan.n_new:
            engine.open()  # before anything is written: an engine that cannot start stops the run here
        return execute(ingest_plan, engine, progress)


def ingest_sources(config: IngestConfig, sources: list[SourceFile], engine: Engine) -> IngestSummary:
    """Ingest just ``sources`` into the configured store (created from them when missing).

    For a caller that holds the store's lock and an engine open across many calls (``nowcast
    watch``, one call per batch of scans that landed): the same plan and chunk writes as
    ``run_ingest``, so the store and its manifest change in one place.
    """
    ingest_plan = plan(config, engine, sources)
    try:
        return execute(ingest_plan, engine, progress=False)
    except StoreError:
        if ingest_plan.failure is None:
            raise
        # none of them readable: recorded as quarantined (in an existing store), and the caller goes on
        summary = IngestSummary(config.store.path, ingest_plan.n_sources, ingest_plan.n_new)
        _report(summary, ingest_plan.records)
        return summary


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
    summary.records += records
    summary.counts.update(r.status for r in records)
    summary.quarantined += [(r.path, r.reason) for r in records if r.status == QUARANTINED]


def _finish(summary: IngestSummary, path: str) -> None:
    store.consolidate(path)  # what xr.open_zarr reads: the store's shape as this run leaves it
    root = store.open_group(path)
    valid = np.asarray(root[store.VALID][:], dtype=bool)
    summary.n_times, summary.n_valid = len(valid), int(valid.sum())


def _save_config(config: IngestConfig, path: str) -> None:
    """The resolved config beside the store's data, as every run does."""
    fs, root = fsspec.core.url_to_fs(path)
    write_file(fs, f"{root}/ingest-config.yaml", dump_config(config).encode())
