"""Score ensemble forecasters over a store: the same starts, members and pixels for every method.

The loop of ``evaluate.py`` for ensembles: a start is scored only when its whole window is valid
(``select_starts``), every method is scored on the pixels where every method's every member and
the observation have data (``common_mask``), and the first method is compared with the others by
a paired block bootstrap over the starts (``uncertainty.compare``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from rich.progress import track

from nowcast.errors import MissingFramesError
from nowcast.store import StoreReader
from nowcast.verify.evaluate import select_starts
from nowcast.verify.metrics import threshold_label
from nowcast.verify.probabilistic import PROBABILITY_THRESHOLDS_MMH, EnsembleAccumulator
from nowcast.verify.uncertainty import compare

log = logging.getLogger(__name__)

EnsembleForecaster = Callable[[np.ndarray, int], np.ndarray]


@dataclass
class EnsembleEvaluation:
    """Probabilistic scores per method and lead time, with what was evaluated."""

    lead_minutes: list[float]
    n_members: int
    num_input_frames: int
    time_step_s: int
    pixel_size_m: float
    n_starts: int
    n_skipped_gap: int
    first_init_time: str | None
    last_init_time: str | None
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> score -> per lead
    seconds_per_forecast: dict[str, float] = field(default_factory=dict)  # mean wall time of one ensemble
    store: str = ""
    comparisons: dict[str, dict] = field(default_factory=dict)  # the first method against each other one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_members(name: str, members: np.ndarray, expected: tuple[int, ...]) -> np.ndarray:
    members = np.asarray(members)
    if members.shape != expected:
        raise ValueError(f"ensemble forecaster {name!r} returned shape {members.shape}, expected {expected}")
    return members


def evaluate_ensembles(
    store: StoreReader,
    forecasters: dict[str, EnsembleForecaster],
    n_members: int,
    num_input_frames: int,
    n_leads: int,
    start: Any = None,
    end: Any = None,
    stride: int = 1,
    max_starts: int | None = None,
    common_mask: bool = True,
    thresholds: tuple[float, ...] = PROBABILITY_THRESHOLDS_MMH,
) -> EnsembleEvaluation:
    """Run every ensemble forecaster from every valid start and accumulate probabilistic scores.

    Args:
        store: the store to read inputs and observations from.
        forecasters: method -> ``f(frames (T_in, H, W), n_leads) -> (n_members, n_leads, H, W)`` mm/h.
        n_members: members of every ensemble.
        num_input_frames, n_leads, start, end, stride, max_starts: as ``evaluate.evaluate``.
        common_mask: score every method on the pixels where all members of all methods have data.
        thresholds: rain rates (mm/h) of the reliability, ROC and Brier scores.

    Raises:
        MissingFramesError: no start in the range has a whole valid window.
    """
    if not forecasters:
        raise ValueError("no ensemble forecasters to evaluate")
    first = 0 if start is None else int(store.layout.index_of(start))
    last = None if end is None else int(store.layout.index_of(end))
    selection = select_starts(store.valid, num_input_frames, n_leads, first, last, stride, max_starts)
    if selection.starts.size == 0:
        raise MissingFramesError(
            f"{store.path}: no start in the range has {num_input_frames} input and {n_leads} lead frames all valid"
        )
    log.info(
        "ensembles of %d members from %d starts of %s, methods %s",
        n_members,
        selection.starts.size,
        store.path,
        ", ".join(forecasters),
    )
    template = EnsembleAccumulator(n_leads, n_members, thresholds)
    totals = {name: EnsembleAccumulator(n_leads, n_members, thresholds) for name in forecasters}
    per_start: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in forecasters}
    seconds = dict.fromkeys(forecasters, 0.0)
    for s in track(selection.starts, description="evaluating ensembles", total=len(selection.starts)):
        window = store.read(int(s) - num_input_frames + 1, int(s) + n_leads + 1)
        frames, obs = window[:num_input_frames], window[num_input_frames:]
        ensembles = {}
        for name, forecaster in forecasters.items():
            started = time.perf_counter()
            ensembles[name] = _check_members(name, forecaster(frames.copy(), n_leads), (n_members, *obs.shape))
            seconds[name] += time.perf_counter() - started
        exclude = None
        if common_mask:
            exclude = np.zeros(obs.shape, bool)
            for members in ensembles.values():
                exclude |= ~np.isfinite(members).all(axis=0)
        for name, members in ensembles.items():
            this_start = EnsembleAccumulator(n_leads, n_members, thresholds, seed=int(s))
            this_start.add(members, obs, exclude)
            totals[name].merge(this_start)
            per_start[name].append(this_start.sums)
        del ensembles
    reference = next(iter(forecasters))
    comparisons = {}
    if len(forecasters) > 1:
        labels = [threshold_label(t) for t in template.thresholds]
        lower = ("CRPS", *(f"Brier@{label}" for label in labels))
        scores = (*lower, *(f"ROC_area@{label}" for label in labels))
        comparisons = compare(template, per_start, reference, n_leads, stride, scores, lower_is_better=lower)  # type: ignore[arg-type]  # same sums interface
    times = store.times[selection.starts]
    step_s = store.layout.time_step_s
    return EnsembleEvaluation(
        lead_minutes=[(k + 1) * step_s / 60 for k in range(n_leads)],
        n_members=n_members,
        num_input_frames=num_input_frames,
        time_step_s=step_s,
        pixel_size_m=store.grid.pixel_size,
        n_starts=int(selection.starts.size),
        n_skipped_gap=selection.n_skipped_gap,
        first_init_time=str(times[0]),
        last_init_time=str(times[-1]),
        methods={name: acc.result() for name, acc in totals.items()},
        seconds_per_forecast={name: total / selection.starts.size for name, total in seconds.items()},
        store=store.path,
        comparisons=comparisons,
    )
