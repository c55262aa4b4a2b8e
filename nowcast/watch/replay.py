"""``nowcast replay``: copy an archive into a folder at its own cadence, sped up, as a feed would.

Each file is copied under a hidden temporary name and renamed into place, the way a radar feed
should deliver (and what ``nowcast watch`` reacts to). Files are played in the order of the time
in their names (their modification time when a name carries none), spaced by those times
divided by ``speed``; ``speed 0`` plays them back to back.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nowcast.errors import ConfigError
from nowcast.ingest.sources import list_sources, time_from_name

log = logging.getLogger(__name__)


def deliver(path: str | Path, folder: str | Path) -> Path:
    """Copy ``path`` into ``folder`` under a hidden temporary name, then rename it into place."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / Path(path).name
    tmp = folder / f".{final.name}.{os.getpid()}.part"
    shutil.copyfile(path, tmp)
    os.replace(tmp, final)
    return final


def schedule(src: str | Path) -> list[tuple[float, str]]:
    """(seconds after the first file, path) for every file of the archive, in time order."""
    files = list_sources([str(src)])
    timed = []
    for f in files:
        t = time_from_name(f.path)
        seconds = float(t.astype(np.int64)) if t is not None else f.mtime
        timed.append((seconds, f.path))
    timed.sort()
    if not timed:
        raise ConfigError(f"{src}: no files to replay")
    first = timed[0][0]
    return [(seconds - first, path) for seconds, path in timed]


def replay(
    src: str | Path,
    dest: str | Path,
    speed: float,
    limit: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Path]:
    """Play the archive ``src`` into ``dest`` at ``speed`` times its own pace; returns the files delivered.

    Raises:
        ConfigError: a negative speed, or no file in ``src``.
    """
    if speed < 0:
        raise ConfigError(f"--speed {speed}: must be >= 0 (0: no waiting between files)")
    plan = schedule(src)[:limit]
    started = time.monotonic()
    delivered = []
    for offset, path in plan:
        if speed > 0:
            sleep(max(0.0, started + offset / speed - time.monotonic()))
        delivered.append(deliver(path, dest))
        log.info("replayed %s (+%.0f s in the archive)", Path(path).name, offset)
    return delivered
