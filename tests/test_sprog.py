"""The torch S-PROG against pySTEPS: each step on generated fields, the whole forecast on real radar."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from nowcast.ingest.config import ReaderOptions
from nowcast.ingest.readers import read_scan
from nowcast.model import sprog
from nowcast.model.autoregression import ar2_parameters, lag_correlations
from nowcast.model.cascade import bandpass_filters, decompose, recompose
from nowcast.model.config import SprogConfig
from nowcast.model.extrapolate import displacements, warp
from nowcast.model.probmatch import keep_distribution
from nowcast.verify.baselines import import_pysteps
from tests.readers_helpers import BOM_CSCN_DIR, KNMI_DIR, RMI_DIR, real_files


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], wet: float = 0.3) -> np.ndarray:
    """A rain-like dBR field: smoothed noise, the lowest (1 - wet) set to -15."""
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.normal(size=shape), 4)
    field = (field - field.mean()) / field.std() * 8 + 5
    field[field < np.quantile(field, 1 - wet)] = -15.0
    return field


@pytest.mark.parametrize("shape", [(64, 48), (45, 70), (33, 33)])
def test_bandpass_filters_are_pysteps(shape):
    bandpass = import_pysteps("pysteps.cascade.bandpass_filters")
    expected = bandpass.filter_gaussian(shape, 6)["weights_2d"]
    ours = bandpass_filters(*shape, 6).double().numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    np.testing.assert_allclose(ours.sum(axis=0), 1.0, atol=1e-6)


def test_decomposition_is_pysteps_and_recomposes():
    rng = np.random.default_rng(0)
    field = smooth_field(rng, (60, 50))
    bandpass = import_pysteps("pysteps.cascade.bandpass_filters")
    decomposition = import_pysteps("pysteps.cascade.decomposition")
    expected = decomposition.decomposition_fft(
        field, bandpass.filter_gaussian(field.shape, 6), normalize=True, compute_stats=True
    )
    cascade = decompose(torch.from_numpy(field)[None].float(), bandpass_filters(60, 50, 6))
    np.testing.assert_allclose(cascade.levels[0].numpy(), expected["cascade_levels"], atol=2e-4)
    np.testing.assert_allclose(cascade.means[0].numpy(), expected["means"], atol=1e-4)
    np.testing.assert_allclose(cascade.stds[0].numpy(), expected["stds"], rtol=1e-5)
    np.testing.assert_allclose(recompose(cascade.levels, cascade.means, cascade.stds)[0].numpy(), field, atol=1e-3)


def test_ar2_parameters_are_pysteps():
    autoregression = import_pysteps("pysteps.timeseries.autoregression")
    rng = np.random.default_rng(1)
    gamma_1 = rng.uniform(0.05, 0.99, 200)
    gamma_2 = gamma_1 ** rng.uniform(1.0, 3.0, 200) * rng.uniform(0.5, 1.0, 200)
    ours = ar2_parameters(torch.from_numpy(np.stack([gamma_1, gamma_2], -1))).double().numpy()
    for g1, g2, row in zip(gamma_1, gamma_2, ours):
        adjusted = autoregression.adjust_lag2_corrcoef2(g1, g2)
        np.testing.assert_allclose(row, autoregression.estimate_ar_params_yw([g1, adjusted]), rtol=1e-4, atol=1e-5)


def test_lag_correlations_are_pysteps():
    correlation = import_pysteps("pysteps.timeseries.correlation")
    rng = np.random.default_rng(2)
    base = smooth_field(rng, (40, 40))
    frames = np.stack([base + rng.normal(scale=s, size=base.shape) for s in (6.0, 3.0, 0.0)])
    ours = lag_correlations(torch.from_numpy(frames)[None, :, None].float())[0, 0].numpy()
    np.testing.assert_allclose(ours, correlation.temporal_autocorrelation(frames), atol=1e-5)


def test_keep_distribution_is_percentile_mask_then_cdf_match():
    utils = import_pysteps("pysteps.nowcasts.utils")
    probmatching = import_pysteps("pysteps.postprocessing.probmatching")
    rng = np.random.default_rng(3)
    observed = smooth_field(rng, (50, 40), wet=0.25)
    forecast = smooth_field(rng, (50, 40), wet=0.6) + rng.normal(scale=0.01, size=(50, 40))  # no ties
    war = (observed >= -10).mean()
    expected = forecast.copy()
    expected[~utils.compute_percentile_mask(expected, war)] = -15.0
    expected = probmatching.nonparam_match_empirical_cdf(expected, observed)
    n_wet = torch.tensor([int((observed >= -10).sum())])
    sorted_target = torch.from_numpy(np.sort(observed.ravel()))[None]
    ours = keep_distribution(torch.from_numpy(forecast.ravel())[None], sorted_target, n_wet)[0].numpy()
    np.testing.assert_allclose(ours.reshape(50, 40), expected, atol=1e-12)


def test_displacements_and_warp_are_pysteps_semilagrangian():
    semilagrangian = import_pysteps("pysteps.extrapolation.semilagrangian")
    rng = np.random.default_rng(4)
    h, w = 40, 56
    yy, xx = np.mgrid[:h, :w]
    flow = np.stack([1.5 + 0.5 * np.sin(yy / 7), -0.8 + 0.4 * np.cos(xx / 9)])
    field = smooth_field(rng, (h, w))
    field[5:9, 30:35] = np.nan
    expected, displacement = semilagrangian.extrapolate(
        field, flow, 4, outval=np.nan, allow_nonfinite_values=True, return_displacement=True
    )
    ours_d = displacements(torch.from_numpy(flow)[None].float(), 4)[0]  # (4, 2, H, W)
    np.testing.assert_allclose(ours_d[-1].numpy(), displacement, atol=1e-4)
    moved = warp(torch.from_numpy(field)[None, None].float().expand(4, 1, h, w), ours_d)[:, 0].numpy()
    assert (np.isfinite(moved) == np.isfinite(expected)).mean() > 0.995
    both = np.isfinite(moved) & np.isfinite(expected)
    np.testing.assert_allclose(moved[both], expected[both], atol=1e-3)


def test_no_rain_in_gives_no_rain_out_and_keeps_no_data():
    rain = torch.zeros(1, 3, 32, 32)
    rain[:, :, :4] = float("nan")
    out = sprog.forecast(rain, torch.zeros(1, 2, 32, 32), 3)
    assert torch.isnan(out[:, :, :4]).all()
    assert (out[:, :, 4:] == 0).all()


def test_fewer_than_three_frames_are_refused():
    with pytest.raises(ValueError, match="T >= 3"):
        sprog.forecast(torch.zeros(1, 2, 16, 16), torch.zeros(1, 2, 16, 16), 2)


def _real_window(folder, first: int) -> np.ndarray:
    paths = real_files(folder, "*")[first : first + 3]
    return np.stack([read_scan(p, ReaderOptions()).rain_rate for p in paths]).astype(np.float64)


@pytest.mark.slow
@pytest.mark.parametrize("folder, first", [(KNMI_DIR, 40), (RMI_DIR, 12), (BOM_CSCN_DIR, 20)])
def test_forecast_agrees_with_pysteps_on_real_radar(folder, first):
    """Same input, same (pySTEPS Lucas-Kanade) motion: the two S-PROG forecasts agree pixel for pixel."""
    frames = _real_window(folder, first)
    transformation = import_pysteps("pysteps.utils.transformation")
    frames_db, metadata = transformation.dB_transform(frames, threshold=0.1, zerovalue=-15.0)
    velocity = import_pysteps("pysteps.motion").get_method("LK")(frames_db)
    with contextlib.redirect_stdout(io.StringIO()):
        expected_db = import_pysteps("pysteps.nowcasts").get_method("sprog")(
            frames_db, velocity, 12, n_cascade_levels=6, precip_thr=-10.0
        )
    expected, _ = transformation.dB_transform(expected_db, metadata, threshold=-10.0, inverse=True)
    ours = sprog.forecast(
        torch.from_numpy(frames).float()[None], torch.from_numpy(velocity).float()[None], 12, SprogConfig()
    )[0].numpy()
    assert (np.isfinite(ours) == np.isfinite(expected)).mean() > 0.9999
    both = np.isfinite(ours) & np.isfinite(expected)
    for lead in range(12):
        a, b = expected[lead][both[lead]], ours[lead][both[lead]]
        wet_a, wet_b = a >= 1, b >= 1
        agreement = (wet_a & wet_b).sum() / (wet_a | wet_b).sum()
        assert agreement >= 0.995, f"lead {lead + 1}: CSI@1 agreement {agreement:.4f}"
        assert abs(b.mean() - a.mean()) <= 0.005 * a.mean(), f"lead {lead + 1}: means {b.mean()} vs {a.mean()}"
        assert np.abs(a - b).mean() <= 0.005 * a.mean(), f"lead {lead + 1}: mean |difference| {np.abs(a - b).mean()}"
