"""Ingest configuration: what to read, how to align it, where to write, which engine.

Names carry their units and are the names the code and the store use (``time_step_s`` is the
store attribute and ``StoreLayout.time_step_s``). Keys renamed since are still read, with a
warning that names the new key: see ``RENAMED``.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from nowcast.config import Section
from nowcast.store import MAX_RAIN_MMH

log = logging.getLogger(__name__)

# section -> {old key: (new key, factor from the old unit to the new)}
RENAMED: dict[str, dict[str, tuple[str, float]]] = {
    "source.reader": {"max_rain_rate": ("max_rain_mmh", 1.0)},
    "align": {
        "time_step_minutes": ("time_step_s", 60.0),
        "source_time_step_minutes": ("source_time_step_s", 60.0),
        "time_tolerance_seconds": ("tolerance_s", 1.0),
    },
}


def _renamed_keys(section: str, data: Any) -> Any:
    """Map the section's old keys onto the new ones, converting units, with a warning for each."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for old, (new, factor) in RENAMED[section].items():
        if old not in data:
            continue
        if new in data:
            raise ValueError(f"{old} is the old name of {new}; give only {new}")
        value = data.pop(old)
        if factor != 1.0 and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = value * factor
            value = int(value) if float(value).is_integer() else value
        data[new] = value
        log.warning("%s.%s is deprecated: use %s.%s: %s", section, old, section, new, value)
    return data


class ReaderOptions(Section):
    """Options every reader receives; format-specific ones are ignored by the others."""

    format: str = "auto"  # a reader name from nowcast.ingest.readers, pysteps:NAME, or auto-detect by content
    # pysteps:NAME readers: the importer's arguments; empty = those pySTEPS' config file gives it
    importer_kwargs: dict[str, Any] = {}
    quantity: str | None = None  # ODIM quantity to read (RATE, ACRR, DBZH); None = first of those found
    zr_a: float = Field(200.0, gt=0)  # Z = a R^b (Marshall-Palmer by default)
    zr_b: float = Field(1.6, gt=0)
    accumulation_minutes: float | None = Field(None, gt=0)  # fallback when a file does not say
    max_rain_mmh: float = Field(500.0, gt=0, le=MAX_RAIN_MMH)  # above this a pixel is implausible
    # Implausible pixels (negative, above max_rain_mmh) up to this fraction of the valid ones are
    # isolated clutter or bit errors and become no data; more than that and the file is refused.
    outlier_fraction: float = Field(0.001, ge=0, le=0.05)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        return _renamed_keys("source.reader", data)


class SourceConfig(Section):
    paths: list[str] = Field(min_length=1)  # files, folders or glob patterns (** allowed)
    exclude: list[str] = []  # glob patterns of files to leave out
    time_from_name: bool = True  # plan from the time stamp in file names (checked against content)
    reader: ReaderOptions = ReaderOptions()


class Crop(Section):
    """Crop box in projection metres (pixel centres inside are kept)."""

    x_min: float
    x_max: float
    y_min: float
    y_max: float

    @model_validator(mode="after")
    def _ordered(self) -> Crop:
        if self.x_min >= self.x_max or self.y_min >= self.y_max:
            raise ValueError("crop needs x_min < x_max and y_min < y_max")
        return self


class AlignConfig(Section):
    """How scans are put on the store's grid and time axis."""

    time_step_s: int = Field(300, gt=0)
    tolerance_s: float = Field(60.0, ge=0)  # scans this close to a step snap onto it
    source_time_step_s: int | None = Field(None, gt=0)  # set to average several scans per step
    crop: Crop | None = None
    # resample to this size (nowcast.regrid: within 1 % kept; area average coarser, bilinear finer)
    pixel_size_m: float | None = Field(None, gt=0)
    # reproject to this CRS (PROJ string, WKT, EPSG:code); None: the source's, or a local
    # equal-area projection (LAEA centred on the domain) for lon/lat sources
    crs: str | None = None
    min_valid_fraction: float = Field(0.5, ge=0, le=1)  # of a target pixel's area with data, else no data

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        return _renamed_keys("align", data)

    @model_validator(mode="after")
    def _steps(self) -> AlignConfig:
        if self.source_time_step_s is not None and self.time_step_s % self.source_time_step_s:
            raise ValueError("time_step_s must be a whole multiple of source_time_step_s")
        return self

    @property
    def scans_per_step(self) -> int:
        """Source scans averaged into one step (1: each scan is a step of its own)."""
        return self.time_step_s // self.source_time_step_s if self.source_time_step_s else 1


class StoreConfig(Section):
    path: str
    chunk_time: int = Field(12, ge=1, le=10_000)
    chunk_space: int = Field(512, ge=16, le=8192)


class SparkConfig(Section):
    master: str = "local[*]"
    executor_memory: str | None = None  # e.g. "4g"
    executor_cores: int | None = Field(None, ge=1)
    conf: dict[str, str] = {}  # any other spark.* setting


class EngineConfig(Section):
    name: Literal["dask", "spark", "serial"] = "dask"
    n_workers: int = Field(2, ge=1)  # Dask LocalCluster worker processes (one thread each)
    address: str | None = None  # a running Dask scheduler, e.g. tcp://host:8786
    spark: SparkConfig = SparkConfig()


class IngestConfig(Section):
    source: SourceConfig
    store: StoreConfig
    align: AlignConfig = AlignConfig()
    engine: EngineConfig = EngineConfig()

    @field_validator("source", mode="before")
    @classmethod
    def _paths_as_list(cls, value):
        if isinstance(value, dict) and isinstance(value.get("paths"), str):
            value = {**value, "paths": [value["paths"]]}
        return value
