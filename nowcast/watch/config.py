"""WatchConfig: how ``nowcast watch`` reads scans, waits for missing ones and keeps forecasts.

The store side reuses ingest's sections (reader, alignment, chunking) and the forecast side
predict's, so one scan is read and one forecast made exactly as ``nowcast ingest`` and
``nowcast predict`` would; the keys here are only what a service adds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from nowcast.config import Section
from nowcast.ingest.config import AlignConfig, ReaderOptions
from nowcast.predict.config import PredictConfig


class WatchStoreOptions(Section):
    """Chunking of a store the watcher creates (an existing store keeps its own)."""

    # small time chunks: each scan rewrites its whole time chunk, so fewer rows make cheaper writes
    chunk_time: int = Field(12, ge=1, le=10_000)
    chunk_space: int = Field(512, ge=16, le=8192)


class WatchConfig(Section):
    reader: ReaderOptions = ReaderOptions()
    align: AlignConfig = AlignConfig()
    store: WatchStoreOptions = WatchStoreOptions()
    predict: PredictConfig = PredictConfig()
    method: Literal["model", "sprog"] = "model"  # the checkpoint, or nowcast's S-PROG (no checkpoint)
    # a frame of the newest window still missing this long after the newest scan was ingested:
    # forecast by ``fallback`` (extrapolation from the frames there) or issue none for that time
    max_wait_s: float = Field(120.0, ge=0)
    fallback: Literal["none", "extrapolation"] = "extrapolation"
    # no forecast when the newest scan is older than this (wall clock, UTC): the feed has stopped;
    # null to forecast archives replayed at any age (demos, tests, benchmarks)
    max_input_age_s: float | None = Field(1800.0, gt=0)
    # init times this many steps back from the newest are still forecast when their window becomes
    # whole late (a late scan, or scans that landed while the service was down); older ones are not
    catch_up_steps: int = Field(12, ge=0)
    keep_forecasts: int = Field(288, ge=1)  # the newest N forecast files kept in --out (288 = a day at 5 min)
    poll_s: float | None = Field(None, gt=0)  # poll the folder every N s (network file systems) instead of inotify
    # fold the store manifest's per-scan files into one every N ingests (each ingest reads them all)
    compact_manifest_every: int = Field(100, ge=1)
    warm_up: bool = True  # one forecast on zeros once the grid is known, so the first real one is not slow

    @model_validator(mode="after")
    def _retention_covers_catch_up(self) -> WatchConfig:
        if self.keep_forecasts <= self.catch_up_steps:
            raise ValueError(
                f"keep_forecasts ({self.keep_forecasts}) must exceed catch_up_steps ({self.catch_up_steps}), "
                "or a forecast removed by retention would be made again"
            )
        return self
