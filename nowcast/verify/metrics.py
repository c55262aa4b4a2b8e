"""Scores of a deterministic rain forecast against observations, accumulated per lead time.

Scores are built from sums that add up across forecasts (contingency counts, FSS sums, error
sums), so a score over many forecasts is computed once from the totals, never as a mean of
per-forecast scores (which would weight a dry forecast like a stormy one).

Conventions, fixed here and matching ``pysteps.verification`` so results compare with it:

- A pixel counts only where both the forecast and the observation are finite; the caller may
  exclude more pixels (``exclude``). Excluded pixels enter no sum.
- Categorical event: rain rate ``> threshold`` (``det_cat_fct``). FSS event: ``>= threshold``
  (``fss``). ``frac_*_gt5`` fractions use ``> 5 mm/h`` like the categorical scores.
- FSS: excluded pixels count as "no event" in both fields before the moving-window average
  (a square window, zero outside the grid), which is what pysteps does with NaN input.
- A score whose denominator is zero (no rain observed or forecast at that threshold) is NaN,
  never 0 or 1: "undefined" must not look like "bad" or "perfect".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import uniform_filter

CATEGORICAL_THRESHOLDS_MMH = (0.5, 1.0, 5.0, 10.0)
FSS_THRESHOLD_MMH = 1.0
FSS_WINDOW_M = 8000.0
HEAVY_RAIN_MMH = 5.0


def fss_window_pixels(pixel_size_m: float, window_m: float = FSS_WINDOW_M) -> int:
    """The FSS window in pixels for a physical window size (at least one pixel).

    Args:
        pixel_size_m: grid spacing in metres.
        window_m: window side in metres (8 km by default).

    Returns:
        The window side in whole pixels, rounded to the nearest.
    """
    if pixel_size_m <= 0:
        raise ValueError(f"pixel_size_m must be positive, got {pixel_size_m}")
    return max(1, int(round(window_m / pixel_size_m)))


def threshold_label(threshold: float) -> str:
    """``1.0 -> "1"``, ``0.5 -> "0.5"``: the suffix used in score names such as ``CSI@1``."""
    return f"{threshold:g}"


def event(rain, threshold: float):
    """The categorical event, ``rain > threshold`` (``det_cat_fct``), for numpy arrays and torch tensors.

    Training counts its validation CSI with this too, so it picks checkpoints by the score
    ``nowcast evaluate`` reports.
    """
    return rain > threshold


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is zero (no warning): every score from sums."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def categorical_scores(hits: np.ndarray, misses: np.ndarray, false_alarms: np.ndarray) -> dict[str, np.ndarray]:
    """CSI, POD and FAR from (accumulated) contingency counts; NaN where undefined.

    Args:
        hits: event forecast and observed.
        misses: event observed, not forecast.
        false_alarms: event forecast, not observed.

    Returns:
        ``{"CSI": ..., "POD": ..., "FAR": ...}`` with the shape of the counts.
    """
    return {
        "CSI": ratio(hits, hits + misses + false_alarms),
        "POD": ratio(hits, hits + misses),
        "FAR": ratio(false_alarms, hits + false_alarms),
    }


def fss_from_sums(sum_fct_sq: np.ndarray, sum_fct_obs: np.ndarray, sum_obs_sq: np.ndarray) -> np.ndarray:
    """FSS = 1 - sum (Pf - Po)^2 / (sum Pf^2 + sum Po^2), from accumulated sums; NaN if both empty."""
    numerator = sum_fct_sq - 2.0 * sum_fct_obs + sum_obs_sq
    return 1.0 - ratio(numerator, sum_fct_sq + sum_obs_sq)


def fractions(events: np.ndarray, window: int) -> np.ndarray:
    """Fraction of event pixels in a ``window`` x ``window`` square around each pixel.

    Args:
        events: (L, H, W) or (H, W) boolean (or 0/1) event fields.
        window: window side in pixels; 1 returns the events unchanged.

    Returns:
        float64 fractions of the same shape; zero is assumed outside the grid.
    """
    events = np.asarray(events, dtype=np.float64)
    if window <= 1:
        return events
    size = (1,) * (events.ndim - 2) + (window, window)  # never smooth across lead times
    return uniform_filter(events, size=size, mode="constant", cval=0.0)


@dataclass
class ScoreAccumulator:
    """Sums for every score of one method, per lead time, over any number of forecasts.

    ``add`` one forecast at a time (all its leads), ``merge`` partial accumulators from other
    workers, then ``result`` turns the totals into scores.
    """

    n_leads: int
    pixel_size_m: float
    thresholds: tuple[float, ...] = CATEGORICAL_THRESHOLDS_MMH
    fss_threshold: float = FSS_THRESHOLD_MMH
    fss_window_m: float = FSS_WINDOW_M
    heavy_rain: float = HEAVY_RAIN_MMH
    sums: dict[str, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.n_leads < 1:
            raise ValueError(f"n_leads must be at least 1, got {self.n_leads}")
        self.thresholds = tuple(float(t) for t in self.thresholds)
        self.fss_window = fss_window_pixels(self.pixel_size_m, self.fss_window_m)
        n_thr, lead = len(self.thresholds), self.n_leads
        self.sums = {
            "n_forecasts": np.zeros(lead, np.int64),
            "n_pixels": np.zeros(lead, np.int64),
            "hits": np.zeros((n_thr, lead), np.int64),
            "misses": np.zeros((n_thr, lead), np.int64),
            "false_alarms": np.zeros((n_thr, lead), np.int64),
            "sum_abs_error": np.zeros(lead),
            "sum_error": np.zeros(lead),
            "sum_forecast": np.zeros(lead),
            "sum_obs": np.zeros(lead),
            "n_forecast_heavy": np.zeros(lead, np.int64),
            "n_obs_heavy": np.zeros(lead, np.int64),
            "fss_sum_fct_sq": np.zeros(lead),
            "fss_sum_fct_obs": np.zeros(lead),
            "fss_sum_obs_sq": np.zeros(lead),
        }

    def add(self, forecast: np.ndarray, obs: np.ndarray, exclude: np.ndarray | None = None) -> None:
        """Accumulate one forecast.

        Args:
            forecast: (L, H, W) mm/h, NaN = no data; L may be less than ``n_leads`` (the first L).
            obs: (L, H, W) mm/h observed at the same valid times, NaN = no data.
            exclude: optional boolean mask broadcastable to (L, H, W) of further pixels to skip
                (e.g. where another method has no data, to score all methods on the same pixels).
        """
        forecast = np.asarray(forecast, dtype=np.float64)
        obs = np.asarray(obs, dtype=np.float64)
        if forecast.shape != obs.shape or forecast.ndim != 3:
            raise ValueError(f"forecast {forecast.shape} and obs {obs.shape} must both be (L, H, W)")
        lead = forecast.shape[0]
        if lead > self.n_leads:
            raise ValueError(f"forecast has {lead} leads, the accumulator {self.n_leads}")
        valid = np.isfinite(forecast) & np.isfinite(obs)
        if exclude is not None:
            valid &= ~np.broadcast_to(np.asarray(exclude, dtype=bool), valid.shape)
        # -inf never exceeds a threshold and adds nothing below: excluded pixels drop out of counts
        fct = np.where(valid, forecast, -np.inf)
        ob = np.where(valid, obs, -np.inf)
        axes = (1, 2)
        s = self.sums
        s["n_forecasts"][:lead] += 1
        s["n_pixels"][:lead] += valid.sum(axis=axes)
        for k, thr in enumerate(self.thresholds):
            f_event, o_event = event(fct, thr), event(ob, thr)
            s["hits"][k, :lead] += (f_event & o_event).sum(axis=axes)
            s["misses"][k, :lead] += (~f_event & o_event).sum(axis=axes)
            s["false_alarms"][k, :lead] += (f_event & ~o_event).sum(axis=axes)
        error = np.where(valid, forecast - obs, 0.0)
        s["sum_abs_error"][:lead] += np.abs(error).sum(axis=axes)
        s["sum_error"][:lead] += error.sum(axis=axes)
        s["sum_forecast"][:lead] += np.where(valid, forecast, 0.0).sum(axis=axes)
        s["sum_obs"][:lead] += np.where(valid, obs, 0.0).sum(axis=axes)
        s["n_forecast_heavy"][:lead] += event(fct, self.heavy_rain).sum(axis=axes)
        s["n_obs_heavy"][:lead] += event(ob, self.heavy_rain).sum(axis=axes)
        p_f = fractions(fct >= self.fss_threshold, self.fss_window)
        p_o = fractions(ob >= self.fss_threshold, self.fss_window)
        s["fss_sum_fct_sq"][:lead] += (p_f**2).sum(axis=axes)
        s["fss_sum_fct_obs"][:lead] += (p_f * p_o).sum(axis=axes)
        s["fss_sum_obs_sq"][:lead] += (p_o**2).sum(axis=axes)

    def merge(self, other: ScoreAccumulator) -> None:
        """Add another accumulator's sums (same leads, thresholds and window) into this one."""
        same = (self.n_leads, self.thresholds, self.fss_threshold, self.fss_window, self.heavy_rain) == (
            other.n_leads,
            other.thresholds,
            other.fss_threshold,
            other.fss_window,
            other.heavy_rain,
        )
        if not same:
            raise ValueError("cannot merge accumulators with different leads, thresholds or FSS window")
        for key, value in other.sums.items():
            self.sums[key] += value

    def result(self) -> dict[str, list[float]]:
        """Every score per lead time (lists of length ``n_leads``; NaN where undefined).

        Returns:
            ``CSI@t``, ``POD@t``, ``FAR@t`` per categorical threshold t, ``FSS@t`` at the FSS
            threshold, ``MAE`` and ``bias`` (forecast minus observation, mm/h), ``mean_forecast``
            and ``mean_obs`` (mm/h), ``frac_forecast_gt5``/``frac_obs_gt5`` (fraction of pixels
            above the heavy-rain rate), ``n_pixels`` and ``n_forecasts``.
        """
        scores = {name: [float(v) for v in values] for name, values in self.scores_from(self.sums).items()}
        scores["n_pixels"] = [int(v) for v in self.sums["n_pixels"]]
        scores["n_forecasts"] = [int(v) for v in self.sums["n_forecasts"]]
        return scores

    def scores_from(self, sums: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The scores of ``result`` from sums shaped like ``self.sums`` with any leading axes
        (e.g. one row per bootstrap resample); lead time stays the last axis."""
        out: dict[str, np.ndarray] = {}
        cat = categorical_scores(sums["hits"], sums["misses"], sums["false_alarms"])  # (..., thresholds, leads)
        for k, thr in enumerate(self.thresholds):
            for name, values in cat.items():
                out[f"{name}@{threshold_label(thr)}"] = values[..., k, :]
        out[f"FSS@{threshold_label(self.fss_threshold)}"] = fss_from_sums(
            sums["fss_sum_fct_sq"], sums["fss_sum_fct_obs"], sums["fss_sum_obs_sq"]
        )
        n = sums["n_pixels"]
        out["MAE"] = ratio(sums["sum_abs_error"], n)
        out["bias"] = ratio(sums["sum_error"], n)
        out["mean_forecast"] = ratio(sums["sum_forecast"], n)
        out["mean_obs"] = ratio(sums["sum_obs"], n)
        heavy = threshold_label(self.heavy_rain)
        out[f"frac_forecast_gt{heavy}"] = ratio(sums["n_forecast_heavy"], n)
        out[f"frac_obs_gt{heavy}"] = ratio(sums["n_obs_heavy"], n)
        return out
