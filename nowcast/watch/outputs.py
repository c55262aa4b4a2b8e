"""The forecast folder: ``<init time>.nc`` per forecast, ``latest.nc`` beside them, retention.

``latest.nc`` is a hard link to the newest forecast (a copy where links are not allowed), put
in place by a rename: a reader opening it sees one whole forecast, the old or the new. The
forecast files themselves are written through ``nowcast.atomic`` by predict's writer, so the
only debris a killed service can leave are hidden temporary files, removed at start.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np

from nowcast.atomic import atomic_write

log = logging.getLogger(__name__)

LATEST = "latest.nc"
_STAMP = "%Y%m%dT%H%M%SZ"
PICTURE_SUFFIXES = (".png", ".gif")


def stamp(init_time: np.datetime64) -> str:
    """``20240601T120500Z``: the file name of the forecast from ``init_time``."""
    return np.datetime_as_string(np.datetime64(init_time, "s"), unit="s").replace("-", "").replace(":", "") + "Z"


def _parse(name: str) -> np.datetime64 | None:
    if len(name) != 19 or not name.endswith("Z.nc"):
        return None
    s = name[:15]
    try:
        return np.datetime64(f"{s[0:4]}-{s[4:6]}-{s[6:8]}T{s[9:11]}:{s[11:13]}:{s[13:15]}", "s")
    except ValueError:
        return None


class Outputs:
    """The ``--out`` folder of one service."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path_for(self, init_time: np.datetime64) -> Path:
        return self.folder / f"{stamp(init_time)}.nc"

    def written(self) -> dict[np.datetime64, Path]:
        """Init time -> forecast file, for every forecast in the folder."""
        found = {}
        for entry in os.scandir(self.folder):
            t = _parse(entry.name)
            if t is not None and entry.is_file():
                found[t] = Path(entry.path)
        return found

    def remove_partial(self) -> list[Path]:
        """Remove the hidden temporary files a killed run left (never a finished forecast)."""
        removed = []
        for entry in os.scandir(self.folder):
            if entry.name.startswith(".") and ".tmp" in entry.name:
                Path(entry.path).unlink(missing_ok=True) if not entry.is_dir() else shutil.rmtree(entry.path, True)
                removed.append(Path(entry.path))
        if removed:
            log.warning("removed %d partial files left by an interrupted run in %s", len(removed), self.folder)
        return removed

    def point_latest(self, forecast: Path) -> Path:
        """Make ``latest.nc`` the forecast ``forecast``, atomically (hard link, or copy, then rename)."""
        latest = self.folder / LATEST
        with atomic_write(latest) as tmp:
            try:
                os.link(forecast, tmp)
            except OSError:  # a file system without hard links
                shutil.copyfile(forecast, tmp)
        return latest

    def latest_is(self, forecast: Path) -> bool:
        try:
            return os.path.samefile(self.folder / LATEST, forecast)
        except OSError:
            return False

    def prune(self, keep: int) -> list[Path]:
        """Remove all but the newest ``keep`` forecasts (and their pictures); ``latest.nc`` stays whole."""
        written = self.written()
        removed = []
        for t in sorted(written)[: max(0, len(written) - keep)]:
            path = written[t]
            for victim in [path, *(path.with_suffix(s) for s in PICTURE_SUFFIXES)]:
                if victim.exists():
                    victim.unlink()
                    removed.append(victim)
            log.info("retention: removed the forecast from %s (keeping the newest %d)", t, keep)
        return removed
