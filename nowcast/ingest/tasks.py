"""The unit of ingest work: read the files of one time chunk and write that whole chunk.

``ingest_chunk`` is a pure function of its ``ChunkJob``; every engine (serial, Dask, Spark)
only maps it over jobs. A job owns its time chunk (every spatial chunk of it), so no two
jobs ever write the same Zarr chunk. Bad files are recorded, never raised; a failure of the
store itself is raised with the chunk that failed.
"""

from __future__ import annotations

import logging
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
class ChunkJob:
    """Everything a worker needs to ingest one time chunk: plain data, cheap to pickle.

    A chunk is rebuilt whole from its files, the known ones included, so writing it again
    after a crash gives the same bytes. Only rows whose files are gone (``keep_rows``) are
    carried over from the chunk already in the store.
    """

    store_path: str
    run_id: str
    chunk: int
    start: int  # first row of the chunk
    stop: int  # one past the last row
    files: tuple[FileJob, ...]  # known files first, then new ones in path order
    layout: store.StoreLayout
    spatial: SpatialPlan
    reader: ReaderOptions
    scans_per_step: int = 1  # > 1 averages that many source scans into one step
    tolerance_s: float = 60.0
    keep_rows: tuple[int, ...] = ()  # rows claimed by files no longer readable: kept as stored


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
    return ChunkWriteError(f"chunk {job.chunk} (rows {job.start}-{job.stop - 1}) of {job.store_path}: {error}")


def _carry_over(
    root, job: ChunkJob, rows: list[int], rain: np.ndarray, valid: np.ndarray, stored_valid: np.ndarray
) -> None:
    """Copy ``rows`` of the chunk as stored into ``rain``/``valid`` (rows whose files cannot be read now)."""
    rain[rows] = store.decode_rain(root[store.RAIN_RATE][job.start : job.stop])[rows]
    valid[rows] = stored_valid[rows]


def ingest_chunk(job: ChunkJob) -> ChunkResult:
    """Read, check and align the files of one chunk, then write the whole chunk.

    Raises:
        ChunkWriteError: the store could not be read or written (the message names the chunk).
    """
    n_rows = job.stop - job.start
    rain = np.full((n_rows, *job.layout.grid.shape), np.nan, np.float32)
    valid = np.zeros(n_rows, bool)
    try:
        root = store.open_group(job.store_path, mode="r+")
        stored_valid = np.asarray(root[store.VALID][job.start : job.stop], dtype=bool)
        if job.keep_rows:
            _carry_over(root, job, [i - job.start for i in job.keep_rows], rain, valid, stored_valid)
    except Exception as e:  # noqa: BLE001 - re-raised with the chunk named
        raise _chunk_error(job, e) from e

    keep = set(job.keep_rows)
    averaging = job.scans_per_step > 1
    sums = np.zeros_like(rain) if averaging else None
    nodata = np.zeros(rain.shape, bool) if averaging else None
    counts = np.zeros(n_rows, np.int32)
    used: dict[int, list[Record]] = {}
    records: list[Record] = []
    carry: list[int] = []  # rows to copy from the stored chunk

    for file in job.files:
        src = file.source
        record = Record(src.path, src.size, src.mtime, QUARANTINED, index=file.index)
        if not file.known:  # known files are in the manifest already
            records.append(record)
        try:
            scan = read_scan(src.path, job.reader)
        except ReaderError as e:
            if file.known:  # readable before, not now: keep what the store holds for its row
                carry.append(file.index - job.start)
                record.status = INGESTED
            record.reason = str(e)
            continue
        record.time = str(scan.time)
        index = target_index(job.layout, scan.time, job.scans_per_step, job.tolerance_s)
        if index is None:
            record.reason = f"{src.path}: time {scan.time} is not on the {job.layout.time_step_s} s time grid"
            continue
        record.index = index
        if index != file.index:
            record.reason = (
                f"{src.path}: valid time {scan.time} in the file differs from the time "
                f"{job.layout.time_of(file.index)} in its name; rename the file or set "
                "source.time_from_name: false"
            )
            continue
        if not scan.grid.same_as(job.spatial.source):
            record.reason = (
                f"{src.path}: grid {scan.grid.describe()} differs from the store's source grid "
                f"{job.spatial.source.describe()}"
            )
            continue
        row = index - job.start
        if not file.known and (index in keep or (not averaging and counts[row] > 0)):
            record.status, record.reason = DUPLICATE, f"time {scan.time} already written"
            continue
        field = job.spatial.apply(scan.rain_rate)
        counts[row] += 1
        if averaging:
            sums[row] += np.nan_to_num(field, nan=0.0)
            nodata[row] |= np.isnan(field)
        else:
            rain[row] = field
        used.setdefault(row, []).append(record)
        record.status, record.reason = INGESTED, ""

    for row, row_records in used.items():
        complete = counts[row] == job.scans_per_step
        if averaging:
            if complete:  # a pixel is no-data if any of the averaged scans lacks it
                rain[row] = np.where(nodata[row], np.nan, sums[row] / job.scans_per_step)
            else:
                rain[row] = np.nan
                for record in row_records:
                    record.status = INCOMPLETE
                    record.reason = f"{counts[row]} of {job.scans_per_step} scans for this step so far"
        valid[row] = complete

    try:
        if carry:
            _carry_over(root, job, carry, rain, valid, stored_valid)
        # a chunk that ends up empty and was empty is not written: all-bad files change nothing
        if valid.any() or stored_valid.any():
            store.write_time_chunk(root, job.layout, job.chunk, rain, valid)
        manifest.write_part(job.store_path, job.run_id, f"c{job.chunk}", records)
    except Exception as e:  # noqa: BLE001
        raise _chunk_error(job, e) from e
    return ChunkResult(job.chunk, records)
