"""Training with its run folder in an object store: ``run.out_dir: s3://bucket/runs``.

The training loop writes checkpoints with a local file system's guarantees (a temporary file
renamed into place, ``last.pt`` a hard link). With an object-store ``run.out_dir``, each rank
trains in a local staging folder instead, and rank 0 uploads the run folder when training stops
(finished, ``--stop-at``, or failed): checkpoints first, then ``best.pt`` and ``last.pt``, each
one PUT, so a reader of the bucket sees whole files only. ``--resume`` first copies the run
folder down (every rank needs ``last.pt``). A run killed outright (SIGKILL, a lost machine)
uploads nothing from its staging folder: use ``--stop-at`` to bound what a job can lose, or a
shared file system path for ``run.out_dir``.

``run.init_from`` may be a URL too; it is copied down before training.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from nowcast import objstore
from nowcast.errors import ConfigError
from nowcast.train.config import TrainConfig

log = logging.getLogger(__name__)
POINTERS = ("best.pt", "last.pt")  # uploaded after the checkpoints they point at


def run_training(cfg: TrainConfig, resume: bool = False, stop_at: int | None = None) -> dict[str, Any]:
    """``nowcast.train.loop.train``, with ``run.out_dir`` and ``run.init_from`` allowed to be URLs.

    Returns:
        what ``train`` returns, with ``run_dir`` the URL of the run folder when it is remote.
    """
    from nowcast.train.loop import train

    if not objstore.is_url(cfg.run.out_dir) and not objstore.is_url(cfg.run.init_from):
        return train(cfg, resume=resume, stop_at=stop_at)
    with tempfile.TemporaryDirectory(prefix="nowcast-run-") as staging:
        staging_path = Path(staging)
        run_update: dict[str, Any] = {}
        if cfg.run.init_from is not None and objstore.is_url(cfg.run.init_from):
            run_update["init_from"] = str(objstore.download(cfg.run.init_from, staging_path / "init_from.pt"))
        if not objstore.is_url(cfg.run.out_dir):
            local = cfg.model_copy(update={"run": cfg.run.model_copy(update=run_update)})
            return train(local, resume=resume, stop_at=stop_at)
        remote_run = objstore.join(cfg.run.out_dir, cfg.run.name)
        local_run = staging_path / "runs" / cfg.run.name
        if objstore.exists(objstore.join(remote_run, "last.pt")):
            if not resume:
                raise ConfigError(
                    f"run.name: {remote_run} already holds a run; pass --resume to continue it, "
                    "or choose another run.name"
                )
            objstore.download_folder(remote_run, local_run)
            log.info("resuming from %s (copied to a local staging folder)", remote_run)
        elif resume:
            raise ConfigError(f"--resume: there is no {objstore.join(remote_run, 'last.pt')} to continue")
        before = _snapshot(local_run)
        run_update["out_dir"] = str(staging_path / "runs")
        local = cfg.model_copy(update={"run": cfg.run.model_copy(update=run_update)})
        main = int(os.environ.get("RANK", 0)) == 0
        try:
            result = train(local, resume=resume, stop_at=stop_at)
        except BaseException:
            if main:
                _upload_after_failure(local_run, remote_run, before)
            raise
        if main:
            upload_run(local_run, remote_run, before)
        return {**result, "run_dir": remote_run}


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under ``folder``: what was copied down is not uploaded again."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


def upload_run(local_run: Path, remote_run: str, before: dict[str, tuple[int, int]] | None = None) -> None:
    """Mirror the staged run folder into ``remote_run``: new and changed files (checkpoints before
    the pointers to them), then remove the step checkpoints the run pruned."""
    before = before or {}
    now = _snapshot(local_run)
    changed = [rel for rel, stat in now.items() if before.get(rel) != stat]
    changed.sort(key=lambda rel: (Path(rel).name in POINTERS, rel))
    for rel in changed:
        objstore.upload(local_run / rel, objstore.join(remote_run, *Path(rel).parts))
    for name in objstore.list_names(remote_run):
        if name.startswith("step_") and name.endswith(".pt") and name not in now:
            objstore.remove(objstore.join(remote_run, name))
    log.info("run folder uploaded to %s (%d files)", remote_run, len(changed))


def _upload_after_failure(local_run: Path, remote_run: str, before: dict) -> None:
    """Keep what a failed run checkpointed; an upload error here must not hide the run's own error."""
    if not (local_run / "last.pt").exists():
        return
    try:
        upload_run(local_run, remote_run, before)
    except Exception as e:  # noqa: BLE001 - reported, the training error is re-raised by the caller
        log.error("could not upload the checkpoints of the failed run to %s: %s", remote_run, e)
