"""TrainConfig: the whole training run in one typed tree, loaded from configs/train/*.yaml.

Sections live beside the code that owns them where there is one: ``ModelConfig`` in
``nowcast.model``, ``LossConfig`` in ``nowcast.train.loss``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from nowcast.config import Section
from nowcast.model import ModelConfig
from nowcast.train.loss import LossConfig


class DataConfig(Section):
    """Where samples come from and how they are cut, split and augmented."""

    stores: list[str] = Field(min_length=1)  # one or more stores with the same pixel size and time step
    crop_size: int = Field(256, ge=8)  # square random crops; divisible by model.multiple
    min_rain_fraction: float = Field(0.0, ge=0, le=1)  # mean wet fraction a training window needs
    wet_threshold_mmh: float = Field(0.5, gt=0)  # what counts as wet for min_rain_fraction
    # validation: whole contiguous blocks of time, never random windows. val_ranges (ISO start/end
    # pairs, end exclusive) if given, else the last val_fraction of each store's valid times.
    val_fraction: float = Field(0.1, ge=0, lt=1)
    val_ranges: list[tuple[str, str]] = []
    val_stride: int = Field(6, ge=1)  # use every Nth validation window (neighbours overlap heavily)
    val_crop_size: int | None = Field(None, ge=8)  # None: the whole domain, trimmed to model.multiple
    flips: bool = True
    rot90: bool = True
    chunks_in_memory: int = Field(2, ge=1)  # time chunks a loader worker holds and shuffles together

    @field_validator("stores", mode="before")
    @classmethod
    def _as_list(cls, value):
        return [value] if isinstance(value, str) else value


class OptimConfig(Section):
    lr: float = Field(1e-3, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)  # cosine decays to lr * min_lr_ratio
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(200, ge=0)
    max_steps: int = Field(20_000, ge=1)
    grad_clip: float = Field(1.0, ge=0)  # 0 disables clipping
    batch_size: int = Field(16, ge=1)  # global: split evenly over ranks
    num_workers: int = Field(2, ge=0)  # DataLoader workers per rank


class RunConfig(Section):
    out_dir: str = "runs"
    name: str = "default"  # the run writes to out_dir/name
    seed: int = 0
    log_every: int = Field(10, ge=1)
    val_every: int = Field(500, ge=1)
    ckpt_every: int = Field(500, ge=1)
    keep_last: int = Field(3, ge=1)  # step checkpoints kept, besides last.pt and best.pt
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # fine-tuning: start from this checkpoint's model weights (same model config, but for the
    # settings without weights: model.motion, model.heavy_tail_mmh); the optimizer,
    # schedule and step start fresh. Ignored by --resume, which continues the run's own last.pt.
    init_from: str | None = None


class TrainConfig(Section):
    data: DataConfig
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    loss: LossConfig = LossConfig()
    run: RunConfig = RunConfig()

    @model_validator(mode="after")
    def _fits(self) -> TrainConfig:
        m = self.model.multiple
        if self.data.crop_size % m:
            raise ValueError(
                f"data.crop_size {self.data.crop_size} must be divisible by model.multiple {m} "
                f"(model.stem_stride x model.downsample)"
            )
        leads = self.loss.lead_weights
        if leads is not None and len(leads) != self.model.num_output_frames:
            raise ValueError(
                f"loss.lead_weights has {len(leads)} weights, the model {self.model.num_output_frames} output frames"
            )
        if self.data.val_crop_size is not None and self.data.val_crop_size % m:
            raise ValueError(f"data.val_crop_size {self.data.val_crop_size} must be divisible by model.multiple {m}")
        return self

    @property
    def window_length(self) -> int:
        return self.model.num_input_frames + self.model.num_output_frames
