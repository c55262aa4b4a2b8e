"""The Dask engine: a LocalCluster of single-threaded worker processes, or a running cluster.

Worker processes, one thread each: netCDF4/HDF5 are not thread-safe, and one job per process
keeps memory bounded by one chunk per worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from nowcast.errors import ConfigError
from nowcast.ingest.config import EngineConfig

log = logging.getLogger(__name__)


class DaskEngine:
    name = "dask"

    def __init__(self, client):
        self.client = client

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        from dask.distributed import as_completed

        items = list(items)
        futures = self.client.map(fn, items, pure=False)
        item_of = {f.key: item for f, item in zip(futures, items)}
        for future in as_completed(futures):
            try:
                yield item_of[future.key], future.result()
            except Exception as e:  # noqa: BLE001 - handed back to the caller
                yield item_of[future.key], e
            future.release()


@contextmanager
def open_dask(config: EngineConfig):
    import dask
    from dask.distributed import Client, LocalCluster

    # distributed configures its own loggers at import; keep its chatter out of the run log
    logging.getLogger("distributed").setLevel(max(logging.WARNING, logging.getLogger().level))
    if config.address:
        try:
            client = Client(config.address, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise ConfigError(
                f"engine.address: cannot reach the Dask scheduler at {config.address} ({e}); "
                "check that `dask scheduler` runs there and the port is open"
            ) from e
        log.info("dask: connected to %s (%d workers)", config.address, len(client.scheduler_info()["workers"]))
        try:
            yield DaskEngine(client)
        finally:
            client.close()
        return
    # distributed starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also pins glibc's mmap
    # threshold: every scan-sized array is then mmapped and unmapped afresh, and reads and writes
    # ran ~1.7x slower than in a plain process (measured). Workers keep glibc's adaptive default.
    environ = {
        k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items() if k != "MALLOC_TRIM_THRESHOLD_"
    }
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(
            n_workers=config.n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    client = Client(cluster)
    log.info("dask: local cluster of %d worker processes", config.n_workers)
    try:
        yield DaskEngine(client)
    finally:
        client.close()
        cluster.close()
