"""``nowcast watch --engine spark``: the service's cycles driven by a Spark Structured Streaming query.

For sites that run Spark: a file source over the incoming folder (``binaryFile``, recursive,
only the ``path`` column, so no file is read by Spark) lists each new file once, and
``foreachBatch`` hands the micro-batch's paths to the same ``Cycle`` as the watchdog loop, on
the driver: ingest them, then every forecast due. Spark's checkpoint (``OUT/.spark-checkpoint``)
remembers which files were handed over, so a restart picks up only the files that landed
since; a batch interrupted by a crash is handed over again, and the cycle finds it in the
store (the first batch of a process is ingested as a catch-up: nothing counted twice).

Spark's file source sees a file once, by name: deliver scans by renaming them into the
folder. Hidden names (Spark's own rule) and ``.tmp``/``.part`` files are skipped. Between
batches the driver wakes every second for what needs a clock (``max_wait_s``, the feed's
age). SIGTERM or SIGINT stops the query after the batch in progress.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import unquote, urlparse

from nowcast.errors import NowcastError
from nowcast.ingest.config import EngineConfig, SparkConfig
from nowcast.ingest.engines import open_engine
from nowcast.ingest.engines.spark import open_spark
from nowcast.ingest.lock import store_lock
from nowcast.ingest.sources import is_source_name
from nowcast.predict.loading import LoadedModel
from nowcast.watch.config import WatchConfig
from nowcast.watch.cycle import Cycle, ingest_config
from nowcast.watch.outputs import Outputs
from nowcast.watch.service import IDLE_S, resume
from nowcast.watch.status import Status

log = logging.getLogger(__name__)
# the binaryFile source's fixed schema (a streaming source must be given one); only ``path`` is read
FILES_SCHEMA = "path STRING, modificationTime TIMESTAMP, length BIGINT, content BINARY"
CHECKPOINT = ".spark-checkpoint"  # hidden: never taken for a forecast, never removed as a partial file


def local_path(uri: str) -> str:
    """``file:/a/b%20c.h5`` (the file source's ``path`` column) -> ``/a/b c.h5``."""
    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri


def watch_stream(
    incoming: str | Path,
    store_path: str | Path,
    out_dir: str | Path,
    loaded: LoadedModel,
    cfg: WatchConfig,
    master: str = "local[*]",
    plot: bool = False,
    stop: threading.Event | None = None,
    trigger_s: float = 1.0,
) -> Status:
    """Run the service as a streaming query on ``master`` until ``stop`` is set; returns the final status.

    Raises:
        StoreError: another ingest or watcher holds the store's lock, or the store does not fit.
        CheckpointError: the model does not fit the store's pixel size or time step.
        ConfigError: Spark cannot start (Java, the master).
    """
    from pyspark.sql import SparkSession

    stop = stop or threading.Event()
    incoming, store_path = str(Path(incoming).resolve()), str(Path(store_path).resolve())
    Path(incoming).mkdir(parents=True, exist_ok=True)
    outputs = Outputs(out_dir)
    status = Status()
    busy = threading.Lock()  # one cycle at a time: a micro-batch (Spark's thread) or a timer wake-up (here)
    first = [True]
    with store_lock(store_path), ExitStack() as stack:
        stack.enter_context(open_spark(EngineConfig(name="spark", spark=SparkConfig(master=master))))
        spark = SparkSession.builder.getOrCreate()  # the session open_spark started or reused
        engine = stack.enter_context(open_engine(ingest_config(incoming, store_path, cfg).engine))
        cycle = Cycle(ingest_config(incoming, store_path, cfg), cfg, loaded, outputs, status, plot)
        resume(outputs)

        def on_batch(batch_df, batch_id: int) -> None:
            paths = [local_path(row.path) for row in batch_df.select("path").collect()]
            now = time.monotonic()
            batch = {p: now for p in paths if is_source_name(Path(p).name)}
            with busy:
                catch_up, first[0] = first[0], False
                log.info("micro-batch %d: %d new files", batch_id, len(batch))
                try:
                    cycle.run(engine, batch, catch_up=catch_up)
                except NowcastError as e:  # a batch that does not fit the store: said, and the service goes on
                    log.error("cycle failed: %s", e)
                status.write(outputs.folder)

        try:
            with busy:
                cycle.refresh()
                cycle.run(engine, {})  # forecasts due from the store as it is (a restart)
            files = (
                spark.readStream.format("binaryFile")
                .schema(FILES_SCHEMA)
                .option("recursiveFileLookup", "true")
                .load(incoming)
                .select("path")
            )
            query = (
                files.writeStream.foreachBatch(on_batch)
                .option("checkpointLocation", str(outputs.folder / CHECKPOINT))
                .trigger(processingTime=f"{trigger_s:g} seconds")
                .queryName("nowcast-watch")
                .start()
            )
            status.state = "watching"
            status.write(outputs.folder)
            log.info("watching %s (Spark Structured Streaming on %s, every %g s)", incoming, master, trigger_s)
            try:
                while not stop.is_set():
                    try:
                        if query.awaitTermination(max(1, round(IDLE_S))):  # the query ended by itself
                            break
                    except Exception:  # noqa: BLE001 - it failed: raised below, with its reason
                        break
                    with busy:
                        feed = (status.feed, status.feed_note)
                        if cycle.run(engine, {}) or feed != (status.feed, status.feed_note):
                            status.write(outputs.folder)
            finally:
                query.stop()  # waits for the batch in progress
                with busy:  # and for its cycle, should Spark have given up on it first
                    pass
            if query.exception() is not None:
                raise NowcastError(f"the streaming query over {incoming} failed: {query.exception()}")
        finally:
            status.state = "stopped"
            status.write(outputs.folder)
            log.info("stopped: %s", ", ".join(f"{n} {k}" for k, n in status.counts.items()))
    return status
