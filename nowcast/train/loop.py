"""The training loop: build, restore or initialise, loop, validate, checkpoint; read top to bottom.

    one process:     nowcast train --config configs/train/debug.yaml
    two processes:   nowcast train --config configs/train/debug.yaml --nproc 2
    by hand:         torchrun --nproc-per-node 2 -m nowcast.train --config configs/train/debug.yaml
    several nodes:   torchrun --nnodes 2 --nproc-per-node 4 --rdzv-endpoint HOST:29500 \\
                         -m nowcast.train --config configs/train/default.yaml
    continue a run:  add --resume (continues from runs/<name>/last.pt exactly where it stopped)

``state.py`` holds what a checkpoint saves and restores; ``data.py`` how windows reach each rank.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from nowcast.config import dump_config
from nowcast.errors import ConfigError, NowcastError
from nowcast.model import z_to_rain
from nowcast.store import StoreReader
from nowcast.train import distributed
from nowcast.train.config import TrainConfig
from nowcast.train.data import (
    EpochPlan,
    WindowDataset,
    Windows,
    build_windows,
    make_loader,
    plan_epoch,
    resume_position,
    val_streams,
    wet_fraction,
)
from nowcast.train.loss import make_loss
from nowcast.train.metrics_log import RunReports
from nowcast.train.state import TrainState, build_state, checkpoint_payload, init_weights, restore, write_checkpoint
from nowcast.verify.metrics import categorical_scores, event, ratio

log = logging.getLogger(__name__)


def train(
    cfg: TrainConfig, resume: bool = False, stop_at: int | None = None, readers: list[StoreReader] | None = None
) -> dict[str, Any]:
    """Train (in this process, as one rank if launched by torchrun) until optim.max_steps.

    Args:
        cfg: the resolved config.
        resume: continue from ``run.out_dir/run.name/last.pt``: model, optimizer, scheduler,
            step, RNG and data order, exactly.
        stop_at: stop (with a checkpoint) at this step, e.g. to fit a job's time limit; the
            schedule still runs to max_steps when resumed.
        readers: already opened stores (default: open ``data.stores``).

    Returns:
        {"step", "run_dir", "metrics" (the last validation scores)}.
    """
    dist = distributed.setup(cfg.run.device)
    try:
        return _train(cfg, dist, resume, stop_at, readers)
    finally:
        distributed.teardown()


def _train(
    cfg: TrainConfig, dist: distributed.Dist, resume: bool, stop_at: int | None, readers: list[StoreReader] | None
) -> dict[str, Any]:
    main = dist.rank == 0
    run_dir = Path(cfg.run.out_dir) / cfg.run.name
    check_run(cfg, dist, run_dir, resume)
    data = build_data(cfg, dist, readers)
    state = build_state(cfg, dist.device)
    if resume:
        restore(state, run_dir / "last.pt", cfg.model, main)
    elif cfg.run.init_from:
        init_weights(state.model, cfg.run.init_from, cfg.model, main)
    model = distributed_model(state.model, dist)  # what the steps run; state.model stays unwrapped
    reports = RunReports(
        run_dir, dump_config(cfg), cfg.model.num_output_frames, cfg.optim.max_steps, state.step, cfg.run.log_every, main
    )
    last = min(cfg.optim.max_steps, stop_at or cfg.optim.max_steps)
    while state.step < last:
        run_epoch(model, state, data, cfg, dist, reports, run_dir, last)
    reports.close()
    return {"step": state.step, "run_dir": str(run_dir), "metrics": state.metrics}


def check_run(cfg: TrainConfig, dist: distributed.Dist, run_dir: Path, resume: bool) -> None:
    """Stop before any work on what cannot run here; share the CPU cores among local ranks."""
    if cfg.optim.batch_size % dist.world_size:
        raise ConfigError(
            f"optim.batch_size {cfg.optim.batch_size} must be divisible by the number of processes ({dist.world_size})"
        )
    if not resume and (run_dir / "last.pt").exists():
        raise ConfigError(
            f"run.name: {run_dir} already holds a run; pass --resume to continue it, or choose another run.name"
        )
    if dist.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))


@dataclass(frozen=True)
class TrainData:
    """The run's data, the same index on every rank: training windows by unit, this rank's validation loader."""

    readers: list[StoreReader]
    train_windows: Windows
    train_units: np.ndarray  # (N,) unit of every training window (``Windows.units``)
    val_loader: DataLoader | None  # None without validation windows
    per_rank: int  # batch size of one rank
    workers: int  # DataLoader workers per rank (0: in-process)

    @property
    def streams(self) -> int:
        return max(1, self.workers)


def build_data(cfg: TrainConfig, dist: distributed.Dist, readers: list[StoreReader] | None) -> TrainData:
    """Open the stores, index the windows and check that every rank gets whole batches."""
    readers = readers if readers is not None else open_stores(cfg)
    train_w, val_w = find_windows(readers, cfg, dist)
    chunk_times = [r.chunk_time for r in readers]
    train_units, val_units = train_w.units(chunk_times), val_w.units(chunk_times)
    per_rank, workers = cfg.optim.batch_size // dist.world_size, cfg.optim.num_workers
    streams = max(1, workers)
    first_plan = plan_epoch(train_units, cfg.run.seed, 0, dist.world_size, streams, per_rank)
    if first_plan.steps == 0:
        raise ConfigError(
            f"{len(train_w)} training windows in {len(np.unique(train_units))} time chunks are too "
            f"few for {dist.world_size} process(es) x {streams} loader worker(s) with batches of "
            f"{per_rank}: lower optim.batch_size or optim.num_workers, or add data"
        )
    val_loader = None
    if len(val_w):
        val_set = WindowDataset(
            readers,
            val_w,
            val_streams(val_units, dist.rank, dist.world_size, streams),
            cfg,
            per_rank,
            (cfg.run.seed, 0, dist.rank),
            train=False,
        )
        val_loader = make_loader(val_set, per_rank, workers)
    if dist.rank == 0:
        log.info(
            "%d training windows, %d validation windows; %d steps per epoch on %d process(es)",
            len(train_w),
            len(val_w),
            first_plan.steps,
            dist.world_size,
        )
    return TrainData(readers, train_w, train_units, val_loader, per_rank, workers)


def open_stores(cfg: TrainConfig) -> list[StoreReader]:
    """Open every store in ``data.stores``; they must share pixel size and time step, unless the
    model conditions on both (``sprog``: its S-PROG is estimated per input, its correction is told
    the lead time in minutes and the pixel size)."""
    readers = []
    for path in cfg.data.stores:
        try:
            readers.append(StoreReader(path))
        except NowcastError as e:
            raise ConfigError(f"data.stores: {e}") from None
    for reader in readers[1:] if cfg.model.name != "sprog" else []:
        first = readers[0]
        if (reader.grid.pixel_size, reader.layout.time_step_s) != (first.grid.pixel_size, first.layout.time_step_s):
            raise ConfigError(
                f"data.stores: {reader.path} has pixel size / time step {reader.grid.pixel_size} m / "
                f"{reader.layout.time_step_s} s, {first.path} has {first.grid.pixel_size} m / "
                f"{first.layout.time_step_s} s; one run trains on one resolution"
            )
    return readers


def find_windows(readers: list[StoreReader], cfg: TrainConfig, dist: distributed.Dist) -> tuple[Windows, Windows]:
    """Index the windows; the rain-fraction scan is split over ranks by chunk, then summed."""
    wet = None
    if cfg.data.min_rain_fraction > 0:
        fractions = []
        for reader in readers:
            chunks = range(dist.rank, math.ceil(reader.n_times / reader.chunk_time), dist.world_size)
            fractions.append(wet_fraction(reader, cfg.data.wet_threshold_mmh, list(chunks)))
        flat = distributed.all_reduce_sum(torch.from_numpy(np.concatenate(fractions)).to(dist.device)).cpu().numpy()
        wet = np.split(flat, np.cumsum([r.n_times for r in readers])[:-1])
    train_w, val_w = build_windows(readers, cfg, wet)
    if len(train_w) == 0:
        raise ConfigError(
            f"no training windows of {cfg.window_length} valid consecutive times in {cfg.data.stores} "
            f"(data.min_rain_fraction={cfg.data.min_rain_fraction}, data.val_fraction={cfg.data.val_fraction}, "
            f"data.val_ranges={cfg.data.val_ranges}): ingest more data or relax these"
        )
    return train_w, val_w


def distributed_model(model: torch.nn.Module, dist: distributed.Dist) -> torch.nn.Module:
    """The model as the steps run it: wrapped in DDP over several processes, else itself."""
    if dist.world_size == 1:
        return model
    return DistributedDataParallel(model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)


def run_epoch(
    model: torch.nn.Module,
    state: TrainState,
    data: TrainData,
    cfg: TrainConfig,
    dist: distributed.Dist,
    reports: RunReports,
    run_dir: Path,
    last: int,
) -> None:
    """Take this epoch's remaining steps (up to step ``last``), validating and checkpointing when due;
    an epoch already done moves the state on to the next one."""
    plan = plan_epoch(data.train_units, cfg.run.seed, state.epoch, dist.world_size, data.streams, data.per_rank)
    if state.epoch_step >= plan.steps:
        state.epoch, state.epoch_step = state.epoch + 1, 0
        return
    t0, seen = time.perf_counter(), 0  # samples/s per epoch
    for x, y, context in epoch_batches(data, plan, state, cfg, dist, last):
        loss, grad_norm = train_step(model, state.optimizer, state.scheduler, x, y, context, cfg, dist.device)
        state.step, state.epoch_step, seen = state.step + 1, state.epoch_step + 1, seen + len(x) * dist.world_size
        lr = float(state.scheduler.get_last_lr()[0])
        rate = seen / (time.perf_counter() - t0)
        reports.train_step(state.step, state.epoch, loss, lr, grad_norm, rate, last=state.step == last)
        improved = False
        if data.val_loader is not None and (state.step % cfg.run.val_every == 0 or state.step == cfg.optim.max_steps):
            improved = validate_and_record(state, data.val_loader, cfg, dist.device, reports)
        if improved or state.step % cfg.run.ckpt_every == 0 or state.step == last:
            save(run_dir, state, cfg, data.readers, main=dist.rank == 0, is_best=improved)


def epoch_batches(
    data: TrainData, plan: EpochPlan, state: TrainState, cfg: TrainConfig, dist: distributed.Dist, last: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """This rank's partition-local batches of the epoch from where the state stands (a resumed run
    skips those already taken without reading them), at most up to step ``last``."""
    used, first = resume_position(plan.batches[dist.rank], state.epoch_step)
    dataset = WindowDataset(
        data.readers,
        data.train_windows,
        plan.streams[dist.rank],
        cfg,
        data.per_rank,
        (cfg.run.seed, state.epoch, dist.rank),
        skip=used,
        first_stream=first,
    )
    loader = make_loader(dataset, data.per_rank, data.workers, pin_memory=dist.device.type == "cuda")
    return itertools.islice(loader, min(plan.steps - state.epoch_step, last - state.step))


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    context: torch.Tensor,
    cfg: TrainConfig,
    device: torch.device,
) -> tuple[float, float]:
    """One optimisation step on a batch; returns (loss, gradient norm before clipping)."""
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)  # (B, T, 1, h, w) mm/h, NaN
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        pred_z = _forward(model, x, context.to(device))  # (B, T_out, 1, h, w)
    loss = loss_of(cfg)(pred_z, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip or math.inf)
    optimizer.step()
    scheduler.step()
    return loss.item(), grad_norm.item()


def loss_of(cfg: TrainConfig):
    """The run's loss, ``loss(pred_z, target_mmh)``, with the model's z transform."""
    return make_loss(cfg.loss, cfg.model.dry_threshold_mmh, cfg.model.max_rain_mmh)


def _forward(model: torch.nn.Module, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """The model's training output (z) for a batch and its (B, 2) time steps and pixel sizes."""
    return model(x, transformed=True, time_step_s=context[:, 0], pixel_size_m=context[:, 1])


VAL_THRESHOLD_MMH = 1.0  # the CSI that picks best.pt: "CSI@1" of `nowcast evaluate`


def score_counts(pred_mmh: torch.Tensor, target_mmh: torch.Tensor, threshold_mmh: float) -> torch.Tensor:
    """Sums per lead time over valid target pixels, to add up across batches and ranks; the event
    is ``nowcast.verify``'s (rain above the threshold).

    Args:
        pred_mmh, target_mmh: (B, T, 1, H, W); NaN in the target = no data.

    Returns:
        (5, T) float64: hits, misses, false alarms, sum |error| (mm/h), valid pixels.
    """
    mask = torch.isfinite(target_mmh)
    obs = event(target_mmh, threshold_mmh) & mask
    fc = event(pred_mmh, threshold_mmh) & mask
    abs_err = torch.where(mask, (pred_mmh - target_mmh).abs(), 0.0)
    per_lead = lambda t: t.double().sum(dim=(0, 2, 3, 4))  # noqa: E731  (B, T, 1, H, W) -> (T,)
    return torch.stack(
        [per_lead(obs & fc), per_lead(obs & ~fc), per_lead(~obs & fc), per_lead(abs_err), per_lead(mask)]
    )


def scores(counts: np.ndarray) -> dict[str, list[float]]:
    """CSI and MAE per lead time from ``score_counts`` sums, by ``nowcast.verify``'s formulas: NaN
    where undefined (no event forecast or observed; no valid pixel), as ``nowcast evaluate`` reports."""
    hits, misses, false_alarms, abs_err, n = counts
    return {
        "csi_1mm": categorical_scores(hits, misses, false_alarms)["CSI"].tolist(),
        "mae_mmh": ratio(abs_err, n).tolist(),
    }


def mean_defined(values: list[float]) -> float:
    """The mean of the values that are defined (not NaN); NaN when none is."""
    defined = [v for v in values if not math.isnan(v)]
    return float(np.mean(defined)) if defined else math.nan


def is_better(score: float, best: float) -> bool:
    """A validation score beats the best so far (NaN: none yet, or never defined): higher, or any
    score while no best is defined, so best.pt exists from the first validation on."""
    return math.isnan(best) or score > best


@torch.no_grad()
def validate(model: torch.nn.Module, loader, cfg: TrainConfig, device: torch.device) -> dict[str, Any]:
    """Loss, CSI at 1 mm/h and MAE per lead time over this rank's share, summed over ranks."""
    model_cfg, loss_fn = cfg.model, loss_of(cfg)
    model.eval()
    loss_sum, n = 0.0, 0
    counts = torch.zeros(5, model_cfg.num_output_frames, dtype=torch.float64)
    for x, y, context in loader:
        x, y = x.to(device), y.to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            pred_z = _forward(model, x, context.to(device))  # (B, T_out, 1, H, W)
        loss_sum += loss_fn(pred_z, y).item() * len(x)
        n += len(x)
        pred = z_to_rain(pred_z.float(), model_cfg.dry_threshold_mmh, model_cfg.max_rain_mmh)  # mm/h
        counts += score_counts(pred, y, VAL_THRESHOLD_MMH).cpu()
    model.train()
    total = torch.cat([torch.tensor([loss_sum, n], dtype=torch.float64), counts.flatten()])
    total = distributed.all_reduce_sum(total.to(device)).cpu()
    csi_mae = scores(total[2:].view_as(counts).numpy())
    result: dict[str, Any] = {"val_loss": (total[0] / total[1].clamp(min=1)).item(), **csi_mae}
    result["csi_1mm_mean"] = mean_defined(csi_mae["csi_1mm"])
    result["mae_mmh_mean"] = mean_defined(csi_mae["mae_mmh"])
    return result


def validate_and_record(
    state: TrainState, loader: DataLoader, cfg: TrainConfig, device: torch.device, reports: RunReports
) -> bool:
    """Validate the unwrapped model, keep the scores and the best CSI in the state; True if it improved."""
    state.metrics = validate(state.model, loader, cfg, device)
    improved = is_better(state.metrics["csi_1mm_mean"], state.best["csi_1mm_mean"])
    if improved:
        state.best = {"csi_1mm_mean": state.metrics["csi_1mm_mean"], "step": state.step}
    reports.validation(state.step, state.epoch, state.metrics)
    return improved


def save(run_dir: Path, state: TrainState, cfg: TrainConfig, readers: list[StoreReader], main: bool, is_best: bool):
    """Rank 0 writes the checkpoint; every rank waits for it."""
    if main:
        write_checkpoint(run_dir, checkpoint_payload(state, cfg, readers), cfg.run.keep_last, is_best)
    distributed.barrier()
