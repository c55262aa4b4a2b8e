"""Motion and advection inside the model (nowcast/model/motion.py), and the advection model built on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nowcast.model import ModelConfig, build_model, rain_to_z
from nowcast.model.blur import gaussian_blur, gaussian_blurs
from nowcast.model.config import MotionConfig
from nowcast.model.motion import advect, estimate_motion

STEP = (3.0, -2.0)  # (u, v): pixels per time step, right and up


def _translated_rain(steps: int, size: int = 192, margin: int = 48, seed: int = 0) -> torch.Tensor:
    """(steps, size, size) mm/h: one field of rain cells moved by STEP each frame (integer shifts).

    The field is smoothed noise raised to cells of up to ~20 mm/h with dry gaps between them.
    """
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, 1, size + 2 * margin, size + 2 * margin, generator=gen)
    kernel = torch.exp(-0.5 * (torch.arange(-12, 13.0) / 4) ** 2)
    smooth = torch.nn.functional.conv2d(
        noise, (kernel[:, None] * kernel[None]).div(kernel.sum() ** 2)[None, None], padding=12
    )
    smooth = smooth[0, 0] / smooth.std()
    field = (10 * (smooth - 0.3)).clamp(min=0) ** 1.3
    frames = []
    for t in range(steps):
        dx, dy = int(margin - STEP[0] * t), int(margin - STEP[1] * t)
        frames.append(field[dy : dy + size, dx : dx + size])
    return torch.stack(frames)


def _z(rain: torch.Tensor) -> torch.Tensor:
    return rain_to_z(rain, 0.1, 300.0)


def test_motion_recovers_a_known_translation():
    rain = _translated_rain(4)
    assert (rain > 1).float().mean() > 0.05, "the test field needs rain to track"
    flow = estimate_motion(_z(rain)[None], torch.ones(1, *rain.shape, dtype=torch.bool))
    inner = flow[0, :, 32:-32, 32:-32]
    assert inner.shape[0] == 2
    np.testing.assert_allclose(inner.mean(dim=(1, 2)).numpy(), STEP, atol=0.25)
    assert inner.std(dim=(1, 2)).max() < 0.6


@pytest.mark.parametrize("size", [128, 192])
def test_more_solve_rounds_converge(size):
    """Extra warp-and-solve rounds refine the motion; the first solver's twice-size gradients and
    zero-padded warps made them run away (7 pixels per step off after 6 rounds on this field)."""
    rain = _translated_rain(4, size=size)
    wet = rain[-1] > 0.1
    for rounds in (2, 6):
        flow = estimate_motion(
            _z(rain)[None], torch.ones(1, *rain.shape, dtype=torch.bool), MotionConfig(iterations=rounds)
        )[0]
        error = ((flow - torch.tensor(STEP).view(2, 1, 1)) ** 2).sum(0)[wet].mean().sqrt()
        assert error < 0.35, (rounds, float(error))


def test_checkpoints_keep_the_solver_they_were_trained_with():
    saved = ModelConfig().model_dump(mode="json")
    assert ModelConfig.from_saved(saved).motion == MotionConfig()
    del saved["motion"]["solver"], saved["motion"]["min_level_px"]
    legacy = ModelConfig.from_saved(saved).motion
    assert (legacy.solver, legacy.min_level_px) == (1, 4)
    del saved["motion"]
    assert ModelConfig.from_saved(saved).motion.solver == 1


def test_advection_moves_rain_like_the_next_frames():
    rain = _translated_rain(7)
    z = _z(rain)
    flow = estimate_motion(z[None, :4], torch.ones(1, 4, *rain.shape[1:], dtype=torch.bool))
    moved = advect(z[None, 3:4], flow, 3)[0, :, 0]  # (3, H, W)
    inner = (slice(None), slice(40, -40), slice(40, -40))
    error = (moved - z[4:])[inner].abs().mean()
    persistence_error = (z[3:4] - z[4:])[inner].abs().mean()
    assert error < 0.3 * persistence_error, (float(error), float(persistence_error))


def test_no_rain_gives_zero_motion_and_dry_advection():
    z = torch.zeros(1, 4, 64, 64)
    flow = estimate_motion(z, torch.ones_like(z, dtype=torch.bool))
    assert torch.equal(flow, torch.zeros(1, 2, 64, 64))
    assert torch.equal(advect(z[:, -1:], flow, 2), torch.zeros(1, 2, 1, 64, 64))


@pytest.mark.parametrize("bfloat16", [False, True])
def test_untrained_advection_model_is_the_extrapolation(bfloat16):
    """The correction starts near zero: before training the model forecasts the advected last frame."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        num_input_frames=4,
        num_output_frames=3,
        stem_channels=8,
        stem_stride=4,
        hidden_channels=[8, 8],
        kernel_sizes=[3, 3],
        downsample=[2],
    )
    assert cfg.advection  # the default
    model = build_model(cfg).eval()
    rain = _translated_rain(4)
    x = rain[None, :, None].clone()
    x[..., :8, :] = float("nan")  # no data along one edge
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
        z_model = model(x, transformed=True)[0, :, 0].float()
    has_data = torch.isfinite(x[:, :, 0])
    z_in = _z(torch.where(has_data, x[:, :, 0], 0.0))
    expected = advect(z_in[:, -1:], estimate_motion(z_in, has_data), 3)[0, :, 0]
    assert (z_model - expected).abs().max() < 0.02
    assert z_model.max() > 1.0  # rain above 1 mm/h survives: no fading


def test_fft_blurs_equal_the_direct_blur():
    x = torch.rand(3, 2, 37, 50) ** 4  # odd, non-square, smaller than the widest kernel in one direction
    sigmas = (1.0, 2.5, 8.0)
    for sigma, fast in zip(sigmas, gaussian_blurs(x, sigmas)):
        torch.testing.assert_close(fast, gaussian_blur(x, sigma), atol=2e-6, rtol=0)


def test_correction_smooths_small_scales_and_offsets_smoothly():
    """The correction's gains act on the advected field: a unit gain at a scale gives that
    scale's blur of it, and an offset field from the coarse layer arrives without pixel noise."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        num_input_frames=4,
        num_output_frames=2,
        stem_channels=8,
        stem_stride=4,
        hidden_channels=[8, 8],
        kernel_sizes=[3, 3],
        downsample=[2],
    )
    model = build_model(cfg).eval()
    advected = _z(_translated_rain(2, size=64))[None] + 0.3 * torch.randn(1, 2, 64, 64)  # (1, T, H, W), speckled
    coarse = torch.zeros(1, 2, 1 + len(cfg.smoothing_sigmas_px), 16, 16)
    coarse[:, :, 2] = 1.0  # smooth away all detail below the second scale
    smoothed = model._corrected(advected, coarse)[0, :, 0]
    sigma = cfg.smoothing_sigmas_px[1]
    ones = torch.ones(1, 1, 64, 64)
    blurred = gaussian_blur(advected[0, :, None], sigma) / gaussian_blur(ones, sigma)
    torch.testing.assert_close(smoothed, blurred[:, 0], atol=1e-5, rtol=0)
    assert smoothed.diff(dim=-1).abs().mean() < 0.7 * advected.diff(dim=-1).abs().mean()

    offset = torch.zeros_like(coarse)
    offset[:, :, 0] = torch.randn(1, 2, 16, 16)  # a rough offset on 4-pixel cells
    shifted = model._corrected(advected, offset)[0, :, 0] - advected[0]
    # bilinear upsampling: no step between neighbouring pixels exceeds a quarter of a cell-to-cell jump
    assert shifted.diff(dim=-1).abs().max() <= 0.26 * offset[0, :, 0].diff(dim=-1).abs().max() + 1e-6


def test_the_models_motion_settings_reach_the_estimate():
    """``model.motion`` is what the model's extrapolation uses, so a checkpoint keeps its motion."""
    torch.manual_seed(0)
    base = dict(
        num_input_frames=4,
        num_output_frames=2,
        stem_channels=8,
        stem_stride=4,
        hidden_channels=[8, 8],
        kernel_sizes=[3, 3],
        downsample=[2],
    )
    rain = _translated_rain(4)
    x = rain[None, :, None]
    z_in = _z(rain)[None]
    has_data = torch.ones_like(z_in, dtype=torch.bool)
    outputs = []
    for motion in ({}, {"pyramid": [4], "window_sigma": 1.0}):
        torch.manual_seed(0)
        cfg = ModelConfig(**base, motion=motion)
        with torch.inference_mode():
            outputs.append(build_model(cfg).eval()(x, transformed=True)[0, :, 0])
        expected = advect(z_in[:, -1:], estimate_motion(z_in, has_data, cfg.motion), 2)[0, :, 0]
        assert (outputs[-1] - expected).abs().max() < 0.02
    assert (outputs[0] - outputs[1]).abs().max() > 0.1


def test_checkpoints_without_the_advection_key_load_as_the_plain_model():
    saved = ModelConfig(hidden_channels=[8], kernel_sizes=[3], downsample=[], advection=False).model_dump()
    del saved["advection"]
    assert ModelConfig.from_saved(saved).advection is False
    assert ModelConfig.model_validate(saved).advection is True  # new configs get the default
