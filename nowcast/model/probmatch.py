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


class _KeepDistribution(torch.autograd.Function):
    """``keep_distribution`` with the gradient of its smooth version (see the function below)."""

    @staticmethod
    def forward(ctx, field, sorted_target, n_wet, window):
        matched = keep_distribution(field, sorted_target, n_wet)
        order = field.argsort(dim=-1)
        p = field.shape[-1]
        k = max(1, int(window * p))
        ahead = torch.arange(p, device=field.device).add(k).clamp(max=p - 1)
        behind = torch.arange(p, device=field.device).sub(k).clamp(min=0)
        ranked_field, ranked_matched = field.gather(-1, order), matched.gather(-1, order)
        rise = ranked_matched[:, ahead] - ranked_matched[:, behind]
        run = (ranked_field[:, ahead] - ranked_field[:, behind]).clamp(min=1e-6)
        ctx.save_for_backward(order, rise / run, ahead, behind)
        return matched

    @staticmethod
    def backward(ctx, grad_out):
        order, slope, ahead, behind = ctx.saved_tensors
        ranked = grad_out.gather(-1, order)  # (N, P) in the field's rank order
        total = torch.nn.functional.pad(ranked.cumsum(dim=-1), (1, 0))
        neighbours = (total[:, ahead + 1] - total[:, behind]) / (ahead - behind + 1)  # mean over the window
        grad = torch.empty_like(ranked).scatter_(-1, order, slope * (ranked - neighbours))
        return grad, None, None, None


def keep_distribution_differentiable(
    field: torch.Tensor, sorted_target: torch.Tensor, n_wet: torch.Tensor, window: float = 0.005
) -> torch.Tensor:
    """``keep_distribution``, with a gradient for training.

    The matched value of a pixel depends only on its rank, which has no gradient. The gradient
    used is that of a smooth match (the empirical CDF with a narrow kernel): raising pixel ``j``
    moves it along the map from forecast to target values, at the map's local slope (the rise of
    the matched values over the rise of the sorted forecast, ``window`` of the pixels either side
    of its rank), and pushes down the pixels it overtakes. So ``j`` gains only by what it wants
    beyond its rank neighbours: ``slope_j * (g_j - mean of g over the window)``. A shift of the
    whole field, which changes nothing, gets (nearly) no gradient.

    Args:
        field, sorted_target, n_wet: as ``keep_distribution``.
        window: half-width of the rank window, as a fraction of the row's pixels.

    Returns:
        (N, P): the values of ``keep_distribution``; the gradient reaches ``field``.
    """
    return _KeepDistribution.apply(field, sorted_target, n_wet, window)
