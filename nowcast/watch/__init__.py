"""``nowcast watch``: ingest each scan as it lands and forecast as soon as its input window is whole.

Read in this order: ``config`` (what can be set), ``events`` (which file-system events count as
a finished scan), ``cycle`` (one scan batch: ingest, then the forecasts now due), ``status``
(the status file and the counts), ``service`` (the loop, signals, restart), ``stream`` (the
same cycles driven by a Spark Structured Streaming query), ``engines`` (``--engine``: which of
the two), ``replay`` (an archive played into a folder at its own cadence, for demos, tests and
benchmarks).
"""

from nowcast.watch.config import WatchConfig

__all__ = ["WatchConfig"]
