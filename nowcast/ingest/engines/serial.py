"""The serial engine: a plain loop in this process (the baseline the benchmarks compare to)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from nowcast.ingest.config import EngineConfig


class SerialEngine:
    name = "serial"

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        for item in items:
            try:
                yield item, fn(item)
            except Exception as e:  # noqa: BLE001 - handed back to the caller, as every engine does
                yield item, e


@contextmanager
def open_serial(config: EngineConfig):
    yield SerialEngine()
