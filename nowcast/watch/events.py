"""File-system events -> a queue of finished scans.

A scan counts once it is complete: renamed into the folder (``moved``, the safe way to deliver
a file) or closed after writing (``closed``, inotify only). Names that ingest skips (hidden,
``.tmp``, ``.part``, side files) are ignored here too. The polling observer (network file
systems, where inotify misses other hosts' writes) reports no ``closed`` events, so there a
created or modified file is queued as it is seen; one still being copied then fails to read,
is quarantined, and is read again when it changes (ingest's rule for quarantined files).
"""

from __future__ import annotations

import logging
import os
import queue
import time
from typing import NamedTuple

from watchdog.events import FileClosedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from nowcast.ingest.sources import is_source_name

log = logging.getLogger(__name__)


class Landed(NamedTuple):
    """A file that finished landing in the watched folder, and when it was seen (``time.monotonic``)."""

    path: str
    seen: float


def _as_str(path: str | bytes) -> str:
    return os.fsdecode(path)


class ScanHandler(FileSystemEventHandler):
    """Puts each finished scan on ``landed``; ``polling`` also takes created and modified files."""

    def __init__(self, landed: queue.Queue[Landed], polling: bool):
        self.landed = landed
        self.polling = polling

    def _put(self, path: str | bytes) -> None:
        path = _as_str(path)
        if is_source_name(os.path.basename(path)):
            self.landed.put(Landed(os.path.abspath(path), time.monotonic()))

    def on_moved(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._put(event.dest_path)

    def on_closed(self, event: FileClosedEvent) -> None:
        if not event.is_directory:
            self._put(event.src_path)

    def on_created(self, event: FileSystemEvent) -> None:
        if event.is_directory:  # files moved into a new folder before its watch was set up send no event
            for root, _, files in os.walk(_as_str(event.src_path)):
                for name in files:
                    self._put(os.path.join(root, name))
        elif self.polling:
            self._put(event.src_path)

    def on_modified(self, event: FileSystemEvent) -> None:
        if self.polling and not event.is_directory:
            self._put(event.src_path)


def start_observer(folder: str, landed: queue.Queue[Landed], poll_s: float | None = None) -> BaseObserver:
    """Watch ``folder`` recursively (inotify, or polling every ``poll_s`` seconds); started, running in a thread."""
    observer: BaseObserver = PollingObserver(timeout=poll_s) if poll_s else Observer()
    observer.schedule(ScanHandler(landed, polling=bool(poll_s)), folder, recursive=True)
    observer.start()
    log.info("watching %s (%s)", folder, f"polling every {poll_s:g} s" if poll_s else "inotify")
    return observer


def drain(landed: queue.Queue[Landed], first: Landed, settle_s: float = 0.0) -> dict[str, float]:
    """``first`` and every other file queued now (after ``settle_s``): path -> when first seen, once each."""
    if settle_s:
        time.sleep(settle_s)
    batch = {first.path: first.seen}
    while True:
        try:
            item = landed.get_nowait()
        except queue.Empty:
            return batch
        batch.setdefault(item.path, item.seen)
