"""Listing source files and reading the valid time from a file name (a planning hint only)."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nowcast.errors import ConfigError

# YYYYmmdd[_T-]HHMM[SS], not glued to other digits: matches all common radar archive names.
_TIME_IN_NAME = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})[_T-]?(\d{2})(\d{2})(\d{2})?(?!\d)")


@dataclass(frozen=True)
class SourceFile:
    path: str
    size: int
    mtime: float


def time_from_name(path: str) -> np.datetime64 | None:
    """The last date-time stamp in the file name, or None when there is no valid one."""
    for match in reversed(list(_TIME_IN_NAME.finditer(Path(path).name))):
        year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
        if 1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60:
            try:
                return np.datetime64(f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}", "s")
            except ValueError:
                continue
    return None


def is_source_name(name: str) -> bool:
    """False for hidden files, files still being written (``.tmp``, ``.part``) and the side files
    of archives and stores (configs, manifests, notes): what ingest and ``nowcast watch`` skip."""
    return not (name.startswith(".") or name.endswith((".tmp", ".part", ".yaml", ".json", ".md", ".txt")))


def list_sources(patterns: Sequence[str], exclude: Sequence[str] = ()) -> list[SourceFile]:
    """Expand files, folders (recursively) and glob patterns into a sorted list of files.

    Hidden files and the project's own temporary files are skipped.

    Raises:
        ConfigError: when a pattern matches nothing (a typo should not look like an empty archive).
    """
    found: dict[str, SourceFile] = {}
    for pattern in patterns:
        pattern = os.path.expanduser(pattern)
        if os.path.isdir(pattern):
            candidates = [str(p) for p in Path(pattern).rglob("*")]
        else:
            candidates = glob.glob(pattern, recursive=True)
        if not candidates:
            raise ConfigError(f"source.paths: {pattern!r} matches no file")
        for candidate in candidates:
            if not is_source_name(os.path.basename(candidate)):
                continue
            if not os.path.isfile(candidate) or any(glob.fnmatch.fnmatch(candidate, ex) for ex in exclude):
                continue
            stat = os.stat(candidate)
            path = os.path.abspath(candidate)
            found[path] = SourceFile(path, stat.st_size, stat.st_mtime)
    return [found[p] for p in sorted(found)]
