"""Engines run one function over many jobs: serial (in-process), Dask (default), Spark.

Contract of every engine: a context manager ``open_engine(config)`` yielding an object with
``map_unordered(fn, items) -> Iterator[tuple[item, result | Exception]]``: every item comes
back exactly once, with its result or the exception its task raised (a failed task never
stops the others), in completion order. ``fn`` and the items are plain picklable objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

from nowcast.errors import ConfigError
from nowcast.ingest.config import EngineConfig


class Engine(Protocol):
    name: str

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]: ...


def _serial(config: EngineConfig):
    from nowcast.ingest.engines.serial import open_serial

    return open_serial(config)


def _dask(config: EngineConfig):
    from nowcast.ingest.engines.dask import open_dask

    return open_dask(config)


def _spark(config: EngineConfig):
    from nowcast.ingest.engines.spark import open_spark

    return open_spark(config)


ENGINES: dict[str, Callable[[EngineConfig], AbstractContextManager[Engine]]] = {
    "serial": _serial,
    "dask": _dask,
    "spark": _spark,
}


def open_engine(config: EngineConfig) -> AbstractContextManager[Engine]:
    try:
        factory = ENGINES[config.name]
    except KeyError:
        raise ConfigError(f"engine.name: unknown engine {config.name!r}; available: {', '.join(ENGINES)}") from None
    return factory(config)
