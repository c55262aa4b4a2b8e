"""One cycle of the service: ingest the scans that landed, then issue the forecasts now due.

Which forecasts are due (``due``), after the batch is in the store:
- an init time is a valid time of the store no older than ``catch_up_steps`` steps before the
  newest, with no forecast file yet (so a restart neither loses nor repeats one);
- its input window is whole: forecast by the model (a late scan can make an older window
  whole: it is forecast then);
- the newest time's window is not whole: wait ``max_wait_s`` from when that time was first
  seen, then forecast by the ``fallback`` rule, or issue none (and say so);
- nothing at all while the newest scan is older than ``max_input_age_s``: the feed is late.
The newest forecast is made first; ``latest.nc`` follows the newest init time written.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nowcast.errors import MissingFramesError
from nowcast.ingest import manifest
from nowcast.ingest.config import EngineConfig, IngestConfig, SourceConfig, StoreConfig
from nowcast.ingest.engines import Engine
from nowcast.ingest.manifest import DUPLICATE, INGESTED, QUARANTINED
from nowcast.ingest.run import IngestSummary, ingest_sources
from nowcast.ingest.sources import SourceFile
from nowcast.predict.inputs import Frames, Window, store_window
from nowcast.predict.loading import LoadedModel, check_data_facts
from nowcast.predict.run import lead_count, make_forecast
from nowcast.predict.writer import write_forecast
from nowcast.store import StoreReader, is_store
from nowcast.verify.baselines import import_pysteps
from nowcast.watch.config import WatchConfig
from nowcast.watch.outputs import Outputs
from nowcast.watch.status import Status, utc_now

log = logging.getLogger(__name__)
HISTORY = "nowcast watch"


def ingest_config(incoming: str, store_path: str, cfg: WatchConfig) -> IngestConfig:
    """The ingest config the service writes with: an existing store keeps its own time chunking."""
    chunk_time = cfg.store.chunk_time
    if is_store(store_path):
        chunk_time = StoreReader(store_path).chunk_time
    return IngestConfig(
        source=SourceConfig(paths=[incoming], reader=cfg.reader),
        store=StoreConfig(path=store_path, chunk_time=chunk_time, chunk_space=cfg.store.chunk_space),
        align=cfg.align,
        engine=EngineConfig(name="serial"),
    )


@dataclass
class Due:
    index: int
    init_time: np.datetime64
    fallback: bool = False


@dataclass
class Cycle:
    """The state the service carries from one batch of scans to the next."""

    ingest: IngestConfig
    cfg: WatchConfig
    loaded: LoadedModel
    outputs: Outputs
    status: Status
    plot: bool = False
    newest: np.datetime64 | None = None  # newest valid time in the store
    pending: dict[np.datetime64, float] = field(default_factory=dict)  # incomplete newest window -> first seen
    skipped: set[np.datetime64] = field(default_factory=set)  # times given no forecast (fallback none)
    warmed: bool = False
    ingests: int = 0  # batches ingested by this process (the manifest is compacted every so many)
    read_here: set[SourceFile] = field(default_factory=set)  # files this process read (one event each counts)
    feed_late: bool = False

    # -- ingest ------------------------------------------------------------------------------
    def ingest_batch(self, engine: Engine, batch: Mapping[str, float], catch_up: bool = False) -> IngestSummary | None:
        """Ingest the files of ``batch`` (path -> when seen); log one line per file; update the counts.

        A file delivered again unchanged counts as a duplicate, except in the start-up listing
        (``catch_up``), where every file already in the store is listed again by design.
        """
        sources = []
        for path in sorted(batch):
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                log.warning("scan %s: gone before it could be read", path)
                continue
            sources.append(SourceFile(path, stat.st_size, stat.st_mtime))
        if not sources:
            return None
        summary = ingest_sources(self.ingest, sources, engine)
        self.ingests += 1
        if self.ingests % self.cfg.compact_manifest_every == 0:
            folded = manifest.compact(self.ingest.store.path)
            log.info("manifest: %d run files folded into one", folded)
        newest_before = self.newest
        recorded = {r.path for r in summary.records}
        counts = self.status.counts
        for record in summary.records:
            name = Path(record.path).name
            if record.status == INGESTED:
                counts["scans"] += 1
                late = newest_before is not None and np.datetime64(record.time, "s") < newest_before
                counts["late"] += int(late)
                log.info("scan %s: %s ingested%s", record.time, name, " (late)" if late else "")
            elif record.status == DUPLICATE:
                counts["duplicates"] += 1
                log.warning("scan %s: %s is a duplicate: %s", record.time, name, record.reason)
            elif record.status == QUARANTINED:
                counts["quarantined"] += 1
                log.warning("scan %s: quarantined: %s", name, record.reason)
            else:
                log.info("scan %s: %s %s (%s)", record.time, name, record.status, record.reason)
        for src in sources if not catch_up else []:
            if src.path in recorded:
                continue
            if src in self.read_here:  # its event came after the start-up listing had read it
                log.debug("scan %s: read at start-up already", src.path)
                continue
            counts["duplicates"] += 1
            log.warning("scan %s: delivered again, unchanged: ignored", Path(src.path).name)
        self.read_here.update(s for s in sources if s.path in recorded)
        if any(r.status == INGESTED for r in summary.records):
            self.status.last_scan_at = utc_now()
        return summary

    # -- what is due -------------------------------------------------------------------------
    def refresh(self) -> StoreReader | None:
        """The store as it is now (None before the first scan created it); updates ``newest``."""
        if not is_store(self.ingest.store.path):
            return None
        reader = StoreReader(self.ingest.store.path)
        valid = np.flatnonzero(reader.valid)
        self.newest = reader.times[valid[-1]] if valid.size else None
        self.status.newest_scan_time = None if self.newest is None else str(self.newest)
        return reader

    def _feed_age_s(self) -> float | None:
        if self.newest is None:
            return None
        return time.time() - float(self.newest.astype("datetime64[s]").astype(np.int64))

    def _check_feed(self) -> bool:
        """False (and the status and log say the feed is late) when the newest scan is too old."""
        limit = self.cfg.max_input_age_s
        age = self._feed_age_s()
        late = limit is not None and age is not None and age > limit
        if late and not self.feed_late:
            log.warning(
                "feed late: the newest scan (%s) is %.0f s old, more than max_input_age_s=%g: no forecast "
                "until new scans arrive",
                self.newest,
                age,
                limit,
            )
        elif not late and self.feed_late:
            log.info("feed back: newest scan %s", self.newest)
        self.feed_late = late
        if late:
            self.status.feed, self.status.feed_note = "late", f"newest scan {self.newest} is {age:.0f} s old"
        return not late

    def due(self, reader: StoreReader, now: float) -> list[Due]:
        """The forecasts to make now (newest first); see the module docstring."""
        if not self._check_feed():
            return []
        n_in = self.loaded.cfg.num_input_frames
        valid = reader.valid
        indices = np.flatnonzero(valid)
        if indices.size == 0:
            return []
        newest = int(indices[-1])
        # only the newest time waits for its window; a time no longer the newest waits no more
        self.pending = {t: first for t, first in self.pending.items() if t == reader.times[newest]}
        written = self.outputs.written()
        out: list[Due] = []
        self.status.feed, self.status.feed_note = "ok", ""
        for i in range(newest, max(-1, newest - self.cfg.catch_up_steps - 1), -1):
            t = reader.times[i]
            if not valid[i] or t in written or t in self.skipped:
                continue
            if i - n_in + 1 >= 0 and valid[i - n_in + 1 : i + 1].all():
                out.append(Due(i, t))
                self.pending.pop(t, None)
            elif i == newest:
                out += self._wait_or_fall_back(reader, i, now)
        return out

    def _wait_or_fall_back(self, reader: StoreReader, i: int, now: float) -> list[Due]:
        t = reader.times[i]
        first = self.pending.setdefault(t, now)
        n_in = self.loaded.cfg.num_input_frames
        step = np.timedelta64(reader.time_step_s, "s")
        missing = [str(t - k * step) for k in range(n_in - 1, -1, -1) if i - k < 0 or not reader.valid[i - k]]
        if now - first < self.cfg.max_wait_s:
            self.status.feed = "waiting"
            self.status.feed_note = f"window ending at {t} misses {', '.join(missing)}"
            return []
        self.pending.pop(t, None)
        if self.cfg.fallback == "none":
            self.skipped.add(t)
            self.status.counts["skipped"] += 1
            log.warning(
                "no forecast from %s: %s still missing after max_wait_s=%g (fallback: none)",
                t,
                ", ".join(missing),
                self.cfg.max_wait_s,
            )
            return []
        return [Due(i, t, fallback=True)]

    def next_deadline(self, now: float) -> float | None:
        """Seconds until a pending window's wait runs out (None when nothing waits)."""
        if not self.pending:
            return None
        return max(0.0, min(self.pending.values()) + self.cfg.max_wait_s - now)

    # -- forecasting -------------------------------------------------------------------------
    def warm_up(self, reader: StoreReader) -> None:
        """Check the model fits the store, then run it once on zeros so the first forecast is not slow."""
        check_data_facts(
            self.loaded,
            reader.pixel_size_m,
            reader.time_step_s,
            reader.grid.crs,
            reader.path,
            self.cfg.predict.input_time_step_s,
        )
        lead_count(self.loaded, self.cfg.predict)
        if self.cfg.warm_up:
            started = time.perf_counter()
            self._warm_up(reader)
            log.info("model and writer warmed up on %dx%d in %.2f s", *reader.grid.shape, time.perf_counter() - started)
        self.warmed = True

    def _warm_up(self, reader: StoreReader) -> None:
        """One forecast of a dry window written to a scratch file: loads torch's kernels, the
        writer's libraries and (for the fallback) pysteps' once, before the first real scan."""
        n_in = self.loaded.cfg.num_input_frames
        step = np.timedelta64(reader.time_step_s, "s")
        times = reader.times[0] + step * np.arange(n_in)
        zeros = np.zeros((n_in, *reader.grid.shape), np.float32)
        frames = Frames(times, zeros, np.ones(n_in, bool), reader.grid, reader.time_step_s, reader.path)
        window = Window(frames, times[-1], np.array([], "datetime64[s]"))
        forecast = make_forecast(self.loaded, window, self.cfg.predict)
        with tempfile.TemporaryDirectory(prefix="nowcast-warm-up-") as tmp:
            write_forecast(forecast, Path(tmp) / "warm-up.nc", self.loaded, self.cfg.predict, HISTORY)
        if self.cfg.fallback == "extrapolation":
            for module in ("pysteps.motion", "pysteps.extrapolation", "pysteps.utils.transformation"):
                import_pysteps(module)

    def forecast(self, reader: StoreReader, due: Due, seen: float | None, ingest_s: float) -> Path | None:
        """Make, write and point ``latest.nc`` at one forecast; None when its fallback cannot run."""
        t0 = time.perf_counter()
        window = store_window(reader, self.loaded.cfg.num_input_frames, due.init_time)
        t_read = time.perf_counter()
        cfg = self.cfg.predict
        if due.fallback:
            cfg = cfg.model_copy(update={"fallback": self.cfg.fallback})
        try:
            forecast = make_forecast(self.loaded, window, cfg)
        except MissingFramesError as e:
            self.skipped.add(due.init_time)
            self.status.counts["skipped"] += 1
            log.warning("no forecast from %s: the fallback cannot run: %s", due.init_time, e)
            return None
        if due.fallback:
            note = f"{forecast.note} (still missing {self.cfg.max_wait_s:g} s after the newest scan: max_wait_s)"
            forecast = dataclasses.replace(forecast, note=note)
        t_model = time.perf_counter()
        path = write_forecast(forecast, self.outputs.path_for(due.init_time), self.loaded, cfg, HISTORY)
        if self.plot:
            from nowcast.predict.plot import plot_forecast

            plot_forecast(forecast, path)
        t_write = time.perf_counter()
        if due.init_time >= max(self.outputs.written()):  # a late window's forecast does not move latest back
            self.outputs.point_latest(path)
        t_done = time.perf_counter()
        counts = self.status.counts
        counts["forecasts"] += 1
        counts["fallbacks"] += int(forecast.method != "model")
        self.status.last_forecast = {
            "init_time": str(due.init_time),
            "path": str(path),
            "method": forecast.method,
            "note": forecast.note,
            "written_at": utc_now(),
        }
        latency = {
            "ingest": ingest_s,
            "read": t_read - t0,
            "model": t_model - t_read,
            "write": t_write - t_model,
            "latest": t_done - t_write,
        }
        if seen is not None:
            latency["total_since_seen"] = time.monotonic() - seen
        self.status.latency_s = {k: round(v, 4) for k, v in latency.items()}
        log.info(
            "forecast %s: %s by %s (%s)",
            due.init_time,
            path.name,
            forecast.method,
            ", ".join(f"{k} {v:.2f} s" for k, v in latency.items()),
        )
        self.outputs.prune(self.cfg.keep_forecasts)
        return path

    def run(self, engine: Engine, batch: Mapping[str, float], catch_up: bool = False) -> list[Path]:
        """One cycle: ingest ``batch`` (may be empty: a timer or a restart), then every forecast due.

        ``catch_up``: the batch may list files already in the store (see ``ingest_batch``)."""
        started = time.perf_counter()
        if batch:
            self.ingest_batch(engine, batch, catch_up=catch_up)
        ingest_s = time.perf_counter() - started
        reader = self.refresh()
        if reader is None:
            return []
        if not self.warmed:
            self.warm_up(reader)
        seen = min(batch.values()) if batch else None
        written = []
        for item in self.due(reader, time.monotonic()):
            path = self.forecast(reader, item, seen, ingest_s)
            if path is not None:
                written.append(path)
        return written
