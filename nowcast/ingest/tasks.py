"""The unit of ingest work: one time chunk, read, placed and written whole by one task.

``ingest_chunk`` is what every engine (serial, Dask, Spark) maps over the jobs. It runs in
three steps, the first two pure:

1. ``place_file``: read, check and align one file -> its field on its row of the time axis,
   or the reason it has none;
2. ``assemble_chunk``: the placed fields -> the chunk's rows and valid flags, with duplicates
   and incomplete averages settled;
3. ``write_chunk``: the task's one write: the whole chunk, then the manifest part of its files.

A job owns its time chunk (every spatial chunk of it), so no two jobs ever write the same Zarr
chunk. Bad files are recorded, never raised; a failure of the store itself is raised with the
chunk that failed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numcodecs.blosc
import numpy as np

from nowcast import store
from nowcast.errors import NowcastError, ReaderError
from nowcast.ingest import manifest
from nowcast.ingest.align import SpatialPlan
from nowcast.ingest.config import ReaderOptions
from nowcast.ingest.manifest import DUPLICATE, INCOMPLETE, INGESTED, QUARANTINED, Record
from nowcast.ingest.readers import read_scan
from nowcast.ingest.sources import SourceFile

log = logging.getLogger(__name__)

# Engines run one task per core; Blosc's own threads inside a task would only oversubscribe the
# cores (and make the serial loop look faster than one core). One thread per task, everywhere.
numcodecs.blosc.use_threads = False


class ChunkWriteError(NowcastError):
    """Writing a chunk to the store failed; names the chunk and its times."""


@dataclass(frozen=True)
class FileJob:
    source: SourceFile
    index: int  # planned row on the store's time axis (from the file name or a probe)
    known: bool = False  # ingested by an earlier run: read again only to rebuild its chunk


@dataclass(frozen=True)
class JobContext:
    """What every chunk job of one run shares: where to write, and how to read and place files."""

    store_path: str
    run_id: str
    layout: store.StoreLayout
    spatial: SpatialPlan
    reader: ReaderOptions
    scans_per_step: int = 1  # > 1 averages that many source scans into one step
    tolerance_s: float = 60.0  # scans this close to a step snap onto it


@dataclass(frozen=True)
class ChunkJob:
    """Everything a worker needs to ingest one time chunk: plain data, cheap to pickle.

    A chunk is rebuilt whole from its files, the known ones included, so writing it again
    after a crash gives the same bytes. Only rows whose files are gone (``keep_rows``) are
    carried over from the chunk already in the store.
    """

    context: JobContext
    chunk: int
    start: int  # first row of the chunk
    stop: int  # one past the last row
    files: tuple[FileJob, ...]  # known files first, then new ones in path order
    keep_rows: tuple[int, ...] = ()  # rows of recorded files gone or changed since: kept as stored


@dataclass
class Placement:
    """Where one file lands: its field on row ``record.index``, or no field and the reason in ``record``."""

    file: FileJob
    record: Record
    field: np.ndarray | None = None  # (ny, nx) float32 mm/h on the store's grid
    quantity: str = ""  # what the file held (Scan.quantity), to refuse mixed products at one time
    carry: bool = False  # a known file unreadable now: its row keeps what the store holds


@dataclass
class AssembledChunk:
    """A chunk ready to write, but for the rows to copy from the stored chunk."""

    rain: np.ndarray  # (rows, ny, nx) float32 mm/h, NaN for no data
    valid: np.ndarray  # (rows,) bool
    used_rows: set[int]  # rows (relative to the chunk) filled from files
    carry_rows: list[int]  # rows (relative) of known files unreadable now: copied from the store
    records: list[Record]  # the manifest records of this run's new files


@dataclass
class ChunkResult:
    chunk: int
    records: list[Record]


def target_index(layout: store.StoreLayout, time: np.datetime64, scans_per_step: int, tolerance_s: float) -> int | None:
    """Row for a scan's valid time, or None when it is off the time grid.

    When averaging several scans per step, a scan at t counts towards the step ending at or
    after t (a step's value covers the interval that ends at its time, as accumulations do).
    """
    step = layout.time_step_s
    offset = store.to_epoch_s(time) - store.to_epoch_s(layout.time_origin)
    if scans_per_step > 1:
        return int(-(-offset // step))
    nearest = int(round(offset / step))
    return nearest if abs(offset - nearest * step) <= tolerance_s else None


def _chunk_error(job: ChunkJob, error: Exception) -> ChunkWriteError:
    return ChunkWriteError(f"chunk {job.chunk} (rows {job.start}-{job.stop - 1}) of {job.context.store_path}: {error}")


def place_file(file: FileJob, context: JobContext) -> Placement:
    """Read, check and align one file: its field on its planned row, or why it has none (pure)."""
    src = file.source
    record = Record(src.path, src.size, src.mtime, QUARANTINED, index=file.index)
    try:
        scan = read_scan(src.path, context.reader)
    except ReaderError as e:
        record.reason = str(e)
        if file.known:  # readable before, not now: keep what the store holds for its row
            record.status = INGESTED
            return Placement(file, record, carry=True)
        return Placement(file, record)
    record.time = str(scan.time)
    layout = context.layout
    index = target_index(layout, scan.time, context.scans_per_step, context.tolerance_s)
    if index is None:
        record.reason = f"{src.path}: time {scan.time} is not on the {layout.time_step_s} s time grid"
        return Placement(file, record)
    record.index = index
    if index != file.index:
        record.reason = (
            f"{src.path}: valid time {scan.time} in the file differs from the time "
            f"{layout.time_of(file.index)} in its name; rename the file or set "
            "source.time_from_name: false"
        )
    elif not scan.grid.same_as(context.spatial.source):
        record.reason = (
            f"{src.path}: grid {scan.grid.describe()} differs from the store's source grid "
            f"{context.spatial.source.describe()}"
        )
    else:
        return Placement(file, record, context.spatial.apply(scan.rain_rate), quantity=scan.quantity)
    return Placement(file, record)


def _kind(quantity: str) -> str:
    """The product a quantity names (RATE, ACRR, DBZH, a variable), without the conversion details."""
    return quantity.split(" ", 1)[0].split(",", 1)[0]


def assemble_chunk(job: ChunkJob, placements: Iterable[Placement]) -> AssembledChunk:
    """Put the placed fields on the chunk's rows: duplicates refused, averages completed or held back (pure).

    ``placements`` is consumed one at a time, so a generator keeps a single scan in memory.
    """
    context = job.context
    n_rows = job.stop - job.start
    rain = np.full((n_rows, *context.layout.grid.shape), np.nan, np.float32)
    valid = np.zeros(n_rows, bool)
    keep = set(job.keep_rows)
    averaging = context.scans_per_step > 1
    sums = np.zeros_like(rain) if averaging else None
    nodata = np.zeros(rain.shape, bool) if averaging else None
    counts = np.zeros(n_rows, np.int32)
    used: dict[int, list[Record]] = {}
    kinds: dict[int, tuple[str, str]] = {}  # row -> (quantity, path) of the first file placed there
    records: list[Record] = []
    carry: list[int] = []

    for placement in placements:
        file, record = placement.file, placement.record
        if not file.known:  # known files are in the manifest already
            records.append(record)
        if placement.carry:
            carry.append(file.index - job.start)
        if placement.field is None:
            continue
        row = file.index - job.start  # a placed file lies on its planned row
        kind = _kind(placement.quantity)
        first = kinds.setdefault(row, (kind, record.path))
        if kind != first[0]:
            record.status = QUARANTINED
            record.reason = (
                f"{record.path}: {placement.quantity} at {record.time}, where {first[1]} gives {first[0]}: two "
                "products at one time; set source.reader.quantity to pick one, or source.exclude the other files"
            )
            continue
        if not file.known and (file.index in keep or (not averaging and counts[row] > 0)):
            record.status, record.reason = DUPLICATE, f"time {record.time} already written"
            continue
        counts[row] += 1
        if averaging:
            sums[row] += np.nan_to_num(placement.field, nan=0.0)
            nodata[row] |= np.isnan(placement.field)
        else:
            rain[row] = placement.field
        used.setdefault(row, []).append(record)
        record.status, record.reason = INGESTED, ""

    for row, row_records in used.items():
        complete = counts[row] == context.scans_per_step
        if averaging:
            if complete:  # a pixel is no-data if any of the averaged scans lacks it
                rain[row] = np.where(nodata[row], np.nan, sums[row] / context.scans_per_step)
            else:
                rain[row] = np.nan
                for record in row_records:
                    record.status = INCOMPLETE
                    record.reason = f"{counts[row]} of {context.scans_per_step} scans for this step so far"
        valid[row] = complete
    return AssembledChunk(rain, valid, set(used), carry, records)


def write_chunk(job: ChunkJob, chunk: AssembledChunk) -> ChunkResult:
    """The task's one write: the whole chunk (with the rows it keeps from the store), then its manifest part.

    Raises:
        ChunkWriteError: the store could not be read or written (the message names the chunk).
    """
    context = job.context
    try:
        root = store.open_group(context.store_path, mode="r+")
        stored_valid = np.asarray(root[store.VALID][job.start : job.stop], dtype=bool)
        # rows of files gone since (unless files of this run filled them), then rows of files unreadable now
        rows = sorted({i - job.start for i in job.keep_rows} - chunk.used_rows) + chunk.carry_rows
        if rows:
            stored = store.decode_rain(root[store.RAIN_RATE][job.start : job.stop])
            chunk.rain[rows], chunk.valid[rows] = stored[rows], stored_valid[rows]
        # a chunk that ends up empty and was empty is not written: all-bad files change nothing
        if chunk.valid.any() or stored_valid.any():
            store.write_time_chunk(root, context.layout, job.chunk, chunk.rain, chunk.valid)
        manifest.write_part(context.store_path, context.run_id, f"c{job.chunk}", chunk.records)
    except Exception as e:  # noqa: BLE001 - re-raised with the chunk named
        raise _chunk_error(job, e) from e
    return ChunkResult(job.chunk, chunk.records)


def ingest_chunk(job: ChunkJob) -> ChunkResult:
    """The task every engine maps: place each file of the chunk, assemble the chunk, write it.

    Raises:
        ChunkWriteError: the store could not be read or written (the message names the chunk).
    """
    placements = (place_file(file, job.context) for file in job.files)
    return write_chunk(job, assemble_chunk(job, placements))
