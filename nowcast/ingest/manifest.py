"""The manifest: one record per source file seen, kept inside the store under ``_manifest/``.

Each write task records the files of its chunk in its own part file right after writing the
chunk; the driver folds a run's parts into one file at the end. Reading merges every file
(later records win), so a run killed at any point leaves a manifest that a re-run can trust:
a file is either recorded with the chunk it landed in, or not recorded and read again.

Statuses: ``ingested`` (its time is valid in the store), ``quarantined`` (unreadable or not
fitting the store; ``reason`` says why), ``duplicate`` (its time was already written from
another file), ``incomplete`` (read, but its time step still lacks other scans to average).
"""

from __future__ import annotations

import json
import posixpath
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import fsspec

from nowcast.atomic import write_file

MANIFEST_DIR = "_manifest"
INGESTED, QUARANTINED, DUPLICATE, INCOMPLETE = "ingested", "quarantined", "duplicate", "incomplete"


@dataclass
class Record:
    path: str
    size: int
    mtime: float
    status: str
    time: str | None = None  # valid time of the scan (ISO), when known
    index: int | None = None  # row in the store's time axis
    reason: str = ""


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def _fs(store_path: str):
    fs, root = fsspec.core.url_to_fs(store_path)
    return fs, posixpath.join(root, MANIFEST_DIR)


def _write_json(fs, path: str, payload) -> None:
    write_file(fs, path, json.dumps(payload, separators=(",", ":")).encode())


def write_part(store_path: str, run_id: str, name: str, records: Iterable[Record]) -> None:
    """Record the files of one task (called by the task right after its chunk is written)."""
    fs, folder = _fs(store_path)
    fs.makedirs(folder, exist_ok=True)
    _write_json(fs, posixpath.join(folder, f"part-{run_id}-{name}.json"), [asdict(r) for r in records])


def read_manifest(store_path: str) -> dict[str, Record]:
    """Every file ever seen by this store, by path (later records win)."""
    fs, folder = _fs(store_path)
    if not fs.exists(folder):
        return {}
    records: dict[str, Record] = {}
    files = sorted(p for p in fs.ls(folder, detail=False) if p.endswith(".json"))
    # folded run files first, then the parts of runs that did not finish folding
    for path in sorted(files, key=lambda p: (posixpath.basename(p).startswith("part-"), p)):
        try:
            with fs.open(path, "rb") as f:
                entries = json.load(f)
        except (json.JSONDecodeError, OSError):
            continue  # a part cut short by a crash: its files are simply read again
        for entry in entries:
            records[entry["path"]] = Record(**entry)
    return records


def fold_run(store_path: str, run_id: str) -> None:
    """Merge this run's part files into one ``run-<id>.json`` and remove the parts."""
    fs, folder = _fs(store_path)
    if not fs.exists(folder):
        return
    parts = sorted(p for p in fs.ls(folder, detail=False) if posixpath.basename(p).startswith(f"part-{run_id}-"))
    merged: list[dict] = []
    for path in parts:
        with fs.open(path, "rb") as f:
            merged.extend(json.load(f))
    if merged:
        _write_json(fs, posixpath.join(folder, f"run-{run_id}.json"), merged)
    for path in parts:
        fs.rm(path)


def compact(store_path: str) -> int:
    """Fold every finished run's file into one, so reading the manifest stays one file per store.

    A long-running ``nowcast watch`` folds one run per scan: without this, each scan would read
    every earlier run's file. The merged file takes a new run id (it sorts after the ones it
    replaces), is written before they are removed, and holds what reading them gave: a crash in
    between leaves records twice, never a record lost or changed. Call it under the store's lock.

    Returns:
        The number of run files folded (0 when there were fewer than two).
    """
    fs, folder = _fs(store_path)
    if not fs.exists(folder):
        return 0
    runs = sorted(p for p in fs.ls(folder, detail=False) if posixpath.basename(p).startswith("run-"))
    if len(runs) < 2:
        return 0
    merged: dict[str, dict] = {}
    for path in runs:
        with fs.open(path, "rb") as f:
            merged.update((entry["path"], entry) for entry in json.load(f))
    last = posixpath.basename(runs[-1])[len("run-") : -len(".json")]
    run_id = new_run_id()
    if run_id <= last:  # the same second: still sort after every file it replaces
        run_id = last + "~"
    _write_json(fs, posixpath.join(folder, f"run-{run_id}.json"), list(merged.values()))
    for path in runs:
        fs.rm(path)
    return len(runs)
