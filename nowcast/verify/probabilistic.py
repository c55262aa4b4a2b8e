"""Scores of an ensemble forecast against observations, accumulated per lead time.

What each score says about an ensemble of N members:

- CRPS (mm/h, lower is better): the distance between the members' distribution and the
  observation, in the unit of the forecast; for one member it is the absolute error. Computed as
  ``mean_i |x_i - y| - (1 / (2 N^2)) sum_ij |x_i - x_j|`` from the sorted members, which is
  Hersbach's (2000) decomposition that ``pysteps.verification.probscores.CRPS`` implements. (That
  function misses an interval when the observation equals a member exactly, e.g. both 0 mm/h;
  this one does not.)
- Spread/skill ratio: ``sqrt((N + 1) / N * mean member variance) / RMSE of the ensemble mean``
  (Fortin et al. 2014). 1 when the observation behaves like one more member; below 1, the
  ensemble is too sure of itself. The variance is the unbiased one (divided by N - 1), i.e. half
  the mean squared difference of two members (``ensscores.ensemble_spread`` with MSE).
- Reliability at threshold t: the forecast probability of rain ``>= t`` (the fraction of
  members), in 10 bins; in each bin, the observed frequency of ``>= t`` against the mean
  forecast probability (``probscores.reldiag_*``). ``reliability_gap@t`` is the largest
  difference over the bins that hold at least ``min_bin_fraction`` of the pixels.
- ROC area at threshold t: probability of detection against false detection when "yes" means a
  probability at or above each of the ensemble's N + 1 levels (``probscores.ROC_curve_*``,
  trapezoids); 0.5 is no skill, 1 perfect.
- Brier score at threshold t: the mean squared difference of probability and outcome.
- Rank histogram: the observation's rank among the members (``ensscores.rankhist_*``): pairs
  where the observation and every member are below ``rank_threshold`` are left out, values below
  it tie, and ties take a random rank among the tied positions. Flat when reliable; U-shaped
  when the spread is too small.

A pixel counts where the observation and every member are finite, and the caller does not
``exclude`` it. Scores come from sums that add up over forecasts (as ``metrics.py``), so a score
over many starts is computed once from the totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nowcast.verify.metrics import ratio, threshold_label

PROBABILITY_THRESHOLDS_MMH = (1.0, 5.0)
RELIABILITY_BINS = 10
MIN_BIN_FRACTION = 0.01
RANK_THRESHOLD_MMH = 0.1


def crps_ensemble(members: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """CRPS of every point: ``members`` (N, ...) against ``obs`` (...); NaN in, NaN out."""
    members = np.asarray(members, np.float64)
    n = members.shape[0]
    ranked = np.sort(members, axis=0)
    weights = (2 * np.arange(n) - n + 1).reshape((n,) + (1,) * (members.ndim - 1))  # 2i - N - 1, 1-based
    spread = (weights * ranked).sum(axis=0) / n**2  # = sum_ij |x_i - x_j| / (2 N^2)
    return np.abs(members - obs).mean(axis=0) - spread


def exceedance_probability(members: np.ndarray, threshold: float) -> np.ndarray:
    """Fraction of members at or above ``threshold`` (N, ...) -> (...); NaN where a member is NaN."""
    members = np.asarray(members)
    out = (members >= threshold).mean(axis=0)
    return np.where(np.isfinite(members).all(axis=0), out, np.nan)


def reliability_edges(n_bins: int = RELIABILITY_BINS) -> np.ndarray:
    """pySTEPS' bin edges: ``n_bins`` equal bins over [0, 1], each closed on the right."""
    return np.linspace(-1e-6, 1 + 1e-6, n_bins + 1)


def roc_area(pod: np.ndarray, pofd: np.ndarray) -> np.ndarray:
    """Area under the ROC curve from (..., K) POD/POFD at increasing probability thresholds
    (pySTEPS' trapezoids, closed by the corners (1, 1) and (0, 0))."""
    area = (1 - pofd[..., 0]) * (1 + pod[..., 0]) / 2
    area = area + ((pofd[..., :-1] - pofd[..., 1:]) * (pod[..., 1:] + pod[..., :-1]) / 2).sum(axis=-1)
    return area + pofd[..., -1] * pod[..., -1] / 2


@dataclass
class EnsembleAccumulator:
    """Sums for every probabilistic score of one ensemble method, per lead time.

    ``add`` one forecast (all members, all leads) at a time, ``merge`` others, then ``result``.
    """

    n_leads: int
    n_members: int
    thresholds: tuple[float, ...] = PROBABILITY_THRESHOLDS_MMH
    n_bins: int = RELIABILITY_BINS
    min_bin_fraction: float = MIN_BIN_FRACTION
    rank_threshold: float = RANK_THRESHOLD_MMH
    seed: int = 0  # for the rank histogram's ties
    sums: dict[str, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.n_leads < 1 or self.n_members < 2:
            raise ValueError(f"need n_leads >= 1 and n_members >= 2, got {self.n_leads} and {self.n_members}")
        self.thresholds = tuple(float(t) for t in self.thresholds)
        self._rng = np.random.default_rng(self.seed)
        lead, n_thr, members = self.n_leads, len(self.thresholds), self.n_members
        self.sums = {
            "n_forecasts": np.zeros(lead, np.int64),
            "n_pixels": np.zeros(lead, np.int64),
            "crps": np.zeros(lead),
            "variance": np.zeros(lead),  # members' unbiased variance, summed over pixels
            "squared_error_mean": np.zeros(lead),  # of the ensemble mean
            "brier": np.zeros((n_thr, lead)),
            "bin_count": np.zeros((n_thr, lead, self.n_bins), np.int64),
            "bin_probability": np.zeros((n_thr, lead, self.n_bins)),
            "bin_observed": np.zeros((n_thr, lead, self.n_bins), np.int64),
            # ROC: "yes" when at least k members say so, k = 0..N
            "roc_hits": np.zeros((n_thr, lead, members + 1), np.int64),
            "roc_false_alarms": np.zeros((n_thr, lead, members + 1), np.int64),
            "events": np.zeros((n_thr, lead), np.int64),
            "rank_counts": np.zeros((lead, members + 1), np.int64),
        }

    def add(self, members: np.ndarray, obs: np.ndarray, exclude: np.ndarray | None = None) -> None:
        """Accumulate one ensemble forecast.

        Args:
            members: (N, L, H, W) mm/h, NaN = no data; L may be less than ``n_leads`` (the first L).
            obs: (L, H, W) mm/h observed at the same valid times.
            exclude: optional boolean mask broadcastable to (L, H, W) of further pixels to skip.
        """
        members = np.asarray(members)
        obs = np.asarray(obs)
        if members.ndim != 4 or members.shape[1:] != obs.shape or members.shape[0] != self.n_members:
            raise ValueError(
                f"members {members.shape} must be ({self.n_members}, L, H, W) and obs {obs.shape} (L, H, W)"
            )
        if obs.shape[0] > self.n_leads:
            raise ValueError(f"forecast has {obs.shape[0]} leads, the accumulator {self.n_leads}")
        self.sums["n_forecasts"][: obs.shape[0]] += 1
        for k in range(obs.shape[0]):  # one lead at a time: the temporaries stay (N, H, W)
            valid = np.isfinite(obs[k]) & np.isfinite(members[:, k]).all(axis=0)
            if exclude is not None:
                valid &= ~np.broadcast_to(np.asarray(exclude, bool), obs.shape)[k]
            self._add_lead(k, members[:, k][:, valid].astype(np.float64), obs[k][valid].astype(np.float64))

    def _add_lead(self, k: int, x: np.ndarray, y: np.ndarray) -> None:
        """x: (N, P) members, y: (P,) observations, all valid."""
        s, n = self.sums, self.n_members
        s["n_pixels"][k] += y.size
        s["crps"][k] += crps_ensemble(x, y).sum()
        s["variance"][k] += x.var(axis=0, ddof=1).sum()
        s["squared_error_mean"][k] += ((x.mean(axis=0) - y) ** 2).sum()
        edges = reliability_edges(self.n_bins)
        for i, threshold in enumerate(self.thresholds):
            count = (x >= threshold).sum(axis=0)  # (P,) members saying yes
            probability = count / n
            event = y >= threshold
            s["brier"][i, k] += ((probability - event) ** 2).sum()
            bins = np.digitize(probability, edges, right=True) - 1
            s["bin_count"][i, k] += np.bincount(bins, minlength=self.n_bins)
            s["bin_probability"][i, k] += np.bincount(bins, weights=probability, minlength=self.n_bins)
            s["bin_observed"][i, k] += np.bincount(bins, weights=event, minlength=self.n_bins).astype(np.int64)
            yes_event = np.bincount(count[event], minlength=n + 1)  # pixels by members saying yes
            yes_dry = np.bincount(count[~event], minlength=n + 1)
            s["roc_hits"][i, k] += yes_event[::-1].cumsum()[::-1]  # at least j members
            s["roc_false_alarms"][i, k] += yes_dry[::-1].cumsum()[::-1]
            s["events"][i, k] += int(event.sum())
        s["rank_counts"][k] += self._ranks(x, y)

    def _ranks(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Rank histogram counts (N + 1,) of one lead, pySTEPS' rule for low values and ties."""
        low = self.rank_threshold
        keep = (y >= low) | (x >= low).any(axis=0)
        x, y = np.where(x[:, keep] < low, low - 1, x[:, keep]), np.where(y[keep] < low, low - 1, y[keep])
        below = (x < y).sum(axis=0)
        ties = (x == y).sum(axis=0)
        rank = below + np.floor(self._rng.uniform(size=y.size) * (ties + 1)).astype(np.int64)
        return np.bincount(rank, minlength=self.n_members + 1)

    def merge(self, other: EnsembleAccumulator) -> None:
        """Add another accumulator's sums (same leads, members, thresholds and bins)."""
        if (self.n_leads, self.n_members, self.thresholds, self.n_bins) != (
            other.n_leads,
            other.n_members,
            other.thresholds,
            other.n_bins,
        ):
            raise ValueError("cannot merge ensemble accumulators with different leads, members, thresholds or bins")
        for key, value in other.sums.items():
            self.sums[key] += value

    def scores_from(self, sums: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per-lead scores from sums shaped like ``self.sums`` with any leading axes (e.g. resamples)."""
        n, pixels = self.n_members, sums["n_pixels"]
        out = {
            "CRPS": ratio(sums["crps"], pixels),
            "spread": np.sqrt(ratio(sums["variance"], pixels)),
            "RMSE_mean": np.sqrt(ratio(sums["squared_error_mean"], pixels)),
        }
        out["spread_skill"] = ratio(np.sqrt((n + 1) / n) * out["spread"], out["RMSE_mean"])
        events = sums["events"]  # (..., thr, lead)
        non_events = pixels[..., None, :] - events
        pod = ratio(sums["roc_hits"], events[..., None])  # (..., thr, lead, N + 1)
        pofd = ratio(sums["roc_false_alarms"], non_events[..., None])
        area = roc_area(pod, pofd)
        frequency = ratio(sums["bin_observed"], sums["bin_count"])
        probability = ratio(sums["bin_probability"], sums["bin_count"])
        counts = sums["bin_count"]
        populated = (counts > 0) & (counts >= self.min_bin_fraction * pixels[..., None, :, None])
        gap = np.where(populated, np.abs(frequency - probability), -1.0).max(axis=-1)
        worst = np.where(populated.any(axis=-1), gap, np.nan)
        for i, threshold in enumerate(self.thresholds):
            label = threshold_label(threshold)
            out[f"Brier@{label}"] = ratio(sums["brier"][..., i, :], pixels)
            out[f"ROC_area@{label}"] = area[..., i, :]
            out[f"reliability_gap@{label}"] = worst[..., i, :]
        return out

    def result(self) -> dict[str, list]:
        """Every score per lead: the ``scores_from`` scores, and per threshold ``reliability@t``
        ({"probability", "frequency", "count"}, each per lead per bin), ``rank_histogram`` per lead
        (fractions), ``n_pixels`` and ``n_forecasts``."""
        out: dict[str, list] = {
            name: [float(v) for v in values] for name, values in self.scores_from(self.sums).items()
        }
        s = self.sums
        for i, threshold in enumerate(self.thresholds):
            out[f"reliability@{threshold_label(threshold)}"] = {  # type: ignore[assignment]
                "probability": ratio(s["bin_probability"][i], s["bin_count"][i]).tolist(),
                "frequency": ratio(s["bin_observed"][i], s["bin_count"][i]).tolist(),
                "count": s["bin_count"][i].tolist(),
            }
        out["rank_histogram"] = ratio(s["rank_counts"], s["rank_counts"].sum(axis=-1, keepdims=True)).tolist()
        out["n_pixels"] = [int(v) for v in s["n_pixels"]]
        out["n_forecasts"] = [int(v) for v in s["n_forecasts"]]
        return out
