"""Helpers shared by the readers: attribute decoding, Z-R, and the checks every scan must pass.

``checked`` wraps every registered reader, so the reader contract (only ReaderError, naming the
file; plausible time and values) holds whether a reader is called through ``read_scan`` or
fetched with ``get_reader``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from nowcast.errors import ReaderError
from nowcast.ingest.config import ReaderOptions
from nowcast.scan import Scan

log = logging.getLogger(__name__)

EARLIEST = np.datetime64("1980-01-01T00:00:00", "s")
NEGATIVE_ROUNDING = -0.005  # values in (this, 0) are float rounding of a dry pixel: clipped to 0
MIN_RAIN_MMH = 0.01  # Z-R rates below this (the store's resolution) are reported as dry


def text(value: Any) -> str:
    """An HDF5/netCDF attribute as a str: bytes, numpy bytes and one-element arrays decoded."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"expected one value, got an array of shape {value.shape}")
        value = value.reshape(()).item()
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace").strip().rstrip("\x00")
    return str(value).strip()


def number(value: Any) -> float:
    """An attribute as a float: one-element arrays and numeric strings accepted."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"expected one value, got an array of shape {value.shape}")
        value = value.reshape(()).item()
    if isinstance(value, (bytes, np.bytes_, str)):
        value = text(value)
    return float(value)


def to_datetime64(value: datetime) -> np.datetime64:
    """A (possibly timezone-aware) datetime as naive UTC datetime64[s]."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(value.replace(microsecond=0), "s")


def reflectivity_to_rain(dbz: np.ndarray, a: float, b: float) -> np.ndarray:
    """Z = a R^b solved for R in mm/h; rates below 0.01 mm/h count as dry (0), NaN stays NaN."""
    with np.errstate(over="ignore", invalid="ignore"):
        rain = (np.power(10.0, np.asarray(dbz, dtype=np.float64) / 10.0) / a) ** (1.0 / b)
    rain[rain < MIN_RAIN_MMH] = 0.0
    return rain


def period_hours(start: np.datetime64, end: np.datetime64, path: str, what: str) -> float:
    """Length of an accumulation period in hours; a non-positive period is an error."""
    seconds = float((np.datetime64(end, "s") - np.datetime64(start, "s")) / np.timedelta64(1, "s"))
    if seconds <= 0:
        raise ReaderError(f"{path}: {what} accumulation period {start}..{end} is not positive")
    return seconds / 3600.0


def fallback_period_hours(options: ReaderOptions, path: str, what: str) -> float:
    """The accumulation period from the config when the file does not give one."""
    if options.accumulation_minutes is None:
        raise ReaderError(
            f"{path}: {what} is an accumulation but the file does not say over how long; "
            "set source.reader.accumulation_minutes"
        )
    return options.accumulation_minutes / 60.0


def validate_scan(scan: Scan, path: str, options: ReaderOptions) -> Scan:
    """Reject implausible scans; clip float-rounding negatives to 0.

    Args:
        scan: what a reader returned.
        path: the file, for messages.
        options: gives ``max_rain_mmh``.

    Returns:
        The scan, with values in (-0.005, 0) set to 0 and isolated implausible pixels (at most
        ``options.outlier_fraction`` of the valid ones) set to no data.

    Raises:
        ReaderError: too small a field, a time outside 1980..now+1 day, infinite, negative or
            too large values, or no valid pixel at all.
    """
    if not isinstance(scan, Scan):
        raise ReaderError(f"{path}: reader returned {type(scan).__name__}, not a Scan")
    ny, nx = scan.rain_rate.shape
    if ny < 2 or nx < 2:
        raise ReaderError(f"{path}: field of {ny}x{nx} pixels is too small (at least 2x2)")
    latest = np.datetime64(datetime.now(UTC).replace(tzinfo=None, microsecond=0), "s") + np.timedelta64(1, "D")
    if not EARLIEST <= scan.time <= latest:
        raise ReaderError(
            f"{path}: time {scan.time} is outside {EARLIEST}..{latest}; is the file's time encoded right?"
        )
    rain = scan.rain_rate
    if np.isinf(rain).any():
        raise ReaderError(f"{path}: the field holds infinite values")
    finite = np.isfinite(rain)
    if not finite.any():
        raise ReaderError(f"{path}: no valid pixel (the whole field is no data)")
    implausible = finite & ((rain <= NEGATIVE_ROUNDING) | (rain > options.max_rain_mmh))
    n_bad = int(implausible.sum())
    if n_bad:
        values = rain[implausible]
        if n_bad > options.outlier_fraction * finite.sum():
            low, high = float(values.min()), float(values.max())
            what = (
                f"rain rate {low:g} mm/h is negative (limit 0)"
                if low <= NEGATIVE_ROUNDING
                else f"rain rate {high:g} mm/h is above the limit {options.max_rain_mmh:g} mm/h "
                "(source.reader.max_rain_mmh)"
            )
            raise ReaderError(
                f"{path}: {what}, on {n_bad} pixels (more than source.reader.outlier_fraction "
                f"{options.outlier_fraction:g} of the valid ones)"
            )
        log.debug("%s: %d implausible pixels (%g..%g mm/h) set to no data", path, n_bad, values.min(), values.max())
        rain = np.where(implausible, np.float32(np.nan), rain)
    if np.any(rain < 0):
        rain = np.where(rain < 0, np.float32(0), rain)
    if rain is not scan.rain_rate:
        scan = Scan(time=scan.time, rain_rate=rain, grid=scan.grid, source=scan.source, quantity=scan.quantity)
    return scan


def checked(name: str, fn: Callable[[str, ReaderOptions], Scan]) -> Callable[[str, ReaderOptions], Scan]:
    """Wrap a reader: any failure becomes a ReaderError naming the file; the result is validated."""

    @functools.wraps(fn)
    def reader(path: str, options: ReaderOptions | None = None) -> Scan:
        path = str(path)
        options = options if options is not None else ReaderOptions()
        try:
            scan = fn(path, options)
        except ReaderError as e:
            if path in str(e):
                raise
            raise ReaderError(f"{path}: {e}") from e
        except Exception as e:  # a damaged file can fail anywhere inside h5py/netCDF4/numpy
            raise ReaderError(f"{path}: cannot be read as {name}: {type(e).__name__}: {e}") from e
        return validate_scan(scan, path, options)

    return reader
