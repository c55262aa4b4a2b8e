"""The heavy-tail output transform (nowcast/model/tail.py) and its place in the advection model."""

from __future__ import annotations

import pytest
import torch

from nowcast.model import ModelConfig, build_model, rain_to_z
from nowcast.model.blur import gaussian_blur
from nowcast.model.tail import keep_heavy_tail

THRESHOLD_Z = float(rain_to_z(torch.tensor(5.0), 0.1, 300.0))


def _cells(size: int = 64, seed: int = 0) -> torch.Tensor:
    """(1, 1, size, size) z: a few sharp cells, some above 5 mm/h."""
    gen = torch.Generator().manual_seed(seed)
    rain = torch.rand(1, 1, size, size, generator=gen).pow(8) * 40  # mostly light, a few heavy pixels
    return rain_to_z(rain, 0.1, 300.0)


def test_a_blurred_forecast_gets_the_advected_tail_back_and_nothing_else():
    advected = _cells()
    forecast = gaussian_blur(advected, 2.0)  # a hedged forecast: cores softened
    has_data = torch.ones_like(advected, dtype=torch.bool)
    assert (forecast >= THRESHOLD_Z).sum() < (advected >= THRESHOLD_Z).sum(), "the blur must thin the tail"

    kept = keep_heavy_tail(forecast, advected, has_data, THRESHOLD_Z)

    k = int((advected >= THRESHOLD_Z).sum())
    assert int((kept >= THRESHOLD_Z - 1e-6).sum()) == k
    torch.testing.assert_close(kept.flatten().topk(k).values, advected.flatten().topk(k).values)
    changed = kept != forecast
    assert changed.sum() <= k  # only the tail moves ...
    assert (kept >= forecast).all()  # ... and only upwards
    assert forecast[changed].min() >= forecast[~changed].max() - 1e-6  # the forecast's own highest pixels


def test_more_heavy_rain_than_extrapolation_is_left_alone():
    advected = _cells()
    grown = advected + 0.5  # the network forecasts growth everywhere
    has_data = torch.ones_like(advected, dtype=torch.bool)
    assert torch.equal(keep_heavy_tail(grown, advected, has_data, THRESHOLD_Z), grown)


def test_pixels_without_data_are_never_raised():
    advected = _cells()
    forecast = torch.zeros_like(advected)
    has_data = torch.ones_like(advected, dtype=torch.bool)
    has_data[..., :, :32] = False
    kept = keep_heavy_tail(forecast, advected, has_data, THRESHOLD_Z)
    assert torch.equal(kept[..., :, :32], forecast[..., :, :32])
    assert int((kept >= THRESHOLD_Z).sum()) == int((advected[..., :, 32:] >= THRESHOLD_Z).sum())


@pytest.mark.parametrize("heavy_tail_mmh", [5.0, None])
def test_the_model_keeps_the_tail_at_inference_only(heavy_tail_mmh):
    """A model told to smooth everything away keeps the extrapolation's heavy pixels in eval mode."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        num_input_frames=4,
        num_output_frames=2,
        stem_channels=8,
        stem_stride=4,
        hidden_channels=[8, 8],
        kernel_sizes=[3, 3],
        downsample=[2],
        heavy_tail_mmh=heavy_tail_mmh,
    )
    model = build_model(cfg)
    with torch.no_grad():
        model.correction[-1].bias[len(cfg.smoothing_sigmas_px)] = 1.0  # full blur at the widest scale
    rain = torch.zeros(1, 4, 1, 64, 64)
    rain[..., 20:26, 20:26] = 30.0  # a small heavy cell, standing still
    heavy_input = int((rain[0, -1] > 5).sum())

    with torch.no_grad():
        trained_view = model.train()(rain)
        forecast = model.eval()(rain)
    assert int((trained_view[0, 0] > 5).sum()) < heavy_input  # the blur is what training sees
    heavy_out = int((forecast[0, 0] > 5 - 1e-3).sum())
    if heavy_tail_mmh is None:
        assert heavy_out < heavy_input
    else:
        assert heavy_out == heavy_input
        assert forecast[0, 0].max() == pytest.approx(30.0, rel=1e-3)


def test_checkpoints_from_before_the_tail_load_without_it():
    saved = ModelConfig().model_dump()
    del saved["heavy_tail_mmh"]
    assert ModelConfig.from_saved(saved).heavy_tail_mmh is None
    assert ModelConfig().heavy_tail_mmh == 5.0
