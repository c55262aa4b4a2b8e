"""One ingest at a time per store: a lock file beside the store, taken over when stale.

The lock holds the owner's host and pid. A second run on the same host refuses while the
owner lives; a lock left by a killed process (pid gone) is taken over with a warning, so a
crash never blocks the store forever. On another host the lock expires after ``stale_after_s``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

from nowcast.errors import StoreError

log = logging.getLogger(__name__)


def _is_stale(info: dict, stale_after_s: float) -> bool:
    if info.get("host") == socket.gethostname():
        pid = int(info.get("pid", -1))
        if not psutil.pid_exists(pid):
            return True
        try:  # a recycled pid belongs to a process started after the lock was written
            return psutil.Process(pid).create_time() > float(info.get("started", 0)) + 1
        except psutil.NoSuchProcess:
            return True
    return time.time() - float(info.get("started", 0)) > stale_after_s


@contextmanager
def store_lock(store_path: str, stale_after_s: float = 24 * 3600):
    """Hold the ingest lock of a local store for the duration of the block.

    Raises:
        StoreError: another live ingest holds the lock.
    """
    if "://" in store_path and not store_path.startswith("file://"):
        log.warning("no ingest lock on remote store %s: run one ingest at a time", store_path)
        yield
        return
    lock = Path(store_path.removeprefix("file://").rstrip("/") + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    info = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(lock.read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                held = {}
            if held and not _is_stale(held, stale_after_s):
                raise StoreError(
                    f"{store_path} is being ingested by pid {held.get('pid')} on {held.get('host')} "
                    f"(lock {lock}); wait for it to finish, or delete the lock file if that run is gone"
                ) from None
            log.warning("taking over a stale ingest lock %s (%s)", lock, held or "unreadable")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        break
    else:
        raise StoreError(f"could not take the ingest lock {lock}")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
