"""The training loop: config, data, model, steps, validation, checkpoints; read top to bottom.

    one process:     nowcast train --config configs/train/debug.yaml
    two processes:   nowcast train --config configs/train/debug.yaml --nproc 2
    by hand:         torchrun --nproc-per-node 2 -m nowcast.train --config configs/train/debug.yaml
    several nodes:   torchrun --nnodes 2 --nproc-per-node 4 --rdzv-endpoint HOST:29500 \
                         -m nowcast.train --config configs/train/default.yaml
    continue a run:  add --resume (continues from runs/<name>/last.pt exactly where it stopped)
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from nowcast.checkpoint import link_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from nowcast.config import dump_config
from nowcast.errors import ConfigError, NowcastError
from nowcast.model import ModelConfig, build_model, z_to_rain
from nowcast.model.config import PARAMETER_FREE
from nowcast.store import StoreReader
from nowcast.train import distributed
from nowcast.train.config import TrainConfig
from nowcast.train.data import (
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
from nowcast.train.metrics_log import MetricsLog, Progress
from nowcast.verify.metrics import categorical_scores, event, ratio

log = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (pred_z, target_mmh) -> loss: make_loss


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


def lr_lambda(cfg: TrainConfig):
    """Linear warm-up to optim.lr, then cosine decay to lr * min_lr_ratio at max_steps."""
    warmup, total, floor = cfg.optim.warmup_steps, cfg.optim.max_steps, cfg.optim.min_lr_ratio

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    context: torch.Tensor,
    loss_fn: LossFn,
    grad_clip: float,
    device: torch.device,
) -> tuple[float, float]:
    """One optimisation step on a batch; returns (loss, gradient norm before clipping)."""
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)  # (B, T, 1, h, w) mm/h, NaN
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        pred_z = _forward(model, x, context.to(device))  # (B, T_out, 1, h, w)
    loss = loss_fn(pred_z, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip or math.inf)
    optimizer.step()
    scheduler.step()
    return loss.item(), grad_norm.item()


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
def validate(
    model: torch.nn.Module, loader, loss_fn: LossFn, model_cfg: ModelConfig, device: torch.device
) -> dict[str, Any]:
    """Loss, CSI at 1 mm/h and MAE per lead time over this rank's share, summed over ranks."""
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
    result = {"val_loss": (total[0] / total[1].clamp(min=1)).item(), **scores(total[2:].view_as(counts).numpy())}
    result["csi_1mm_mean"] = mean_defined(result["csi_1mm"])
    result["mae_mmh_mean"] = mean_defined(result["mae_mmh"])
    return result


def checkpoint_payload(model, optimizer, scheduler, step, epoch, epoch_step, cfg, readers, metrics, best):
    first = readers[0]
    facts = {"pixel_size_m": first.grid.pixel_size, "time_step_s": int(first.layout.time_step_s), "crs": first.grid.crs}
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "epoch": epoch,
        "epoch_step": epoch_step,
        "config": {**cfg.model_dump(mode="json"), **facts},
        "rng": rng_state(),
        "metrics": metrics,
        "best": best,
    }


def write_checkpoint(run_dir: Path, payload: dict, keep_last: int, is_best: bool) -> None:
    """step_XXXXXXXX.pt (the last ``keep_last`` kept), last.pt, and best.pt when the score improved."""
    path = save_checkpoint(run_dir / f"step_{payload['step']:08d}.pt", payload)
    link_checkpoint(path, run_dir / "last.pt")
    if is_best:
        link_checkpoint(path, run_dir / "best.pt")
    for old in sorted(run_dir.glob("step_*.pt"))[:-keep_last]:
        old.unlink()


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

    # data: the index of windows; every rank builds the same one
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
    if main:
        log.info(
            "%d training windows, %d validation windows; %d steps per epoch on %d process(es)",
            len(train_w),
            len(val_w),
            first_plan.steps,
            dist.world_size,
        )

    # model, optimizer, schedule; a resumed run loads all three and the RNG state
    torch.manual_seed(cfg.run.seed)
    model = build_model(cfg.model).to(dist.device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, fused=dist.device.type == "cuda"
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    step, epoch, epoch_step, metrics, best = 0, 0, 0, {}, {"csi_1mm_mean": math.nan, "step": -1}
    if resume:
        ckpt = load_checkpoint(run_dir / "last.pt")
        if ModelConfig.from_saved(ckpt["config"]["model"]) != cfg.model:
            raise ConfigError(
                f"model: the config differs from the one in {run_dir / 'last.pt'}; a resumed run keeps its model"
            )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        step, epoch, epoch_step = ckpt["step"], ckpt["epoch"], ckpt["epoch_step"]
        metrics, best = ckpt["metrics"], ckpt["best"]
        if main:
            log.info("resuming %s at step %d (epoch %d)", run_dir, step, epoch)
    elif cfg.run.init_from:
        init = load_checkpoint(cfg.run.init_from)
        saved = ModelConfig.from_saved(init["config"]["model"])
        free = saved.model_copy(update={k: getattr(cfg.model, k) for k in PARAMETER_FREE})
        if free != cfg.model:
            raise ConfigError(
                f"run.init_from: {cfg.run.init_from} holds another model config; fine-tuning "
                f"keeps the model (only {', '.join(PARAMETER_FREE)} may change): copy its model section"
            )
        model.load_state_dict(init["model"])
        if main:
            log.info("model weights from %s (step %d)", cfg.run.init_from, init["step"])
            for key in PARAMETER_FREE:
                if getattr(saved, key) != getattr(cfg.model, key):
                    log.info(
                        "model.%s: %s here, %s in %s (it has no weights, so fine-tuning may change it)",
                        key,
                        getattr(cfg.model, key),
                        getattr(saved, key),
                        cfg.run.init_from,
                    )
    loss_fn = make_loss(cfg.loss, cfg.model.dry_threshold_mmh, cfg.model.max_rain_mmh)
    raw_model = model  # checkpoints and validation use the unwrapped module
    if dist.world_size > 1:
        model = DistributedDataParallel(model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)

    metrics_log = MetricsLog(run_dir, cfg.model.num_output_frames) if main else None
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(dump_config(cfg))
    progress = Progress(cfg.optim.max_steps, step, enabled=main)

    def checkpoint(is_best: bool = False) -> None:
        if main:
            payload = checkpoint_payload(
                raw_model, optimizer, scheduler, step, epoch, epoch_step, cfg, readers, metrics, best
            )
            write_checkpoint(run_dir, payload, cfg.run.keep_last, is_best)
        distributed.barrier()

    # the loop: epochs of partition-local batches; every rank takes plan.steps of them
    last = min(cfg.optim.max_steps, stop_at or cfg.optim.max_steps)
    t0, seen = time.perf_counter(), 0
    while step < last:
        plan = plan_epoch(train_units, cfg.run.seed, epoch, dist.world_size, streams, per_rank)
        if epoch_step >= plan.steps:
            epoch, epoch_step = epoch + 1, 0
            continue
        used, first = resume_position(plan.batches[dist.rank], epoch_step)
        dataset = WindowDataset(
            readers,
            train_w,
            plan.streams[dist.rank],
            cfg,
            per_rank,
            (cfg.run.seed, epoch, dist.rank),
            skip=used,
            first_stream=first,
        )
        loader = make_loader(dataset, per_rank, workers, pin_memory=dist.device.type == "cuda")
        for x, y, context in itertools.islice(loader, min(plan.steps - epoch_step, last - step)):
            loss, grad_norm = train_step(
                model, optimizer, scheduler, x, y, context, loss_fn, cfg.optim.grad_clip, dist.device
            )
            step, epoch_step, seen = step + 1, epoch_step + 1, seen + len(x) * dist.world_size
            rate = seen / (time.perf_counter() - t0)
            progress.update(step, loss, rate)
            if main and (step % cfg.run.log_every == 0 or step == last):
                metrics_log.write(
                    {
                        "step": step,
                        "epoch": epoch,
                        "split": "train",
                        "loss": loss,
                        "lr": scheduler.get_last_lr()[0],
                        "grad_norm": grad_norm,
                        "samples_per_s": rate,
                    }
                )
            improved = False
            if val_loader is not None and (step % cfg.run.val_every == 0 or step == cfg.optim.max_steps):
                metrics = validate(raw_model, val_loader, loss_fn, cfg.model, dist.device)
                improved = is_better(metrics["csi_1mm_mean"], best["csi_1mm_mean"])
                if improved:
                    best = {"csi_1mm_mean": metrics["csi_1mm_mean"], "step": step}
                if main:
                    metrics_log.write(
                        {"step": step, "epoch": epoch, "split": "val", "loss": metrics["val_loss"], **metrics}
                    )
                    log.info(
                        "step %d: val loss %.4f, CSI(1 mm/h) %.3f, MAE %.3f mm/h",
                        step,
                        metrics["val_loss"],
                        metrics["csi_1mm_mean"],
                        metrics["mae_mmh_mean"],
                    )
            if improved or step % cfg.run.ckpt_every == 0 or step == last:
                checkpoint(is_best=improved)
        t0, seen = time.perf_counter(), 0  # rate per epoch: loader start-up is not a step
    progress.close()
    if metrics_log is not None:
        metrics_log.close()
    return {"step": step, "run_dir": str(run_dir), "metrics": metrics}
