"""ModelConfig: everything needed to rebuild the model, and nothing about training."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from nowcast.config import Section


class MotionConfig(Section):
    """The optical flow inside the model (``motion.py``); recorded in checkpoints, since a model
    learns its correction for the motion it was trained with."""

    pyramid: list[int] = Field([16, 8, 4, 2], min_length=1)  # pooling factors, coarse to fine
    window_sigma: float = Field(3.0, gt=0)  # Lucas-Kanade window (Gaussian sigma), pixels of each level
    iterations: int = Field(2, ge=1)  # warp-and-solve rounds per level
    spread_sigma_px: float = Field(24.0, gt=0)  # smoothing of the confident flow, full-resolution pixels
    ridge: float = Field(1e-3, gt=0)  # Tikhonov term: no texture -> no motion update, not a division by zero
    min_level_px: int = Field(32, ge=2)  # no level coarser than this many pixels across (small domains, crops)
    # 2: central-difference gradients, warps padded with the edge value. 1: the first release's
    # solve (gradients over a 4-pixel span at twice their size, so each round moved half-way;
    # zero-padded warps), kept so that checkpoints trained with it forecast as they were trained:
    # the earlier shipped ConvLSTMs are; the shipped S-PROG uses solver 2
    solver: int = Field(2, ge=1, le=2)


class SprogConfig(Section):
    """S-PROG (``sprog.py``): estimated from each event's own frames at run time, nothing learned.

    The defaults are pySTEPS' (``pysteps.nowcasts.sprog`` with its examples' dB transform)."""

    n_cascade_levels: int = Field(6, ge=3, le=12)
    gauss_scale: float = Field(0.5, gt=0)  # width of the bandpass filters in log wavenumber
    rain_threshold_mmh: float = Field(0.1, gt=0)  # below it: no rain, on the way in and out
    zero_db: float = -15.0  # the dBR given to no rain: below the threshold's

    @model_validator(mode="after")
    def _zero_below_threshold(self) -> SprogConfig:
        threshold_db = 10 * math.log10(self.rain_threshold_mmh)
        if self.zero_db >= threshold_db:
            raise ValueError(f"zero_db {self.zero_db} must be below the threshold's {threshold_db:.2f} dBR")
        return self


class CorrectorConfig(Section):
    """The learned correction of the S-PROG forecast (``corrector.py``): a small CNN on coarse cells."""

    hidden_channels: int = Field(32, ge=1)
    dilations: list[int] = Field([1, 2, 4, 1], min_length=1)  # one 3x3 convolution per entry
    cell_px: int = Field(4, ge=1, le=32)  # the correction is computed on cells this many pixels across
    max_log_gain: float = Field(1.0, gt=0)  # each level's amplitude changes by at most exp(+-max_log_gain)
    max_offset_db: float = Field(5.0, ge=0)  # the dBR offset (where it rains more or less) stays within +-this


# settings with no weights behind them: fine-tuning may change them (the motion is estimated, the
# heavy tail applied at inference), everything else must match the weights it starts from
PARAMETER_FREE = ("motion", "heavy_tail_mmh")


class ModelConfig(Section):
    """Which model, its shape and its rain transform.

    ``name`` picks the model (``MODELS`` in ``nowcast.model``): ``sprog`` is the S-PROG forecast
    estimated from the inputs at run time plus a learned correction, set up by ``sprog`` and
    ``corrector``; ``convlstm`` is the ConvLSTM encoder-forecaster, whose shape the fields from
    ``stem_channels`` to ``heavy_tail_mmh`` give. Layer ``i`` of its encoder is a ConvLSTM with
    ``hidden_channels[i]`` channels and kernel ``kernel_sizes[i]``; a strided stem conv
    (``stem_stride``) comes before layer 0 and a strided conv (``downsample[i - 1]``) before every
    other layer. The forecaster mirrors it. With ``advection`` the network corrects an
    optical-flow extrapolation instead of drawing the forecast from nothing (see ``motion.py``).
    """

    name: Literal["convlstm", "sprog"] = "convlstm"
    num_input_frames: int = Field(6, ge=1, le=64)
    num_output_frames: int = Field(12, ge=1, le=128)
    sprog: SprogConfig = SprogConfig()
    corrector: CorrectorConfig = CorrectorConfig()
    stem_channels: int = Field(16, ge=1)
    stem_stride: int = Field(2, ge=1, le=8)
    hidden_channels: list[int] = Field([32, 64, 64], min_length=1)
    kernel_sizes: list[int] = Field([5, 5, 3], min_length=1)
    downsample: list[int] = [2, 2]
    # forecast = the last frame advected along optical flow from the inputs (motion.py) plus what
    # the network adds; False: the network draws every frame itself (the plain Shi et al. model)
    advection: bool = True
    motion: MotionConfig = MotionConfig()
    # with advection: scales (Gaussian sigma, full-resolution pixels) of the detail the correction
    # may blur away; one output channel each
    smoothing_sigmas_px: list[float] = Field([1.0, 2.0, 4.0, 8.0], min_length=1)
    # with advection, at inference: the forecast keeps as many pixels at or above this rate, at
    # least as intense, as the advected last frame (tail.py); None: the network's output as is
    heavy_tail_mmh: float | None = Field(5.0, gt=0)
    dry_threshold_mmh: float = Field(0.1, gt=0)  # rates below this are dry, in and out
    max_rain_mmh: float = Field(300.0, gt=0)  # inputs clip here; outputs never exceed it

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        n = len(self.hidden_channels)
        if any(c < 1 for c in self.hidden_channels):
            raise ValueError(f"hidden_channels must all be >= 1, got {self.hidden_channels}")
        if len(self.kernel_sizes) != n or any(k < 1 or k % 2 == 0 for k in self.kernel_sizes):
            raise ValueError(
                f"kernel_sizes needs one odd size per layer of hidden_channels ({n}), got {self.kernel_sizes}"
            )
        if len(self.downsample) != n - 1 or any(d < 1 or d > 8 for d in self.downsample):
            raise ValueError(
                f"downsample needs {n - 1} factors in 1..8 (one between each pair of layers), got {self.downsample}"
            )
        if self.name == "sprog" and self.num_input_frames < 3:
            raise ValueError(f"the sprog model needs num_input_frames >= 3 (AR(2)), got {self.num_input_frames}")
        if self.max_rain_mmh <= self.dry_threshold_mmh:
            raise ValueError("max_rain_mmh must be larger than dry_threshold_mmh")
        return self

    @classmethod
    def from_saved(cls, saved: dict) -> ModelConfig:
        """The config recorded in a checkpoint.

        ``advection`` and ``heavy_tail_mmh`` missing: off, as before they existed. ``motion`` and
        ``smoothing_sigmas_px`` missing: the defaults of their first release, which every
        checkpoint that loads was trained with (those of the earlier correction layout do not load
        at all); within ``motion``, a missing ``solver`` or ``min_level_px`` means the first
        solver (1) and levels down to 4 pixels across.
        """
        motion = {"solver": 1, "min_level_px": 4, **saved.get("motion", {})}
        return cls.model_validate({"advection": False, "heavy_tail_mmh": None, **saved, "motion": motion})

    @property
    def multiple(self) -> int:
        """Height and width of every input must be divisible by this (total downsampling)."""
        if self.name == "sprog":
            return 1
        return self.stem_stride * math.prod(self.downsample)
