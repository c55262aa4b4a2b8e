"""The frames a forecast starts from, whatever they were read from (a store or raw files).

``Frames`` is the one in-memory input of ``predict``: a stretch of the regular time axis with
a validity flag per time, like the store itself. ``select_window`` picks the input window:

- the init time is the latest *valid* frame at or before the requested time (default: the
  newest valid frame), the time of the last input frame;
- the window is the ``num_input_frames`` consecutive steps ending there; if any of them is
  missing, ``MissingFramesError`` names the missing times and, when there is one, the latest
  earlier init time whose window is complete. A window that crosses a gap is never patched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from nowcast.errors import ConfigError, MissingFramesError, StoreError
from nowcast.scan import Grid
from nowcast.store import StoreReader
from nowcast.timeaxis import whole_windows

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Frames:
    """Consecutive steps of a regular time axis: rain where valid, NaN rows where missing."""

    times: np.ndarray  # (T,) datetime64[s], regular: times[i] = times[0] + i * time_step_s
    rain: np.ndarray  # (T, H, W) float32 mm/h, NaN = no data (whole rows NaN where not valid)
    valid: np.ndarray  # (T,) bool
    grid: Grid
    time_step_s: int
    source: str = ""  # the store or folder, for messages and the output's attributes
    input_grid: Grid | None = None  # the files' own grid when they were regridded onto ``grid``

    def __post_init__(self) -> None:
        object.__setattr__(self, "times", np.asarray(self.times, dtype="datetime64[s]"))
        object.__setattr__(self, "rain", np.asarray(self.rain, dtype=np.float32))
        object.__setattr__(self, "valid", np.asarray(self.valid, dtype=bool))
        n = len(self.times)
        if self.rain.shape != (n, *self.grid.shape) or self.valid.shape != (n,):
            raise ValueError(
                f"frames: rain {self.rain.shape} / valid {self.valid.shape} do not match "
                f"{n} times on a {self.grid.shape} grid"
            )
        steps = np.diff(self.times.astype(np.int64))
        if n > 1 and not np.all(steps == self.time_step_s):
            raise ValueError(f"frames: times are not a regular axis of {self.time_step_s} s")

    def __len__(self) -> int:
        return len(self.times)


@dataclass(frozen=True, eq=False)
class Window:
    """The input of one forecast."""

    frames: Frames  # exactly the input steps (may contain missing rows only for a fallback)
    init_time: np.datetime64  # time of the last input frame
    missing: np.ndarray  # (k,) datetime64[s] of the input steps that are missing (empty when whole)
    earlier_complete: np.datetime64 | None = None  # latest earlier init time with a whole window, if known

    @property
    def complete(self) -> bool:
        return self.missing.size == 0


def staleness_note(window: Window, until: np.datetime64 | None) -> str | None:
    """Why a forecast for ``until`` is stale: its newest input is more than two steps older (else None)."""
    if until is None:
        return None
    age_s = int((until - window.init_time).astype("timedelta64[s]").astype(np.int64))
    if age_s <= 2 * window.frames.time_step_s:
        return None
    return (
        f"the newest input at or before {until} is {window.init_time}, {age_s / 60:g} min earlier: "
        f"this forecast starts from old data, not from {until}"
    )


def parse_time(value: Any, what: str = "--time") -> np.datetime64 | None:
    """An ISO 8601 time (or None) as datetime64[s]; a clear error for anything else."""
    if value is None:
        return None
    try:
        return np.datetime64(value, "s")
    except (ValueError, TypeError):
        raise ConfigError(f"{what}: {value!r} is not a time; use ISO 8601, e.g. 2024-06-01T12:00") from None


def frames_from_store(store: StoreReader, num_frames: int, until: Any = None) -> Frames:
    """Read the last ``num_frames`` steps of the store's axis up to the latest valid time <= ``until``.

    Only those steps are read, so a long archive costs no more than a short one.

    Args:
        store: the store.
        num_frames: steps wanted (the model's ``num_input_frames``).
        until: latest time wanted; None = the newest valid time in the store.

    Returns:
        Frames ending at the latest valid time at or before ``until`` (earlier steps may be
        missing; ``select_window`` decides what that means).

    Raises:
        MissingFramesError: ``until`` lies outside the store, or no valid time is at or before it.
    """
    last = _last_valid_index(store.valid, store.times, until, store.path)
    first = max(0, last - num_frames + 1)
    rain = store.read(first, last + 1)  # (T, H, W)
    valid = store.valid[first : last + 1].copy()
    emptied = valid & np.isnan(rain).all(axis=(1, 2))
    if emptied.any():  # ingest never marks an all-no-data scan valid: the store changed under us
        raise StoreError(
            f"{store.path}: frames {', '.join(str(t) for t in store.times[first : last + 1][emptied])} "
            "are marked valid but read back empty; was the store deleted or rewritten while "
            "in use? Run the forecast again once the store is complete"
        )
    rain[~valid] = np.nan
    return Frames(store.times[first : last + 1], rain, valid, store.grid, int(store.layout.time_step_s), store.path)


def _last_valid_index(valid: np.ndarray, times: np.ndarray, until: Any, source: str) -> int:
    if not valid.any():
        raise MissingFramesError(f"{source}: no valid frame at all ({len(valid)} times, all missing)")
    stop = len(valid) - 1
    if until is not None:
        until = np.datetime64(until, "s")
        if until < times[0]:
            raise MissingFramesError(
                f"{source}: --time {until} is before the first time {times[0]}; "
                f"choose a time between {times[0]} and {times[-1]}"
            )
        if until > times[-1] + (times[-1] - times[-2] if len(times) > 1 else np.timedelta64(0, "s")):
            log.warning("--time %s is after the newest time %s; forecasting from the newest", until, times[-1])
        stop = int(np.searchsorted(times, until, side="right")) - 1
    candidates = np.flatnonzero(valid[: stop + 1])
    if candidates.size == 0:
        raise MissingFramesError(
            f"{source}: no valid frame at or before {until}; the first valid frame is {times[np.flatnonzero(valid)[0]]}"
        )
    return int(candidates[-1])


def select_window(frames: Frames, num_input_frames: int) -> Window:
    """The input window ending at the newest valid frame of ``frames``; see the module docstring.

    Args:
        frames: steps ending at (or after) the init time.
        num_input_frames: steps the model needs.

    Returns:
        The window, with the missing steps listed (empty when it is complete).
    """
    valid_idx = np.flatnonzero(frames.valid)
    if valid_idx.size == 0:
        raise MissingFramesError(f"{frames.source}: no valid frame to start a forecast from")
    last = int(valid_idx[-1])
    init_time = frames.times[last]
    step = np.timedelta64(frames.time_step_s, "s")
    wanted = init_time - step * np.arange(num_input_frames - 1, -1, -1)  # (T_in,) oldest first
    have = {t: i for i, t in enumerate(frames.times.astype(np.int64))}
    index = np.array([have.get(int(t), -1) for t in wanted.astype(np.int64)])
    ok = index >= 0
    ok[ok] = frames.valid[index[ok]]
    rain = np.full((num_input_frames, *frames.grid.shape), np.nan, np.float32)
    rain[ok] = frames.rain[index[ok]]
    window = Frames(wanted, rain, ok, frames.grid, frames.time_step_s, frames.source, frames.input_grid)
    return Window(window, init_time, wanted[~ok])


def require_complete(window: Window) -> None:
    """Raise ``MissingFramesError`` naming the missing input times unless the window is whole.

    Args:
        window: what ``select_window`` returned; its ``earlier_complete`` time is suggested.
    """
    if window.complete:
        return
    earlier = window.earlier_complete
    missing = ", ".join(str(t) for t in window.missing)
    hint = (
        f"; the latest complete window ends at {earlier} (pass --time {earlier})"
        if earlier is not None
        else "; no earlier complete window either"
    )
    raise MissingFramesError(
        f"{window.frames.source}: the {len(window.frames)} input frames ending at {window.init_time} are not all "
        f"there: missing {missing}{hint}, or pass --fallback extrapolation"
    )


def latest_complete_init(
    valid: np.ndarray, times: np.ndarray, num_input_frames: int, before: np.datetime64
) -> np.datetime64 | None:
    """The latest time before ``before`` that ends ``num_input_frames`` consecutive valid steps, or None."""
    ends = np.flatnonzero(whole_windows(valid, num_input_frames)) + num_input_frames - 1
    ends = ends[times[ends] < before]
    return None if ends.size == 0 else times[ends[-1]]


def store_window(store: StoreReader, num_input_frames: int, until: Any = None) -> Window:
    """The input window from a store (see the module docstring), reading only its frames.

    Args:
        store: the store.
        num_input_frames: steps the model needs.
        until: latest init time wanted; None = the newest valid time.

    Returns:
        The window; when incomplete, it knows the latest earlier complete window.
    """
    window = select_window(frames_from_store(store, num_input_frames, until), num_input_frames)
    if window.complete:
        return window
    earlier = latest_complete_init(store.valid, store.times, num_input_frames, window.init_time)
    return Window(window.frames, window.init_time, window.missing, earlier)
