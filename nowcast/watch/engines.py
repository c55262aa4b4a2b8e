"""The engines that drive ``nowcast watch``'s cycles: the watchdog loop (default) or a Spark stream.

Both run the same ``Cycle`` (ingest a batch of scans, then the forecasts due); they differ only
in how new files are noticed. Imported lazily, so the default never loads pyspark.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from nowcast.errors import ConfigError
from nowcast.predict.loading import LoadedModel
from nowcast.watch.config import WatchConfig
from nowcast.watch.status import Status

Service = Callable[[str | Path, str | Path, str | Path, LoadedModel, WatchConfig, bool, threading.Event], Status]


def _watchdog(master: str | None) -> Service:
    from nowcast.watch.service import watch

    if master is not None:
        raise ConfigError(
            f"--master {master}: only --engine spark runs on a Spark master; drop it, or add --engine spark"
        )
    return lambda incoming, store, out, loaded, cfg, plot, stop: watch(
        incoming, store, out, loaded, cfg, plot=plot, stop=stop
    )


def _spark(master: str | None) -> Service:
    from nowcast.watch.stream import watch_stream

    return lambda incoming, store, out, loaded, cfg, plot, stop: watch_stream(
        incoming, store, out, loaded, cfg, master=master or "local[*]", plot=plot, stop=stop
    )


ENGINES: dict[str, Callable[[str | None], Service]] = {"watchdog": _watchdog, "spark": _spark}


def service_for(engine: str, master: str | None = None) -> Service:
    """The service function of ``engine`` (``master``: the Spark master URL, spark only).

    Raises:
        ConfigError: an unknown engine, or a master given to the watchdog loop.
    """
    try:
        factory = ENGINES[engine]
    except KeyError:
        raise ConfigError(f"--engine {engine}: unknown watch engine; available: {', '.join(ENGINES)}") from None
    return factory(master)
