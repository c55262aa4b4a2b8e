"""The service loop: lock the store, catch up, then one cycle per batch of scans until told to stop.

Start-up is the restart path too: remove the partial files a killed run left, point
``latest.nc`` at the newest forecast, ingest what landed in the folder while the service was
down, and make the forecasts due (``cycle``), so a SIGKILL loses nothing and repeats nothing.
The observer starts before that catch-up listing, so a scan landing meanwhile is not missed
(seen twice at worst, and the second time it is known). SIGTERM or SIGINT sets ``stop``; the
loop ends after the cycle in progress, so a forecast being written is finished first.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from nowcast.errors import ConfigError, NowcastError
from nowcast.ingest.engines import open_engine
from nowcast.ingest.lock import store_lock
from nowcast.ingest.sources import list_sources
from nowcast.predict.loading import LoadedModel
from nowcast.watch.config import WatchConfig
from nowcast.watch.cycle import Cycle, ingest_config
from nowcast.watch.events import Landed, drain, start_observer
from nowcast.watch.outputs import Outputs
from nowcast.watch.status import Status

log = logging.getLogger(__name__)
IDLE_S = 1.0  # how often the loop wakes with nothing to do (stop flag, feed age)


def _catch_up(cycle: Cycle, engine, incoming: str) -> None:
    """Ingest whatever is in the folder and not yet in the store (scans that landed while down)."""
    try:
        sources = list_sources([incoming])
    except ConfigError:  # an empty folder
        return
    now = time.monotonic()
    summary = cycle.ingest_batch(engine, {s.path: now for s in sources}, catch_up=True)
    if summary is not None and summary.n_new:
        log.info("start-up: ingested %d files that landed in %s while the service was down", summary.n_new, incoming)


def resume(outputs: Outputs) -> None:
    """Remove the partial files a killed run left and point ``latest.nc`` at the newest forecast."""
    outputs.remove_partial()
    written = outputs.written()
    if written and not outputs.latest_is(written[max(written)]):
        outputs.point_latest(written[max(written)])


def watch(
    incoming: str | Path,
    store_path: str | Path,
    out_dir: str | Path,
    loaded: LoadedModel,
    cfg: WatchConfig,
    plot: bool = False,
    stop: threading.Event | None = None,
) -> Status:
    """Run the service until ``stop`` is set; returns the final status.

    Raises:
        StoreError: another ingest or watcher holds the store's lock, or the store does not fit.
        CheckpointError: the model does not fit the store's pixel size or time step.
    """
    stop = stop or threading.Event()
    incoming, store_path = str(Path(incoming).resolve()), str(Path(store_path).resolve())
    Path(incoming).mkdir(parents=True, exist_ok=True)
    outputs = Outputs(out_dir)
    status = Status()
    landed: queue.Queue[Landed] = queue.Queue()
    with store_lock(store_path), ExitStack() as stack:
        engine = stack.enter_context(open_engine(ingest_config(incoming, store_path, cfg).engine))
        cycle = Cycle(ingest_config(incoming, store_path, cfg), cfg, loaded, outputs, status, plot)
        resume(outputs)
        observer = start_observer(incoming, landed, cfg.poll_s)
        try:
            cycle.refresh()
            _catch_up(cycle, engine, incoming)
            cycle.run(engine, {})
            status.state = "watching"
            status.write(outputs.folder)
            while not stop.is_set():
                deadline = cycle.next_deadline(time.monotonic())
                try:
                    first = landed.get(timeout=IDLE_S if deadline is None else min(IDLE_S, max(deadline, 0.05)))
                except queue.Empty:
                    feed = (status.feed, status.feed_note)
                    if cycle.run(engine, {}) or feed != (status.feed, status.feed_note):
                        status.write(outputs.folder)
                    continue
                try:
                    cycle.run(engine, drain(landed, first))
                except NowcastError as e:  # a batch that does not fit the store: said, and the service goes on
                    log.error("cycle failed: %s", e)
                status.write(outputs.folder)
        finally:
            observer.stop()
            observer.join()
            status.state = "stopped"
            status.write(outputs.folder)
            log.info("stopped: %s", ", ".join(f"{n} {k}" for k, n in status.counts.items()))
    return status
