"""Tiny checkpoints for the predict and evaluate tests: built with the model's own API, saved like training does."""

from __future__ import annotations

from pathlib import Path

import torch

from nowcast.checkpoint import save_checkpoint
from nowcast.model import ModelConfig, build_model

# 1x1 ConvLSTM kernels keep the receptive field narrow (stem, strided convs and the head only),
# so tiling can be compared with a whole-domain run pixel by pixel. No advection: its motion is
# estimated over the whole input, so a tile's motion differs from the whole domain's by design.
TINY = ModelConfig(
    num_input_frames=3,
    num_output_frames=4,
    stem_channels=4,
    stem_stride=2,
    hidden_channels=[8, 8],
    kernel_sizes=[1, 1],
    downsample=[2],
    advection=False,
)


def tiny_model(cfg: ModelConfig = TINY, seed: int = 0, gain: float = 3.0):
    """A randomly initialised model whose weights are scaled by ``gain`` so its output varies in space."""
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(gain)
    return model


def write_checkpoint(
    path: Path,
    pixel_size_m: float = 1000.0,
    time_step_s: int = 300,
    cfg: ModelConfig = TINY,
    seed: int = 0,
    crs: str | None = None,
) -> Path:
    """A checkpoint in the format ``nowcast train`` writes (model, step, config with the data facts)."""
    model = tiny_model(cfg, seed)
    config = {"model": cfg.model_dump(mode="json"), "pixel_size_m": pixel_size_m, "time_step_s": time_step_s}
    if crs is not None:
        config["crs"] = crs
    return save_checkpoint(path, {"model": model.state_dict(), "step": 123, "epoch": 1, "config": config})
