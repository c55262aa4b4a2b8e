"""What a run carries from step to step and writes to its checkpoints.

``TrainState`` is the model (unwrapped: DDP wraps it for the steps only), its optimiser and
schedule, the position in the data (step, epoch, batches taken in the epoch) and the validation
scores. It starts one of three ways: fresh (``build_state``, seeded by ``run.seed``), restored
exactly from the run's own ``last.pt`` (``restore``, ``--resume``), or with another run's weights
and a fresh optimiser and schedule (``init_weights``, ``run.init_from``, fine-tuning).
Checkpoints are written by rank 0 (``save``): a step file, ``last.pt``, and ``best.pt`` when the
validation CSI improved.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nowcast.checkpoint import link_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from nowcast.errors import ConfigError
from nowcast.model import ModelConfig, build_model
from nowcast.model.config import PARAMETER_FREE
from nowcast.store import StoreReader
from nowcast.train.config import TrainConfig

log = logging.getLogger(__name__)


def lr_lambda(cfg: TrainConfig):
    """Linear warm-up to optim.lr, then cosine decay to lr * min_lr_ratio at max_steps."""
    warmup, total, floor = cfg.optim.warmup_steps, cfg.optim.max_steps, cfg.optim.min_lr_ratio

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _no_best() -> dict[str, Any]:
    return {"csi_1mm_mean": math.nan, "step": -1}


@dataclass
class TrainState:
    model: torch.nn.Module  # unwrapped: checkpoints and validation use it
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    step: int = 0
    epoch: int = 0
    epoch_step: int = 0  # batches taken in this epoch (every rank the same)
    metrics: dict[str, Any] = field(default_factory=dict)  # the last validation's scores
    best: dict[str, Any] = field(default_factory=_no_best)  # the best validation CSI so far, and its step


def build_state(cfg: TrainConfig, device: torch.device) -> TrainState:
    """A fresh model (seeded by ``run.seed``), AdamW and the warm-up + cosine schedule."""
    torch.manual_seed(cfg.run.seed)
    model = build_model(cfg.model).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, fused=device.type == "cuda"
    )
    return TrainState(model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg)))


def restore(state: TrainState, path: Path, model_cfg: ModelConfig, main: bool) -> None:
    """Continue the run in ``path`` exactly: weights, optimiser, schedule, RNG, position and scores."""
    ckpt = load_checkpoint(path)
    if ModelConfig.from_saved(ckpt["config"]["model"]) != model_cfg:
        raise ConfigError(f"model: the config differs from the one in {path}; a resumed run keeps its model")
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.scheduler.load_state_dict(ckpt["scheduler"])
    set_rng_state(ckpt["rng"])
    state.step, state.epoch, state.epoch_step = ckpt["step"], ckpt["epoch"], ckpt["epoch_step"]
    state.metrics, state.best = ckpt["metrics"], ckpt["best"]
    if main:
        log.info("resuming %s at step %d (epoch %d)", path.parent, state.step, state.epoch)


def init_weights(model: torch.nn.Module, path: str, model_cfg: ModelConfig, main: bool) -> None:
    """Load the weights of another run's checkpoint (fine-tuning): the same model, but for the
    settings without weights (``PARAMETER_FREE``), which may change and are noted when they do."""
    init = load_checkpoint(path)
    saved = ModelConfig.from_saved(init["config"]["model"])
    free = saved.model_copy(update={k: getattr(model_cfg, k) for k in PARAMETER_FREE})
    if free != model_cfg:
        raise ConfigError(
            f"run.init_from: {path} holds another model config; fine-tuning "
            f"keeps the model (only {', '.join(PARAMETER_FREE)} may change): copy its model section"
        )
    model.load_state_dict(init["model"])
    if not main:
        return
    log.info("model weights from %s (step %d)", path, init["step"])
    for key in PARAMETER_FREE:
        if getattr(saved, key) != getattr(model_cfg, key):
            log.info(
                "model.%s: %s here, %s in %s (it has no weights, so fine-tuning may change it)",
                key,
                getattr(model_cfg, key),
                getattr(saved, key),
                path,
            )


def checkpoint_payload(state: TrainState, cfg: TrainConfig, readers: list[StoreReader]) -> dict[str, Any]:
    """The checkpoint of ``state``: with the resolved config and the data facts predict must match."""
    first = readers[0]
    facts = {"pixel_size_m": first.grid.pixel_size, "time_step_s": int(first.layout.time_step_s), "crs": first.grid.crs}
    return {
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "step": state.step,
        "epoch": state.epoch,
        "epoch_step": state.epoch_step,
        "config": {**cfg.model_dump(mode="json"), **facts},
        "rng": rng_state(),
        "metrics": state.metrics,
        "best": state.best,
    }


def write_checkpoint(run_dir: Path, payload: dict, keep_last: int, is_best: bool) -> None:
    """step_XXXXXXXX.pt (the last ``keep_last`` kept), last.pt, and best.pt when the score improved."""
    path = save_checkpoint(run_dir / f"step_{payload['step']:08d}.pt", payload)
    link_checkpoint(path, run_dir / "last.pt")
    if is_best:
        link_checkpoint(path, run_dir / "best.pt")
    for old in sorted(run_dir.glob("step_*.pt"))[:-keep_last]:
        old.unlink()
