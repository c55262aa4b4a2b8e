"""Keep the observed wet area and intensity distribution: S-PROG's percentile mask and CDF match.

An AR forecast of a cascade smooths as small scales fade, and a smoothed field thresholded at
1 mm/h covers less and less area. S-PROG undoes that after recomposition: the forecast keeps as
many wet pixels as the last observation had (its highest ones: ``pysteps.nowcasts.utils.
compute_percentile_mask``), and their values are replaced, rank for rank, by the observation's
(``pysteps.postprocessing.probmatching.nonparam_match_empirical_cdf``). The forecast decides
*where* it rains; the observation decides *how much* and *how intensely*.

Both steps come from one sort of each forecast row: the mask keeps the ``n_wet`` highest pixels
(with ties), which are also the highest ranks of the matched field, and every other pixel is
"no rain". pySTEPS' extra trimming of the target (when it has more rain than the masked field)
never applies here, because the target's rain pixels are exactly the ``n_wet`` counted.
"""

from __future__ import annotations

import torch


def keep_distribution(field: torch.Tensor, sorted_target: torch.Tensor, n_wet: torch.Tensor) -> torch.Tensor:
    """Give each row's ``n_wet`` highest pixels the target's values, rank for rank; the rest no rain.

    Args:
        field: (N, P) forecast values (any monotone scale: only their order counts).
        sorted_target: (N, P) or (1, P) the observation's values, ascending; its first is "no rain".
        n_wet: (N,) integer counts in [1, P]: how many pixels the observation has at or above
            the rain threshold.

    Returns:
        (N, P) values taken from the target.
    """
    n, p = field.shape
    order = field.argsort(dim=-1)
    rank_of_threshold = (p - n_wet.long()).clamp(0, p - 1)[:, None]
    threshold = field.gather(-1, order.gather(-1, rank_of_threshold))
    wet = field >= threshold
    sorted_target = sorted_target.expand(n, p)
    matched = torch.empty_like(sorted_target).scatter_(-1, order, sorted_target)
    return torch.where(wet, matched, sorted_target[:, :1])
