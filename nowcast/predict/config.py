"""PredictConfig: how a forecast is made and written (everything but the checkpoint and the input)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nowcast.config import Section
from nowcast.model.ensemble import EnsembleConfig
from nowcast.predict.forecast import DEFAULT_MAX_PIXELS, DEFAULT_OVERLAP


class PredictConfig(Section):
    """Options of ``nowcast predict`` (and of the model forecaster in ``nowcast evaluate``)."""

    leads: int | None = Field(None, ge=1)  # lead times written; None = all the model makes
    tile_size: int | None = Field(None, ge=8)  # square tiles of this side; None = only above max_pixels
    tile_overlap: int = Field(DEFAULT_OVERLAP, ge=0)  # pixels shared by neighbouring tiles
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=64)  # pixel budget of one model call
    # auto: bfloat16 where the CPU computes it natively (AVX512-BF16/AMX: ~2x faster, forecasts
    # within ~0.002 mm/h on average of float32's), float32 elsewhere
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    fallback: Literal["none", "extrapolation"] = "none"  # what to do when input frames are missing
    tolerance_s: float = Field(60.0, ge=0)  # raw files: how far a scan time may be from a step
    # the input's time step when it is not the model's: the model then steps at it, one lead per input step
    # (None: the input must be at the model's step; skill at other steps: see the model card)
    input_time_step_s: int | None = Field(None, ge=1)
    # where the forecast is written: the grid the model ran on, or back on the input files' own grid
    output_grid: Literal["model", "input"] = "model"
    plot: bool = False  # a PNG panel and a GIF beside the output
    ensemble: EnsembleConfig = EnsembleConfig()  # how members are perturbed (`predict --members`)

    def forecast_options(self) -> dict:
        """Keyword arguments of ``run_model``."""
        return {
            "tile_size": self.tile_size,
            "overlap": self.tile_overlap,
            "max_pixels": self.max_pixels,
            "bfloat16": self.use_bfloat16(),
        }

    def use_bfloat16(self) -> bool:
        if self.precision != "auto":
            return self.precision == "bfloat16"
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
