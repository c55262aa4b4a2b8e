"""The sprog model: S-PROG untrained, a correction that trains, and the matching that keeps rain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nowcast.model import ModelConfig, build_model, sprog
from nowcast.model.motion import estimate_motion
from nowcast.model.probmatch import keep_distribution, keep_distribution_differentiable
from nowcast.model.transform import rain_to_z
from nowcast.train.loss import LossConfig, make_loss


def showers(batch: int = 2, frames: int = 7, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Small Gaussian cells drifting east, growing and decaying: (B, T, 1, H, W) mm/h with a no-data strip."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((batch, frames, size, size), np.float32)
    for b in range(batch):
        for _ in range(6):
            cy, cx, peak, sigma = rng.uniform(8, size - 8), rng.uniform(4, size / 2), rng.uniform(2, 30), 3
            growth = rng.uniform(-0.3, 0.3)
            for t in range(frames):
                out[b, t] += (
                    peak * np.exp(growth * t) * np.exp(-((yy - cy) ** 2 + (xx - cx - 2 * t) ** 2) / (2 * sigma**2))
                )
    out[out < 0.1] = 0
    rain = torch.from_numpy(np.round(out, 2))[:, :, None]
    rain[:, :, :, :3] = float("nan")
    return rain


def sprog_config(**corrector) -> ModelConfig:
    return ModelConfig(
        name="sprog", num_input_frames=4, num_output_frames=3, corrector={"hidden_channels": 8, **corrector}
    )


def test_untrained_model_is_sprog():
    cfg = sprog_config()
    model = build_model(cfg).eval()
    assert not model.correcting  # eval with a zero head: the network is skipped
    x = showers()[:, :4]
    with torch.no_grad():
        out = model(x)[:, :, 0]
        computed = model.train()(x)[:, :, 0]  # the network run, its zero head applied
    torch.testing.assert_close(computed, out, equal_nan=True, rtol=0, atol=1e-5)
    rain = x[:, :, 0]
    has_data = torch.isfinite(rain)
    flow = estimate_motion(rain_to_z(torch.where(has_data, rain, 0.0), 0.1, 300.0), has_data, cfg.motion)
    expected = sprog.forecast(rain, flow, 3, cfg.sprog)
    torch.testing.assert_close(out, expected, equal_nan=True, rtol=0, atol=0)
    assert torch.isnan(out).any() and (out[torch.isfinite(out)] >= 0).all()


def test_every_parameter_trains_and_the_correction_changes_the_forecast():
    torch.manual_seed(0)
    model = build_model(sprog_config())
    loss_fn = make_loss(LossConfig(name="balanced_mse_mae"), model.cfg.dry_threshold_mmh, model.cfg.max_rain_mmh)
    sequence = showers(frames=7)
    x, y = sequence[:, :4], sequence[:, 4:]
    before = model(x).detach()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(6):
        loss = loss_fn(model(x, transformed=True), y)
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        optimizer.step()
        losses.append(loss.item())
    after = model(x).detach()
    assert not torch.equal(torch.nan_to_num(before), torch.nan_to_num(after))
    assert losses[-1] < losses[0]


def test_rain_area_and_intensities_survive_any_correction():
    """Whatever the network says, each lead keeps the last frame's wet area and its values."""
    torch.manual_seed(1)
    model = build_model(sprog_config(max_log_gain=3.0, max_offset_db=20.0)).eval()
    with torch.no_grad():
        for p in model.head.parameters():
            p.normal_(std=5.0)  # a wild correction
    x = showers()[:, :4]
    with torch.no_grad():
        out = model(x)[:, :, 0]
    last = x[:, -1, 0]
    for b in range(len(x)):
        observed = np.sort(last[b][torch.isfinite(last[b])].numpy())
        for lead in range(3):
            forecast = out[b, lead][torch.isfinite(out[b, lead])].numpy()
            assert (forecast >= 1).mean() == pytest.approx((observed >= 1).mean(), abs=0.02)
            assert forecast.max() <= observed.max() + 1e-3


def test_the_correction_depends_on_the_time_step():
    torch.manual_seed(2)
    model = build_model(sprog_config()).eval()
    with torch.no_grad():
        for p in model.head.parameters():
            p.normal_(std=0.5)
    x = showers()[:, :4]
    with torch.no_grad():
        five, ten = model(x, time_step_s=300.0), model(x, time_step_s=600.0)
    assert not torch.equal(torch.nan_to_num(five), torch.nan_to_num(ten))


def test_differentiable_match_has_the_values_and_a_gradient_by_rank():
    rng = np.random.default_rng(3)
    field = torch.from_numpy(rng.normal(size=(2, 400))).float()
    target = torch.from_numpy(np.sort(np.where(rng.random(400) < 0.3, rng.gamma(2, 5, 400), -15.0))).float()[None]
    n_wet = (target > -15).sum(dim=-1).expand(2)
    out = keep_distribution_differentiable(field.requires_grad_(), target, n_wet)
    torch.testing.assert_close(out.detach(), keep_distribution(field.detach(), target, n_wet))
    out.sum().backward()  # every matched value wanted higher: only ranks count, so nothing to gain
    assert field.grad.abs().max() == 0
    field.grad = None
    keep_distribution_differentiable(field, target, n_wet)[:, :10].sum().backward()  # some pixels wanted higher
    wet_among_them = (keep_distribution(field.detach(), target, n_wet)[:, :10] > -15).any()
    assert not wet_among_them or field.grad[:, :10].sum() > 0


def test_the_training_gradient_predicts_how_the_loss_changes():
    """Along the gradient, a small step lowers the loss by about what the gradient says."""
    torch.manual_seed(0)
    model = build_model(sprog_config())
    loss_fn = make_loss(LossConfig(name="balanced_mse_mae"), model.cfg.dry_threshold_mmh, model.cfg.max_rain_mmh)
    sequence = showers(frames=7)
    x, y = sequence[:, :4], sequence[:, 4:]
    with torch.no_grad():
        for p in model.head.parameters():
            p.normal_(std=0.05)

    def loss() -> torch.Tensor:
        return loss_fn(model(x, transformed=True), y)

    value = loss()
    model.zero_grad()
    value.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    norm = torch.sqrt(sum((g * g).sum() for g in grads))
    eps = 0.01
    with torch.no_grad():
        for p, g in zip(model.parameters(), grads):
            p -= eps * g / norm
        change = loss().item() - value.item()
    predicted = -eps * norm.item()
    assert change < 0 and 0.5 < change / predicted < 1.5, (change, predicted)
