"""Score forecasters over a store: every valid start time, every method, every lead time.

A start (``init_time``) is the time of the last input frame. It is scored only when its whole
window -- ``num_input_frames`` inputs and ``n_leads`` observed leads -- is valid in the store:
a window that crosses a gap is skipped and counted, never patched.
By default all methods are scored on the same pixels (``common_mask``): where any method has
no data (e.g. rain advected in from outside the domain), no method is scored, so a method that
leaves hard pixels empty gains nothing from it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
from rich.progress import track

from nowcast.errors import MissingFramesError
from nowcast.timeaxis import whole_windows
from nowcast.verify.metrics import ScoreAccumulator
from nowcast.verify.uncertainty import compare

log = logging.getLogger(__name__)

Forecaster = Callable[[np.ndarray, int], np.ndarray]


class Observations(Protocol):
    """What ``evaluate`` reads: a regular time axis with validity flags, and frames by index.

    The caller opens it (``nowcast.store.StoreReader`` is one), so this package reads no store itself.
    """

    path: str  # named in messages and the result
    times: np.ndarray  # (T,) datetime64[s], regular
    valid: np.ndarray  # (T,) bool

    @property
    def n_times(self) -> int: ...

    @property
    def pixel_size_m(self) -> float: ...

    @property
    def time_step_s(self) -> int: ...

    def read(self, start: int, stop: int) -> np.ndarray:
        """(stop - start, H, W) float32 mm/h, NaN = no data, for time indices [start, stop)."""
        ...


@dataclass
class EvaluationResult:
    """Scores per method and lead time, with what was evaluated."""

    lead_minutes: list[float]
    num_input_frames: int
    time_step_s: int
    pixel_size_m: float
    n_starts: int  # starts scored
    n_skipped_gap: int  # starts in range whose window crosses missing frames
    first_init_time: str | None
    last_init_time: str | None
    methods: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # method -> score -> per lead
    store: str = ""
    # the first method against each other one: differences with bootstrap intervals (uncertainty.py)
    comparisons: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StartSelection:
    """Which starts (indices of the last input frame) are scored, and how many a gap removed."""

    starts: np.ndarray
    n_skipped_gap: int


def select_starts(
    valid: np.ndarray,
    num_input_frames: int,
    n_leads: int,
    first: int = 0,
    last: int | None = None,
    stride: int = 1,
    max_starts: int | None = None,
) -> StartSelection:
    """Start indices whose input and lead windows are entirely valid.

    Args:
        valid: (T,) validity flags of the store's time axis.
        num_input_frames: input frames per forecast, ending at the start.
        n_leads: observed frames needed after the start.
        first: earliest start index considered.
        last: latest start index considered (inclusive); None = as late as the store allows.
        stride: keep every ``stride``-th valid start.
        max_starts: keep at most this many (the earliest).

    Returns:
        The kept starts and the number of candidates skipped because their window has a gap.
    """
    if num_input_frames < 1 or n_leads < 1 or stride < 1:
        raise ValueError("num_input_frames, n_leads and stride must be at least 1")
    valid = np.asarray(valid, dtype=bool)
    window = num_input_frames + n_leads
    lo = max(first, num_input_frames - 1)
    hi = len(valid) - n_leads - 1 if last is None else min(last, len(valid) - n_leads - 1)
    if hi < lo:
        return StartSelection(np.zeros(0, np.int64), 0)
    candidates = np.arange(lo, hi + 1)
    whole = whole_windows(valid, window)[candidates - num_input_frames + 1]  # window [s - T_in + 1, s + n_leads]
    starts = candidates[whole][::stride]
    if max_starts is not None:
        starts = starts[:max_starts]
    return StartSelection(starts.astype(np.int64), int((~whole).sum()))


def _index_bound(store: Observations, time: Any, default: int) -> int:
    """Index of ``time`` on the regular axis, rounded down (may be negative or past the end)."""
    if time is None:
        return default
    return int((np.datetime64(time, "s") - store.times[0]) // np.timedelta64(store.time_step_s, "s"))


def _check_forecast(name: str, forecast: np.ndarray, expected: tuple[int, ...]) -> np.ndarray:
    forecast = np.asarray(forecast)
    if forecast.shape != expected:
        raise ValueError(f"forecaster {name!r} returned shape {forecast.shape}, expected {expected}")
    return forecast


def evaluate(
    store: Observations,
    forecasters: dict[str, Forecaster],
    num_input_frames: int,
    n_leads: int,
    start: Any = None,
    end: Any = None,
    stride: int = 1,
    max_starts: int | None = None,
    common_mask: bool = True,
) -> EvaluationResult:
    """Run every forecaster from every valid start and accumulate scores per lead time.

    Args:
        store: the store (or any ``Observations``) to read inputs and observations from.
        forecasters: method name -> ``f(frames (T_in, H, W), n_leads) -> (n_leads, H, W)`` mm/h.
        num_input_frames: frames given to each forecaster, ending at the start time.
        n_leads: lead times scored, one per store time step.
        start: earliest init time (anything ``numpy.datetime64`` accepts); None = store start.
        end: latest init time (inclusive); None = as late as the leads allow.
        stride: score every ``stride``-th valid start (neighbouring starts are highly correlated).
        max_starts: score at most this many starts.
        common_mask: score every method on the pixels where all methods (and the observation) have data.

    Returns:
        The scores of every method per lead time, what was scored, and the first method's
        differences from every other with bootstrap intervals over the starts.

    Raises:
        MissingFramesError: no start in the range has a whole valid window.
    """
    if not forecasters:
        raise ValueError("no forecasters to evaluate")
    first = _index_bound(store, start, 0)
    last = None if end is None else _index_bound(store, end, store.n_times)
    selection = select_starts(store.valid, num_input_frames, n_leads, first, last, stride, max_starts)
    if selection.starts.size == 0:
        raise MissingFramesError(
            f"{store.path}: no start between {'the first' if start is None else start} and "
            f"{'the last' if end is None else end} time has "
            f"{num_input_frames} input and {n_leads} lead frames all valid "
            f"({int(store.valid.sum())} of {store.n_times} times valid); widen the range or use fewer frames"
        )
    log.info(
        "evaluating %d starts (%d skipped: window crosses a gap) of %s, methods %s",
        selection.starts.size,
        selection.n_skipped_gap,
        store.path,
        ", ".join(forecasters),
    )
    pixel_size_m, step_s = store.pixel_size_m, store.time_step_s
    accumulators = {name: ScoreAccumulator(n_leads, pixel_size_m) for name in forecasters}
    per_start: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in forecasters}  # for the intervals
    for s in track(selection.starts, description="evaluating", total=len(selection.starts)):
        window = store.read(int(s) - num_input_frames + 1, int(s) + n_leads + 1)  # (T_in + n_leads, H, W)
        frames, obs = window[:num_input_frames], window[num_input_frames:]
        forecasts = {
            name: _check_forecast(name, f(frames.copy(), n_leads), obs.shape) for name, f in forecasters.items()
        }
        exclude = None
        if common_mask:
            exclude = np.zeros(obs.shape, bool)
            for forecast in forecasts.values():
                exclude |= ~np.isfinite(forecast)
        for name, forecast in forecasts.items():
            this_start = ScoreAccumulator(n_leads, pixel_size_m)
            this_start.add(forecast, obs, exclude)
            accumulators[name].merge(this_start)
            per_start[name].append(this_start.sums)
    times = store.times[selection.starts]
    reference = next(iter(forecasters))
    comparisons = (
        {} if len(forecasters) == 1 else compare(accumulators[reference], per_start, reference, n_leads, stride)
    )
    return EvaluationResult(
        lead_minutes=[(k + 1) * step_s / 60 for k in range(n_leads)],
        num_input_frames=num_input_frames,
        time_step_s=step_s,
        pixel_size_m=pixel_size_m,
        n_starts=int(selection.starts.size),
        n_skipped_gap=selection.n_skipped_gap,
        first_init_time=str(times[0]),
        last_init_time=str(times[-1]),
        methods={name: acc.result() for name, acc in accumulators.items()},
        store=store.path,
        comparisons=comparisons,
    )
