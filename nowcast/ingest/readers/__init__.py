"""Format readers behind one registry: each is a pure function ``(path, options) -> Scan``.

Contract of every reader (checked for all of them by one generic test):
- returns a :class:`nowcast.scan.Scan`: valid time (UTC), float32 rain rate in mm/h with NaN
  for no data and 0 for measured dry, a north-up grid in projection metres with its CRS;
- converts whatever the file holds (rate, accumulation, reflectivity) to mm/h;
- raises :class:`nowcast.errors.ReaderError` naming the file and the problem for anything it
  cannot read (damaged, truncated, empty, wrong content, implausible values); never anything else.

The format is detected from the file's content (magic bytes, conventions), not its name.
"""

from __future__ import annotations

from typing import Callable

from nowcast.errors import ReaderError
from nowcast.ingest.config import ReaderOptions
from nowcast.scan import Scan

Reader = Callable[[str, ReaderOptions], Scan]

_READERS: dict[str, Reader] = {}


def register(name: str) -> Callable[[Reader], Reader]:
    def decorator(fn: Reader) -> Reader:
        _READERS[name] = fn
        return fn

    return decorator


def available() -> list[str]:
    _load_builtin()
    return sorted(_READERS)


def get_reader(name: str) -> Reader:
    _load_builtin()
    try:
        return _READERS[name]
    except KeyError:
        raise ReaderError(f"unknown reader {name!r}; available: {', '.join(sorted(_READERS))}") from None


def _load_builtin() -> None:
    # Imported here so that registering has no import-order surprises.
    from nowcast.ingest.readers import cf, knmi, odim  # noqa: F401
