"""Training losses: a registry, and the config section that picks one (``LossConfig``).

Every loss has the signature ``loss(pred_z, target_mmh, cfg, dry_threshold_mmh, max_rain_mmh) -> scalar``
where ``pred_z`` is the model's raw output in z space (``model(x, transformed=True)``, see
``nowcast.model.transform``), ``target_mmh`` the observed rain in mm/h with NaN for no data
(masked out), ``cfg`` the ``LossConfig`` and the last two the model's z transform
(``model.dry_threshold_mmh``, ``model.max_rain_mmh``). ``make_loss`` binds all but the tensors.

Why z space: HKO-7 (Shi et al. 2017) computes its balanced MSE + MAE on pixel values that are
log-like (dBZ), weighted by the target's rain rate. In mm/h the squared error of a few heavy
pixels swamps everything and the optimum for uncertain cells is a smear; in z space errors are
relative, and the weights (up to 30x above 30 mm/h) make misses of heavy rain expensive, which
keeps the forecasts' intensities from fading into a blur. "mse" and "mae" (also in z space,
unweighted) are there for comparison.

"soft_csi" optimises what forecasts are judged by: the critical success index at rain thresholds,
made differentiable by a sigmoid of the distance to each threshold in z (Lagrange et al. 2018's
"soft" contingency table). Behind a distribution match (the S-PROG corrector) the intensities are
fixed and only the wet area's placement can change, which is exactly what CSI scores; a small MAE
term keeps the ranking of intensities inside the wet area sensible.

Losses are divided by the number of pixels (masked ones included), not the number of valid ones,
so the mean of equal-sized per-rank losses (what DDP averages) equals the global-batch loss.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from pydantic import model_validator

from nowcast.config import Section
from nowcast.errors import ConfigError
from nowcast.model.transform import rain_to_z


class LossConfig(Section):
    name: str = "balanced_mse_mae"
    thresholds_mmh: list[float] = [0.5, 2.0, 5.0, 10.0, 30.0]  # HKO-7 (Shi et al. 2017)
    weights: list[float] = [1.0, 1.0, 2.0, 5.0, 10.0, 30.0]  # one more than thresholds
    # one weight per output frame, or None for all 1: the first leads' errors are the smallest, so
    # an unweighted loss barely looks at them
    lead_weights: list[float] | None = None
    # soft_csi: the thresholds scored, how soft the step is (in z; 0.05 ~ 10 % in rain rate), the MAE share
    csi_thresholds_mmh: list[float] = [1.0, 5.0]
    csi_softness_z: float = 0.05
    csi_mae_weight: float = 0.1

    @model_validator(mode="after")
    def _check(self) -> LossConfig:
        if self.name not in LOSSES:
            raise ValueError(f"unknown loss {self.name!r}; available: {', '.join(sorted(LOSSES))}")
        if len(self.weights) != len(self.thresholds_mmh) + 1:
            raise ValueError("weights needs exactly one more entry than thresholds_mmh")
        if sorted(self.thresholds_mmh) != self.thresholds_mmh:
            raise ValueError("thresholds_mmh must increase")
        if self.lead_weights is not None and any(w < 0 for w in self.lead_weights):
            raise ValueError("lead_weights must not be negative")
        return self


LossFn = Callable[[torch.Tensor, torch.Tensor, LossConfig, float, float], torch.Tensor]


def _target(
    pred_z: torch.Tensor, target_mmh: torch.Tensor, cfg: LossConfig, dry_threshold_mmh: float, max_rain_mmh: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Prediction and target in z, and each pixel's weight: 0 without data, else its lead's weight
    (``loss.lead_weights``, 1 by default)."""
    mask = torch.isfinite(target_mmh)  # (B, T, 1, H, W)
    rain = torch.where(mask, target_mmh, 0.0)
    target_z = rain_to_z(rain, dry_threshold_mmh, max_rain_mmh)
    weight = mask.float()
    if cfg.lead_weights is not None:
        weight = weight * torch.tensor(cfg.lead_weights, device=weight.device).view(1, -1, 1, 1, 1)
    return pred_z.float(), target_z, weight


def hko_weights(rain_mmh: torch.Tensor, loss: LossConfig) -> torch.Tensor:
    """Per-pixel weight by target rain rate: weights[k] where k = thresholds passed."""
    thresholds = torch.tensor(loss.thresholds_mmh, device=rain_mmh.device, dtype=rain_mmh.dtype)
    weights = torch.tensor(loss.weights, device=rain_mmh.device, dtype=rain_mmh.dtype)
    return weights[torch.bucketize(rain_mmh, thresholds, right=True)]


def balanced_mse_mae(
    pred_z: torch.Tensor, target_mmh: torch.Tensor, cfg: LossConfig, dry_threshold_mmh: float, max_rain_mmh: float
) -> torch.Tensor:
    pred, target, weight = _target(pred_z, target_mmh, cfg, dry_threshold_mmh, max_rain_mmh)
    w = hko_weights(torch.where(weight > 0, target_mmh, 0.0), cfg) * weight
    err = pred - target
    return (w * (err * err + err.abs())).sum() / weight.numel()


def mse(
    pred_z: torch.Tensor, target_mmh: torch.Tensor, cfg: LossConfig, dry_threshold_mmh: float, max_rain_mmh: float
) -> torch.Tensor:
    pred, target, weight = _target(pred_z, target_mmh, cfg, dry_threshold_mmh, max_rain_mmh)
    return ((pred - target) ** 2 * weight).sum() / weight.numel()


def mae(
    pred_z: torch.Tensor, target_mmh: torch.Tensor, cfg: LossConfig, dry_threshold_mmh: float, max_rain_mmh: float
) -> torch.Tensor:
    pred, target, weight = _target(pred_z, target_mmh, cfg, dry_threshold_mmh, max_rain_mmh)
    return ((pred - target).abs() * weight).sum() / weight.numel()


def soft_csi(
    pred_z: torch.Tensor, target_mmh: torch.Tensor, cfg: LossConfig, dry_threshold_mmh: float, max_rain_mmh: float
) -> torch.Tensor:
    """Mean over thresholds and leads of 1 - soft CSI (each lead by its ``lead_weights``), plus
    ``csi_mae_weight`` x MAE in z.

    Not additive over pixels: under DDP each rank's CSI is its own batch's, and the ranks' mean is
    what is optimised (close to the global batch's for batches of similar rain).
    """
    pred, target, weight = _target(pred_z, target_mmh, cfg, dry_threshold_mmh, max_rain_mmh)
    observed_data = torch.isfinite(target_mmh).float()
    n_leads = pred.shape[1]
    lead_weights = torch.tensor(cfg.lead_weights or [1.0] * n_leads, device=pred.device)
    dims = (0, 2, 3, 4)  # everything but the lead
    terms = []
    for threshold in cfg.csi_thresholds_mmh:
        threshold_z = rain_to_z(torch.tensor(threshold), dry_threshold_mmh, max_rain_mmh).item()
        forecast = torch.sigmoid((pred - threshold_z) / cfg.csi_softness_z)
        observed = (target >= threshold_z).float()
        hits = (observed_data * forecast * observed).sum(dims)
        false_alarms = (observed_data * forecast * (1 - observed)).sum(dims)
        misses = (observed_data * (1 - forecast) * observed).sum(dims)
        # 1 - CSI, with one pixel added below so that a lead with no event and no alarm costs 0
        terms.append((false_alarms + misses) / (hits + false_alarms + misses + 1.0) * lead_weights)
    error = ((pred - target).abs() * weight).sum() / weight.numel()
    return torch.stack(terms).mean() + cfg.csi_mae_weight * error


LOSSES: dict[str, LossFn] = {"balanced_mse_mae": balanced_mse_mae, "mse": mse, "mae": mae, "soft_csi": soft_csi}


def get_loss(name: str) -> LossFn:
    """The loss called ``name``.

    Raises:
        ConfigError: for an unknown name; the message lists the available ones.
    """
    try:
        return LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}; available: {', '.join(sorted(LOSSES))}") from None


def make_loss(
    cfg: LossConfig, dry_threshold_mmh: float, max_rain_mmh: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss ``cfg.name`` with its settings and the model's z transform bound: ``loss(pred_z, target_mmh)``."""
    loss: Callable[..., torch.Tensor] = get_loss(cfg.name)  # by keyword: every loss names its arguments alike
    return functools.partial(loss, cfg=cfg, dry_threshold_mmh=dry_threshold_mmh, max_rain_mmh=max_rain_mmh)
