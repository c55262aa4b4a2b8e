"""Every format pySTEPS reads: ``pysteps:NAME`` wraps ``pysteps.io.get_method(NAME, "importer")``.

Picked in config (``source.reader.format: pysteps:fmi_pgm``) or with ``--format pysteps:NAME``
on ingest, inspect and predict. The importer's keyword arguments are
``source.reader.importer_kwargs``; left empty, they are the ones pySTEPS' own configuration
file (``pysteps.rcparams.data_sources``) gives the data source that uses that importer.

What an importer returns is turned into a Scan here, once:

- ``metadata["unit"]``: ``mm/h`` as it is, ``mm`` over ``accutime`` minutes to mm/h, ``dBZ``
  through the configured Z-R relation; ``transform: dB`` is undone first;
- the grid from ``x1, y2, xpixelsize, ypixelsize, projection``; ``yorigin: lower`` rows flipped
  to north-up;
- the time from the file name: pySTEPS importers do not return one (its archive finder reads
  the name too).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from nowcast.errors import ConfigError, ReaderError
from nowcast.ingest.config import ReaderOptions
from nowcast.ingest.readers.common import checked, reflectivity_to_rain
from nowcast.scan import Grid, Scan

log = logging.getLogger(__name__)

PREFIX = "pysteps:"


def _pysteps_io():
    with contextlib.redirect_stdout(io.StringIO()):  # pySTEPS prints where its config file is at import
        import pysteps.io

    return pysteps.io


def importer_names() -> list[str]:
    """The importers pySTEPS offers."""
    _pysteps_io()
    from pysteps.io.interface import _importer_methods

    return sorted(_importer_methods)


def default_kwargs(name: str) -> dict[str, Any]:
    """The importer arguments pySTEPS' configuration file gives the data source using ``name``."""
    _pysteps_io()
    from pysteps import rcparams

    for source in rcparams.data_sources.values():
        if source.get("importer") == name:
            return dict(source.get("importer_kwargs", {}))
    return {}


def _to_mmh(values: np.ndarray, metadata: dict[str, Any], path: str, options: ReaderOptions) -> np.ndarray:
    rain = np.asarray(values, dtype=np.float64)
    if str(metadata.get("transform") or "").lower() == "db":
        rain = 10.0 ** (rain / 10.0)
    unit = str(metadata.get("unit", "")).lower()
    if unit == "mm/h":
        return rain
    if unit == "mm":
        minutes = metadata.get("accutime") or options.accumulation_minutes
        if not minutes:
            raise ReaderError(f"{path}: an accumulation in mm over an unknown period; set accumulation_minutes")
        return rain * 60.0 / float(minutes)
    if unit == "dbz":
        return reflectivity_to_rain(rain, options.zr_a, options.zr_b)
    raise ReaderError(f"{path}: pySTEPS unit {metadata.get('unit')!r} is not mm/h, mm or dBZ")


def _grid(shape: tuple[int, int], metadata: dict[str, Any]) -> Grid:
    """The grid in metres: some importers (KNMI) give km, with the ellipsoid in km too."""
    from nowcast.ingest.readers.knmi import proj4_in_metres

    crs = str(metadata["projection"])
    metres = proj4_in_metres(crs) if crs.strip().startswith("+") else crs
    scale = 1000.0 if metres != crs and "+a=" in crs and float(crs.split("+a=")[1].split()[0]) < 1e5 else 1.0
    x1, y2 = float(metadata["x1"]) * scale, float(metadata["y2"]) * scale
    dx, dy = float(metadata["xpixelsize"]) * scale, float(metadata["ypixelsize"]) * scale
    return Grid.from_corner(x1, y2, dx, shape, metres if scale != 1.0 else crs, pixel_size_y=dy)


def pysteps_reader(name: str) -> Callable[[str, ReaderOptions], Scan]:
    """The reader of pySTEPS importer ``name`` (see the module docstring), under the reader contract.

    Raises:
        ConfigError: pySTEPS has no importer of that name (the message lists them).
    """
    names = importer_names()
    if name not in names:
        raise ConfigError(f"source.reader.format: pySTEPS has no importer {name!r}; it has: {', '.join(names)}")
    importer = _pysteps_io().get_method(name, "importer")

    def read(path: str, options: ReaderOptions) -> Scan:
        from nowcast.ingest.sources import time_from_name

        kwargs = dict(options.importer_kwargs) or default_kwargs(name)
        values, _quality, metadata = importer(path, **kwargs)
        rain = _to_mmh(np.ma.filled(np.ma.asarray(values, dtype=np.float64), np.nan), metadata, path, options)
        if str(metadata.get("yorigin", "upper")) == "lower":
            rain = rain[::-1]
        time = time_from_name(path)
        if time is None:
            raise ReaderError(
                f"{path}: pySTEPS importers give no time and the file name holds none; name files with "
                "their time stamp (e.g. radar_202406011200.h5)"
            )
        words = f"{metadata.get('institution', name)}: {metadata.get('unit')} via pySTEPS {name}"
        return Scan(np.datetime64(time, "s"), rain.astype(np.float32), _grid(rain.shape, metadata), path, words)

    return checked(PREFIX + name, read)
