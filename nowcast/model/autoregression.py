"""AR(2) per cascade level, estimated from the event's own frames (pySTEPS' S-PROG and STEPS).

How fast each scale loses predictability is measured at run time: the lag-1 and lag-2
correlations of a level between the last three frames (moved onto the last one, so in the
Lagrangian frame), the lag-2 value adjusted so the process is stationary
(``pysteps.timeseries.autoregression.adjust_lag2_corrcoef2``), then Yule-Walker. Small scales
decorrelate in minutes and their AR forecast fades to zero; large ones persist.
"""

from __future__ import annotations

import torch

MAX_CORRELATION = 0.9999  # a level whose frames are identical would make Yule-Walker divide by zero


def lag_correlations(levels: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the last frame with each earlier one, per level.

    Args:
        levels: (B, T, L, H, W), oldest frame first.

    Returns:
        (B, L, T - 1): index ``k`` is lag ``k + 1``.
    """
    x = levels.double()
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    last = x[:, -1]  # (B, L, H, W)
    norm_last = (last * last).sum(dim=(-2, -1))
    out = []
    for lag in range(1, levels.shape[1]):
        other = x[:, -1 - lag]
        cov = (last * other).sum(dim=(-2, -1))
        out.append(cov / torch.sqrt((norm_last * (other * other).sum(dim=(-2, -1))).clamp(min=1e-300)))
    return torch.stack(out, dim=-1).float()


def adjust_lag2(gamma_1: torch.Tensor, gamma_2: torch.Tensor) -> torch.Tensor:
    """The lag-2 correlation raised into the region where AR(2) is stationary (pySTEPS' rule)."""
    gamma_2 = torch.maximum(gamma_2, 2 * gamma_1 * gamma_2 - 1)
    bound = (3 * gamma_1**2 - 2 + 2 * (1 - gamma_1**2).clamp(min=0) ** 1.5) / (gamma_1**2).clamp(min=1e-12)
    return torch.maximum(gamma_2, bound)


def ar2_parameters(gamma: torch.Tensor) -> torch.Tensor:
    """Yule-Walker AR(2) from (..., 2) lag-1/lag-2 correlations -> (..., 3): phi_1, phi_2, innovation std.

    The lag-2 correlation is adjusted first (``adjust_lag2``). The innovation std (pySTEPS'
    ``phi_pert``) is what STEPS scales its noise by; S-PROG has no noise and ignores it.
    """
    g1 = gamma[..., 0].clamp(-MAX_CORRELATION, MAX_CORRELATION)
    g2 = adjust_lag2(g1, gamma[..., 1])
    denominator = 1 - g1 * g1
    phi_1 = g1 * (1 - g2) / denominator
    phi_2 = (g2 - g1 * g1) / denominator
    innovation = torch.sqrt((1 - g1 * phi_1 - g2 * phi_2).clamp(min=0))
    return torch.stack([phi_1, phi_2, innovation], dim=-1)


def iterate_ar2(previous: torch.Tensor, current: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """One AR(2) step per level: (B, L, H, W) fields at t-1 and t, (B, L, 3) parameters -> t+1."""
    return phi[..., 0, None, None] * current + phi[..., 1, None, None] * previous
