"""Ingest configuration: what to read, how to align it, where to write, which engine."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from nowcast.config import Section
from nowcast.store import MAX_RAIN_MMH


class ReaderOptions(Section):
    """Options every reader receives; format-specific ones are ignored by the others."""

    format: str = "auto"  # a reader name from nowcast.ingest.readers, or auto-detect by content
    quantity: str | None = None  # ODIM quantity to read (RATE, ACRR, DBZH); None = first of those found
    zr_a: float = Field(200.0, gt=0)  # Z = a R^b (Marshall-Palmer by default)
    zr_b: float = Field(1.6, gt=0)
    accumulation_minutes: float | None = Field(None, gt=0)  # fallback when a file does not say
    max_rain_rate: float = Field(500.0, gt=0, le=MAX_RAIN_MMH)  # above this a pixel is implausible
    # Implausible pixels (negative, above max_rain_rate) up to this fraction of the valid ones are
    # isolated clutter or bit errors and become no data; more than that and the file is refused.
    outlier_fraction: float = Field(0.001, ge=0, le=0.05)


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

    time_step_minutes: float = Field(5.0, gt=0)
    time_tolerance_seconds: float = Field(60.0, ge=0)  # scans this close to a step snap onto it
    source_time_step_minutes: float | None = Field(None, gt=0)  # set to average several scans per step
    crop: Crop | None = None
    pixel_size_m: float | None = Field(None, gt=0)  # coarsen by area mean to this size (integer factor)
    min_valid_fraction: float = Field(0.5, ge=0, le=1)  # of a coarse pixel's fine pixels, else no data

    @model_validator(mode="after")
    def _steps(self) -> AlignConfig:
        if self.source_time_step_minutes is not None:
            ratio = self.time_step_minutes / self.source_time_step_minutes
            if ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
                raise ValueError("time_step_minutes must be a whole multiple of source_time_step_minutes")
        return self


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
