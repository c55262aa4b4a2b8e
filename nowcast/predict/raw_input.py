"""Frames from a folder of raw radar files, for forecasting without a store.

``predict`` never imports ``nowcast.ingest``: the command line hands in the reader (a function
``path -> Scan`` that already puts the scan on the model's pixel size) and, optionally, a
function reading the time stamp from a file name, so only the newest files are opened.

Scan times snap onto the regular axis of the checkpoint's time step (multiples of the step
since 1970, like the stores ingest writes) when within ``tolerance_s``; a file that cannot be
read, or whose time or grid does not fit, is skipped with a warning and its time stays missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nowcast.errors import CheckpointError, MissingFramesError, ReaderError
from nowcast.predict.inputs import Frames, Window, select_window
from nowcast.scan import Scan

log = logging.getLogger(__name__)

TEMPORARY_SUFFIXES = (".tmp", ".part")
SIDE_SUFFIXES = (".yaml", ".json", ".md", ".txt", ".png", ".gif")  # pictures and notes beside radar files
SKIP_SUFFIXES = TEMPORARY_SUFFIXES + SIDE_SUFFIXES


def list_files(folder: str | Path, keep_side_files: bool = False) -> list[str]:
    """Every visible file under ``folder`` (recursively), sorted; temporary and side files left out.

    Args:
        folder: the folder.
        keep_side_files: keep ``.gif``, ``.txt`` and the like (a format was named, e.g.
            MeteoSwiss GIFs with ``--format pysteps:mch_gif``); temporary files are always left out.

    Raises:
        MissingFramesError: nothing left, saying what was left out and how to keep it.
    """
    folder = Path(folder)
    skip = TEMPORARY_SUFFIXES if keep_side_files else SKIP_SUFFIXES
    visible = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
    files = [p for p in visible if not p.name.lower().endswith(skip)]
    if not files:
        left_out = sorted({p.suffix.lower() for p in visible if p.name.lower().endswith(SIDE_SUFFIXES)})
        why = (
            f"; {len(visible)} files left out as pictures or notes ({', '.join(left_out)}): if they are radar "
            "files (MeteoSwiss GIFs), name their format, e.g. --format pysteps:mch_gif"
            if left_out
            else ""
        )
        raise MissingFramesError(f"{folder}: no radar files in this folder{why}")
    return [str(p) for p in sorted(files)]


def _snap(time: np.datetime64, step_s: int, tolerance_s: float) -> np.datetime64 | None:
    seconds = int(np.datetime64(time, "s").astype(np.int64))
    snapped = int(round(seconds / step_s)) * step_s
    return np.datetime64(snapped, "s") if abs(seconds - snapped) <= tolerance_s else None


def _pick_by_name(
    paths: Sequence[str],
    time_of_name: Callable[[str], Any],
    num_frames: int,
    step_s: int,
    until: np.datetime64 | None,
    tolerance_s: float,
) -> list[str]:
    """Files whose name-time falls in the last ``num_frames`` steps up to ``until``; unnamed files all kept."""
    hinted = {p: time_of_name(p) for p in paths}
    named = {p: np.datetime64(t, "s") for p, t in hinted.items() if t is not None}
    if until is not None:
        named = {p: t for p, t in named.items() if t <= until + np.timedelta64(int(tolerance_s), "s")}
    unnamed = [p for p, t in hinted.items() if t is None]
    if not named:
        return unnamed
    newest = max(named.values())
    # one extra step of margin: the newest file may be unreadable and the window move back
    oldest = newest - np.timedelta64(int(num_frames * step_s + tolerance_s), "s")
    return sorted([p for p, t in named.items() if t >= oldest] + unnamed)


def frames_from_files(
    paths: Sequence[str],
    read: Callable[[str], Scan],
    time_step_s: int,
    num_frames: int,
    until: Any = None,
    time_of_name: Callable[[str], Any] | None = None,
    tolerance_s: float = 60.0,
    source: str = "",
) -> Frames:
    """Read raw radar files into the same ``Frames`` a store gives.

    Args:
        paths: candidate files (see ``list_files``).
        read: ``path -> Scan`` on the model's pixel size; ReaderError skips that file, any other
            error (e.g. CheckpointError for a pixel size that cannot be coarsened) stops.
        time_step_s: the checkpoint's time step; scans snap onto multiples of it.
        num_frames: steps wanted, ending at the latest valid time at or before ``until``.
        until: latest time wanted; None = the newest scan.
        time_of_name: ``path -> datetime64 | None`` from the file name, to open only recent files.
        tolerance_s: how far a scan time may be from a step and still count for it.
        source: the folder, for messages.

    Returns:
        ``num_frames`` steps (or fewer at the start of the archive) with validity flags.

    Raises:
        MissingFramesError: no file could be read at or before ``until``.
        CheckpointError: the files are further apart than the checkpoint's time step.
    """
    until = None if until is None else np.datetime64(until, "s")
    if time_of_name is not None:
        paths = _pick_by_name(paths, time_of_name, num_frames, time_step_s, until, tolerance_s)
    scans: dict[np.datetime64, tuple[float, Scan]] = {}
    raw_times = []
    for path in paths:
        try:
            scan = read(path)
        except ReaderError as e:  # a bad file is a missing frame; a mismatch (other errors) stops the run
            log.warning("skipped %s: %s", path, e)
            continue
        raw_times.append(scan.time)
        snapped = _snap(scan.time, time_step_s, tolerance_s)
        if snapped is None:
            log.warning(
                "skipped %s: its time %s is more than %g s from a %d s step", path, scan.time, tolerance_s, time_step_s
            )
            continue
        if until is not None and snapped > until:
            continue
        offset = abs(float((scan.time - snapped).astype(np.int64)))
        if snapped not in scans or offset < scans[snapped][0]:
            scans[snapped] = (offset, scan)
    if not scans:
        raise MissingFramesError(
            f"{source or 'input'}: no readable radar file at or before "
            f"{until if until is not None else 'now'} ({len(paths)} files tried)"
        )
    _check_spacing(np.array(sorted(raw_times), dtype="datetime64[s]"), time_step_s, source)
    newest = max(scans)
    grid = scans[newest][1].grid
    times = newest - np.timedelta64(time_step_s, "s") * np.arange(num_frames - 1, -1, -1)  # (T,) oldest first
    rain = np.full((num_frames, *grid.shape), np.nan, np.float32)
    valid = np.zeros(num_frames, bool)
    for i, t in enumerate(times):
        if t not in scans:
            continue
        scan = scans[t][1]
        if not scan.grid.same_as(grid):
            log.warning(
                "skipped %s: its grid (%s) differs from the newest scan's (%s)",
                scan.source,
                scan.grid.describe(),
                grid.describe(),
            )
            continue
        rain[i], valid[i] = scan.rain_rate, True
    log.info("read %d of %d input times from %s", int(valid.sum()), num_frames, source or "files")
    return Frames(times, rain, valid, grid, time_step_s, source)


def _check_spacing(times: np.ndarray, time_step_s: int, source: str) -> None:
    """Files every 6 or 10 min cannot feed a 5-min model: say so instead of reporting missing frames."""
    if len(times) < 3:
        return
    gaps = np.diff(times.astype(np.int64))
    if not (gaps > 0).any():
        return
    spacing = float(gaps[gaps > 0].min())  # the closest pair: missing files widen other gaps, never this one
    if spacing > 1.1 * time_step_s:
        raise CheckpointError(
            f"{source}: the radar files are {spacing:g} s apart, the time step is {time_step_s} s; "
            f"use files every {time_step_s} s, a checkpoint trained on {spacing:g} s steps, or "
            f"pass --input-time-step {spacing:g} to run this one at the files' step"
        )


def step_from_names(paths: Sequence[str], time_of_name: Callable[[str], Any], until: Any = None) -> int | None:
    """The files' time step: the closest spacing of the newest dozen name-times (missing files only widen gaps)."""
    times = sorted({np.datetime64(t, "s") for t in map(time_of_name, paths) if t is not None})
    if until is not None:
        times = [t for t in times if t <= np.datetime64(until, "s")]
    gaps = np.diff(np.array(times[-12:], dtype="datetime64[s]").astype(np.int64))
    gaps = gaps[gaps > 0]
    return int(gaps.min()) if len(gaps) else None


def raw_window(
    folder: str | Path,
    read: Callable[[str], Scan],
    time_step_s: int | None,
    num_input_frames: int,
    until: Any = None,
    time_of_name: Callable[[str], Any] | None = None,
    tolerance_s: float = 60.0,
    keep_side_files: bool = False,
) -> Window:
    """The input window from a folder of raw files (``select_window`` over ``frames_from_files``).

    Args:
        folder: the folder (searched recursively).
        read: ``path -> Scan`` on the model's pixel size.
        time_step_s: the model's time step; None (a model that runs at any step): the files' own,
            from their names.
        num_input_frames: steps the model needs.
        until: latest init time wanted; None = the newest scan.
        time_of_name: file-name time stamps, to open only the newest files.
        tolerance_s: how far a scan time may be from a step.
        keep_side_files: read ``.gif`` and the like too (see ``list_files``).

    Raises:
        CheckpointError: the checkpoint records no time step.
        MissingFramesError: no usable file.
    """
    paths = list_files(folder, keep_side_files)
    if time_step_s is None and time_of_name is not None:
        time_step_s = step_from_names(paths, time_of_name, until)
        if time_step_s is not None:
            log.info("%s: files every %d s (from their names), the model's step there", folder, time_step_s)
    if time_step_s is None:
        raise CheckpointError(
            "the checkpoint records no time_step_s and the files' names give none, so raw files cannot be "
            "put on a time axis; pass --input-time-step, or ingest them and pass the store as --input"
        )
    frames = frames_from_files(
        paths, read, time_step_s, num_input_frames, until, time_of_name, tolerance_s, source=str(folder)
    )
    return select_window(frames, num_input_frames)
