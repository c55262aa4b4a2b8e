"""Format readers behind one registry: each is a pure function ``(path, options) -> Scan``.

Contract of every reader (checked for all of them by one generic test):
- returns a :class:`nowcast.scan.Scan`: valid time (UTC), float32 rain rate in mm/h with NaN
  for no data and 0 for measured dry, a north-up grid in projection metres with its CRS (or in
  lon/lat degrees, EPSG:4326, which ``nowcast.regrid`` projects), and what it read (``quantity``);
- converts whatever the file holds (rate, accumulation, reflectivity) to mm/h;
- raises :class:`nowcast.errors.ReaderError` naming the file and the problem for anything it
  cannot read (damaged, truncated, empty, wrong content, implausible values); never anything else.

An unknown reader name is a mistake in the config, not in a file: ``get_reader`` raises
:class:`nowcast.errors.ConfigError` listing the registered names (as ``open_engine`` does for
engines); ``read_scan`` turns it into the file's ReaderError, to keep the contract above.

The format is detected from the file's content (magic bytes, conventions), not its name.
``pysteps:NAME`` names any pySTEPS importer (``readers/pysteps_importer.py``); those are never
detected, since most of pySTEPS' formats carry no signature of their own.
"""

from __future__ import annotations

from collections.abc import Callable

from nowcast.errors import ConfigError, ReaderError
from nowcast.ingest.config import ReaderOptions
from nowcast.ingest.readers.common import checked
from nowcast.ingest.readers.detect import detect_format
from nowcast.scan import Scan

__all__ = ["Reader", "available", "detect_format", "get_reader", "read_scan", "register"]

Reader = Callable[[str, ReaderOptions], Scan]

_READERS: dict[str, Reader] = {}


def register(name: str) -> Callable[[Reader], Reader]:
    """Register a reader under ``name``; it is wrapped so the contract above holds for it."""

    def decorator(fn: Reader) -> Reader:
        wrapped = checked(name, fn)
        _READERS[name] = wrapped
        return wrapped

    return decorator


def available() -> list[str]:
    """The registered reader names, sorted."""
    _load_builtin()
    return sorted(_READERS)


def get_reader(name: str) -> Reader:
    """The reader registered under ``name``.

    Raises:
        ConfigError: no reader of that name; the message lists the available ones.
    """
    _load_builtin()
    if name.startswith("pysteps:"):
        from nowcast.ingest.readers.pysteps_importer import pysteps_reader

        if name not in _READERS:
            _READERS[name] = pysteps_reader(name.removeprefix("pysteps:"))
        return _READERS[name]
    try:
        return _READERS[name]
    except KeyError:
        raise ConfigError(
            f"source.reader.format: unknown reader {name!r}; available: {', '.join(available())} "
            "(or auto, to detect the format from the content; or pysteps:NAME for any pySTEPS importer)"
        ) from None


def read_scan(path: str, options: ReaderOptions | None = None) -> Scan:
    """Read one radar file as a validated scan, detecting the format unless options name it.

    Args:
        path: the file.
        options: reader options (format, quantity, Z-R, accumulation fallback, max rate);
            defaults when None.

    Returns:
        The scan: valid time, float32 mm/h with NaN for no data, north-up grid.

    Raises:
        ReaderError: naming the file, for anything that cannot be read or is implausible.
    """
    path = str(path)
    options = options if options is not None else ReaderOptions()
    name = detect_format(path) if options.format == "auto" else options.format
    try:
        reader = get_reader(name)
    except ConfigError as e:
        raise ReaderError(f"{path}: {e}") from None
    try:
        return reader(path, options)
    except ReaderError:
        raise
    except Exception as e:  # the wrapper already converts; this only guards a reader registered oddly
        raise ReaderError(f"{path}: {type(e).__name__}: {e}") from e


def _load_builtin() -> None:
    # Imported here so that registering has no import-order surprises.
    from nowcast.ingest.readers import cf, grib, knmi, odim  # noqa: F401
