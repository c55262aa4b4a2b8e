"""Where training reports go: metrics.csv (and TensorBoard when installed), a progress bar, log lines.

All live on rank 0 only (``RunReports`` is silent elsewhere). The CSV has one fixed header so any
tool can read it: train rows fill loss/lr/grad_norm/samples_per_s, validation rows fill the
scores, per lead time too.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

log = logging.getLogger(__name__)


class MetricsLog:
    """Append rows to ``run_dir/metrics.csv``; mirror scalars to TensorBoard if it is importable."""

    def __init__(self, run_dir: Path, num_leads: int):
        run_dir.mkdir(parents=True, exist_ok=True)
        leads = [f"{name}_lead{t + 1:02d}" for name in ("csi_1mm", "mae_mmh") for t in range(num_leads)]
        self.columns = [
            "step",
            "epoch",
            "split",
            "loss",
            "lr",
            "grad_norm",
            "samples_per_s",
            "csi_1mm_mean",
            "mae_mmh_mean",
            *leads,
        ]
        path = run_dir / "metrics.csv"
        new = not path.exists()
        self.file = path.open("a", newline="")
        self.writer = csv.DictWriter(self.file, self.columns, extrasaction="ignore")
        if new:
            self.writer.writeheader()
        self.tensorboard: Any = None
        try:  # optional: no hard dependency on tensorboard
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:
            pass

    def write(self, row: dict[str, Any]) -> None:
        row = dict(row)
        for name in ("csi_1mm", "mae_mmh"):
            for t, value in enumerate(row.pop(name, [])):
                row[f"{name}_lead{t + 1:02d}"] = value
        self.writer.writerow(row)
        self.file.flush()
        if self.tensorboard is not None:
            for key, value in row.items():
                if isinstance(value, float):
                    self.tensorboard.add_scalar(f"{row['split']}/{key}", value, row["step"])

    def close(self) -> None:
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


class Progress:
    """A rich progress bar with loss and samples/s; does nothing when not enabled (rank != 0)."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.bar = None
        if enabled:
            self.bar = RichProgress(
                TextColumn("train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                transient=True,
            )
            self.task = self.bar.add_task("train", total=total, completed=done, info="")
            self.bar.start()

    def update(self, step: int, loss: float, samples_per_s: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=f"loss {loss:.4f}  {samples_per_s:.1f} samples/s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class RunReports:
    """One run's reports: ``config.yaml`` and ``metrics.csv`` in the run folder, the progress bar and
    the validation log lines, on the main process; nothing on the others.

    Args:
        run_dir: the run's folder (made here).
        config_yaml: the resolved config, saved beside the checkpoints.
        num_leads: lead times of the validation scores.
        max_steps, done_steps: the progress bar's total and start.
        log_every: write a train row every this many steps.
        enabled: True on rank 0.
    """

    def __init__(
        self, run_dir: Path, config_yaml: str, num_leads: int, max_steps: int, done_steps: int, log_every: int, enabled
    ):
        self.metrics_log = MetricsLog(run_dir, num_leads) if enabled else None
        if enabled:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(config_yaml)
        self.progress = Progress(max_steps, done_steps, enabled=enabled)
        self.log_every = log_every

    def train_step(
        self, step: int, epoch: int, loss: float, lr: float, grad_norm: float, samples_per_s: float, last: bool
    ) -> None:
        """Advance the bar; a metrics row every ``log_every`` steps and at the last one."""
        self.progress.update(step, loss, samples_per_s)
        if self.metrics_log is not None and (step % self.log_every == 0 or last):
            row = {"step": step, "epoch": epoch, "split": "train", "loss": loss, "lr": lr, "grad_norm": grad_norm}
            self.metrics_log.write({**row, "samples_per_s": samples_per_s})

    def validation(self, step: int, epoch: int, metrics: dict[str, Any]) -> None:
        if self.metrics_log is None:
            return
        self.metrics_log.write({"step": step, "epoch": epoch, "split": "val", "loss": metrics["val_loss"], **metrics})
        log.info(
            "step %d: val loss %.4f, CSI(1 mm/h) %.3f, MAE %.3f mm/h",
            step,
            metrics["val_loss"],
            metrics["csi_1mm_mean"],
            metrics["mae_mmh_mean"],
        )

    def close(self) -> None:
        self.progress.close()
        if self.metrics_log is not None:
            self.metrics_log.close()
