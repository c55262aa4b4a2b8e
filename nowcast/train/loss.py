"""Training losses (a registry) and the two scores validation needs (CSI, MAE per lead time).

Every loss has the signature ``loss(pred_z, target_mmh, cfg) -> scalar`` where ``pred_z`` is the
model's raw output in z space (``model(x, transformed=True)``, see ``nowcast.model.transform``)
and ``target_mmh`` the observed rain in mm/h with NaN for no data (masked out).

Why z space: HKO-7 (Shi et al. 2017) computes its balanced MSE + MAE on pixel values that are
log-like (dBZ), weighted by the target's rain rate. In mm/h the squared error of a few heavy
pixels swamps everything and the optimum for uncertain cells is a smear; in z space errors are
relative, and the weights (up to 30x above 30 mm/h) make misses of heavy rain expensive, which
keeps the forecasts' intensities from fading into a blur. "mse" and "mae" (also in z space,
unweighted) are there for comparison.

Losses are divided by the number of pixels (masked ones included), not the number of valid ones,
so the mean of equal-sized per-rank losses (what DDP averages) equals the global-batch loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from nowcast.model.transform import rain_to_z

if TYPE_CHECKING:  # config validates loss names against LOSSES below, so no runtime import back
    from nowcast.train.config import LossConfig, TrainConfig

LossFn = Callable[[torch.Tensor, torch.Tensor, "TrainConfig"], torch.Tensor]


def _target(
    pred_z: torch.Tensor, target_mmh: torch.Tensor, cfg: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Prediction and target in z, and each pixel's weight: 0 without data, else its lead's weight
    (``loss.lead_weights``, 1 by default)."""
    mask = torch.isfinite(target_mmh)  # (B, T, 1, H, W)
    rain = torch.where(mask, target_mmh, 0.0)
    target_z = rain_to_z(rain, cfg.model.dry_threshold_mmh, cfg.model.max_rain_mmh)
    weight = mask.float()
    if cfg.loss.lead_weights is not None:
        weight = weight * torch.tensor(cfg.loss.lead_weights, device=weight.device).view(1, -1, 1, 1, 1)
    return pred_z.float(), target_z, weight


def hko_weights(rain_mmh: torch.Tensor, loss: LossConfig) -> torch.Tensor:
    """Per-pixel weight by target rain rate: weights[k] where k = thresholds passed."""
    thresholds = torch.tensor(loss.thresholds_mmh, device=rain_mmh.device, dtype=rain_mmh.dtype)
    weights = torch.tensor(loss.weights, device=rain_mmh.device, dtype=rain_mmh.dtype)
    return weights[torch.bucketize(rain_mmh, thresholds, right=True)]


def balanced_mse_mae(pred_z: torch.Tensor, target_mmh: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    pred, target, weight = _target(pred_z, target_mmh, cfg)
    w = hko_weights(torch.where(weight > 0, target_mmh, 0.0), cfg.loss) * weight
    err = pred - target
    return (w * (err * err + err.abs())).sum() / weight.numel()


def mse(pred_z: torch.Tensor, target_mmh: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    pred, target, weight = _target(pred_z, target_mmh, cfg)
    return ((pred - target) ** 2 * weight).sum() / weight.numel()


def mae(pred_z: torch.Tensor, target_mmh: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    pred, target, weight = _target(pred_z, target_mmh, cfg)
    return ((pred - target).abs() * weight).sum() / weight.numel()


LOSSES: dict[str, LossFn] = {"balanced_mse_mae": balanced_mse_mae, "mse": mse, "mae": mae}


def get_loss(name: str) -> LossFn:
    """The loss called ``name``; the error lists the valid names."""
    try:
        return LOSSES[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; available: {', '.join(LOSSES)}") from None


def score_counts(pred_mmh: torch.Tensor, target_mmh: torch.Tensor, threshold_mmh: float = 1.0) -> torch.Tensor:
    """Sums per lead time over valid target pixels, to add up across batches and ranks.

    Args:
        pred_mmh, target_mmh: (B, T, 1, H, W); NaN in the target = no data.

    Returns:
        (5, T) float64: hits, misses, false alarms, sum |error| (mm/h), valid pixels.
    """
    mask = torch.isfinite(target_mmh)
    obs = (target_mmh >= threshold_mmh) & mask
    fc = (pred_mmh >= threshold_mmh) & mask
    abs_err = torch.where(mask, (pred_mmh - target_mmh).abs(), 0.0)
    per_lead = lambda t: t.double().sum(dim=(0, 2, 3, 4))  # noqa: E731  (B, T, 1, H, W) -> (T,)
    return torch.stack(
        [per_lead(obs & fc), per_lead(obs & ~fc), per_lead(~obs & fc), per_lead(abs_err), per_lead(mask)]
    )


def scores(counts: torch.Tensor) -> dict[str, list[float]]:
    """CSI = hits / (hits + misses + false alarms) and MAE per lead time from ``score_counts`` sums."""
    hits, misses, false_alarms, abs_err, n = counts
    csi = hits / (hits + misses + false_alarms).clamp(min=1)  # no events at all -> 0, not NaN
    return {"csi_1mm": csi.tolist(), "mae_mmh": (abs_err / n.clamp(min=1)).tolist()}
