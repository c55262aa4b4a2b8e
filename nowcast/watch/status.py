"""``OUT/status.json``: what the service has done, rewritten atomically after each event.

Monitoring reads it instead of parsing logs: the newest scan, the last forecast, how long each
stage of the last cycle took, whether the feed is late, and counts since the service started
(scans ingested, forecasts, quarantined, late and duplicate files, fallbacks, skipped times).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nowcast.atomic import atomic_write

STATUS_NAME = "status.json"
COUNTS = ("scans", "forecasts", "quarantined", "late", "duplicates", "fallbacks", "skipped")


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Status:
    started: str = field(default_factory=utc_now)
    pid: int = field(default_factory=os.getpid)
    state: str = "starting"  # starting, watching, stopped
    feed: str = "unknown"  # ok, late (newest scan older than max_input_age_s), waiting (a frame missing)
    feed_note: str = ""
    newest_scan_time: str | None = None  # valid time of the newest scan in the store
    last_scan_at: str | None = None  # wall clock (UTC) of the last scan ingested
    last_forecast: dict[str, Any] = field(default_factory=dict)  # init_time, path, method, written_at
    latency_s: dict[str, float] = field(default_factory=dict)  # stages of the last cycle that forecast
    counts: Counter = field(default_factory=lambda: Counter(dict.fromkeys(COUNTS, 0)))
    updated: str = field(default_factory=utc_now)

    def write(self, out_dir: Path) -> None:
        self.updated = utc_now()
        payload = asdict(self)
        payload["counts"] = dict(self.counts)
        with atomic_write(Path(out_dir) / STATUS_NAME) as tmp:
            tmp.write_text(json.dumps(payload, indent=1))


def read_status(out_dir: Path) -> dict[str, Any]:
    """The status file as written (for tests and monitoring)."""
    return json.loads((Path(out_dir) / STATUS_NAME).read_text())
