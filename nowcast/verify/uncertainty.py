"""How sure is a difference between two forecasters? A paired block bootstrap over forecast starts.

Why: a table of one event's forecasts shows differences in the third decimal, and a reader cannot
tell which of them the next event would repeat. Resampling the starts, with every method's sums
from the same resampled starts (paired), gives an interval for each difference.

- Scores are recomputed from the resampled starts' summed counts and errors, as the table's
  scores are from all starts (``ScoreAccumulator.scores_from``), never averaged per forecast.
- Starts are drawn in blocks of consecutive starts (a moving-block bootstrap): neighbouring
  starts share most of their observed frames, so resampling them one by one would count one
  storm's luck many times over and make the interval too narrow. A block spans the starts whose
  lead windows overlap, but there are at least ``MIN_BLOCKS`` blocks.
- With few independent windows (one short event) even this interval is too narrow: it shows
  the spread within the event, not between events. ``independent_windows`` says how many there were.
"""

from __future__ import annotations

import math

import numpy as np

from nowcast.verify.metrics import ScoreAccumulator

COMPARED_SCORES = ("MAE", "CSI@1", "CSI@5", "FSS@1")
LOWER_IS_BETTER = ("MAE",)
MIN_BLOCKS = 4
N_RESAMPLES = 2000
LEVEL = 0.9


def overlapping_starts(n_leads: int, stride: int) -> int:
    """Consecutive starts whose lead windows share observed frames (``stride`` store steps apart)."""
    return math.ceil(n_leads / stride)


def block_length(n_starts: int, n_leads: int, stride: int) -> int:
    """Consecutive starts per bootstrap block: those whose lead windows overlap, at most a
    ``MIN_BLOCKS``-th of the starts, at least 1."""
    return max(1, min(overlapping_starts(n_leads, stride), n_starts // MIN_BLOCKS))


def resample_weights(n_starts: int, block: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each start is drawn in each resample: (n_resamples, n_starts) counts summing to n_starts.

    Moving blocks: each resample joins blocks of ``block`` consecutive starts, each block's first
    start drawn uniformly, until it holds ``n_starts`` starts.
    """
    n_blocks = math.ceil(n_starts / block)
    firsts = rng.integers(0, n_starts - block + 1, size=(n_resamples, n_blocks))  # (R, n_blocks)
    drawn = (firsts[:, :, None] + np.arange(block)).reshape(n_resamples, -1)[:, :n_starts]  # (R, n_starts)
    weights = np.zeros((n_resamples, n_starts), np.int64)
    np.add.at(weights, (np.arange(n_resamples)[:, None], drawn), 1)
    return weights


def _stacked(per_start: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One method's per-start sums as arrays with a leading start axis."""
    return {key: np.stack([sums[key] for sums in per_start]) for key in per_start[0]}


def compare(
    template: ScoreAccumulator,
    per_start: dict[str, list[dict[str, np.ndarray]]],
    reference: str,
    n_leads: int,
    stride: int,
    scores: tuple[str, ...] = COMPARED_SCORES,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
    lower_is_better: tuple[str, ...] = LOWER_IS_BETTER,
) -> dict[str, dict]:
    """Differences of ``reference`` from every other method, with bootstrap intervals.

    Args:
        template: an accumulator with the evaluation's thresholds and FSS window (turns sums into scores).
        per_start: method -> one ``ScoreAccumulator.sums`` per start, in start order, same starts for all.
        reference: the method compared with the others (``reference - other``).
        n_leads: lead times scored (sets the block length with ``stride``).
        stride: store steps between consecutive starts.
        scores: which scores to compare.
        n_resamples: bootstrap resamples.
        level: central probability of the interval.
        seed: the resampling's seed, so a report is reproducible.
        lower_is_better: the scores for which lower is better (for ``better_starts``).

    Returns:
        other method -> {"block": starts per block, "independent_windows": how many lead windows
        that share no frame the starts amount to,
        "level": level, score -> {"difference", "low", "high", "better_starts", "scored_starts"}},
        every list one value per lead (NaN where a score is undefined). ``better_starts``: in how
        many starts the reference alone scored better than the other method (for MAE, lower).
    """
    n_starts = len(per_start[reference])
    block = block_length(n_starts, n_leads, stride)
    weights = resample_weights(n_starts, block, n_resamples, np.random.default_rng(seed))
    stacked = {method: _stacked(starts) for method, starts in per_start.items()}
    observed = {m: template.scores_from({k: v.sum(axis=0) for k, v in sums.items()}) for m, sums in stacked.items()}
    single = {m: template.scores_from(sums) for m, sums in stacked.items()}  # each start on its own: (n_starts, leads)
    resampled = {
        m: template.scores_from({k: np.tensordot(weights, v, axes=1) for k, v in sums.items()})
        for m, sums in stacked.items()
    }  # (n_resamples, leads)
    tail = (1 - level) / 2
    out = {}
    for other in per_start:
        if other == reference:
            continue
        entry: dict = {
            "block": block,
            "independent_windows": n_starts / overlapping_starts(n_leads, stride),
            "level": level,
        }
        for score in scores:
            spread = resampled[reference][score] - resampled[other][score]  # (R, leads)
            low, high = np.full(n_leads, np.nan), np.full(n_leads, np.nan)
            for lead in range(n_leads):
                finite = spread[:, lead][np.isfinite(spread[:, lead])]
                if finite.size:
                    low[lead], high[lead] = np.quantile(finite, [tail, 1 - tail])
            per_start_difference = single[reference][score] - single[other][score]  # (n_starts, leads)
            sign = -1 if score in lower_is_better else 1
            better = (sign * per_start_difference > 0).sum(axis=0)
            entry[score] = {
                "difference": (observed[reference][score] - observed[other][score]).tolist(),
                "low": low.tolist(),
                "high": high.tolist(),
                "better_starts": better.tolist(),
                "scored_starts": np.isfinite(per_start_difference).sum(axis=0).tolist(),
            }
        out[other] = entry
    return out
