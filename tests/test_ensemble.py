"""The torch STEPS ensemble: each perturbation against pySTEPS, and what every member must keep."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nowcast.model import ModelConfig, build_model, ensemble, sprog
from nowcast.model import noise as perturb
from nowcast.model.cascade import bandpass_filters
from nowcast.model.config import SprogConfig
from nowcast.verify.baselines import import_pysteps


def dbr_frames(seed: int = 0, shape: tuple[int, int] = (48, 60), n: int = 3) -> np.ndarray:
    """Rain-like dBR frames (n, H, W): smoothed noise drifting east, -15 where dry."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.normal(size=(shape[0], shape[1] + 2 * n)), 3)
    frames = np.stack([base[:, 2 * (n - t) : 2 * (n - t) + shape[1]] for t in range(n)])
    frames = (frames - frames.mean()) / frames.std() * 8 + 2
    frames[frames < -5] = -15.0
    return frames


def rain_frames(seed: int = 0, shape: tuple[int, int] = (48, 60)) -> torch.Tensor:
    return torch.from_numpy(np.where(dbr_frames(seed, shape) > -15, 10 ** (dbr_frames(seed, shape) / 10), 0.0)).float()


@pytest.mark.parametrize("shape", [(40, 52), (33, 47)])
def test_tukey_window_and_noise_filter_are_pysteps(shape):
    tapering = import_pysteps("pysteps.utils.tapering")
    fftgenerators = import_pysteps("pysteps.noise.fftgenerators")
    np.testing.assert_allclose(
        perturb.tukey_window(*shape).numpy(), tapering.compute_window_function(*shape, "tukey"), atol=1e-6
    )
    frames = dbr_frames(1, shape)
    expected = fftgenerators.initialize_nonparam_2d_fft_filter(frames)["field"]
    ours = perturb.nonparametric_filter(torch.from_numpy(frames)).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4 * expected.max())


@pytest.mark.parametrize("shape", [(40, 52), (33, 47)])
def test_noise_levels_are_pysteps_for_the_same_white_noise(shape):
    """pySTEPS filters white noise, normalises it, splits it into the cascade and normalises each
    level; the spectral levels here, transformed back, are the same fields."""
    fftgenerators = import_pysteps("pysteps.noise.fftgenerators")
    bandpass = import_pysteps("pysteps.cascade.bandpass_filters")
    decomposition = import_pysteps("pysteps.cascade.decomposition")
    frames = dbr_frames(2, shape)
    noise_filter = fftgenerators.initialize_nonparam_2d_fft_filter(frames)
    expected = fftgenerators.generate_noise_2d_fft_filter(noise_filter, randstate=np.random.RandomState(5))
    expected = decomposition.decomposition_fft(
        expected, bandpass.filter_gaussian(shape, 6), normalize=True, compute_stats=True
    )["cascade_levels"]
    white = torch.from_numpy(np.random.RandomState(5).randn(*shape))[None]
    filters = perturb.level_filters(perturb.nonparametric_filter(torch.from_numpy(frames)), bandpass_filters(*shape, 6))
    ours = torch.fft.irfft2(perturb.noise_levels(white, filters), s=shape)[0].numpy()
    np.testing.assert_allclose(ours, expected, atol=2e-3)


@pytest.mark.parametrize("width", [50, 51])
def test_spectral_std_is_the_std_in_space(width):
    field = torch.randn(3, 30, width, dtype=torch.float64)
    field = field - field.mean(dim=(-2, -1), keepdim=True)
    std = perturb.spectral_std(torch.fft.rfft2(field), width)
    torch.testing.assert_close(std, field.std(dim=(-2, -1), correction=0))


def test_motion_perturbation_is_pysteps_bps():
    motion = import_pysteps("pysteps.noise.motion")
    rng = np.random.default_rng(3)
    flow = rng.normal(size=(2, 20, 30))
    flow[:, :3, :3] = 0.0  # no motion: no direction to perturb along
    draws = torch.tensor([[0.7, -1.3], [-0.2, 0.4]])
    ours = perturb.perturbed_flow(torch.from_numpy(flow).float(), draws, 15.0, 300, 1000.0)
    for member in range(2):
        bps = motion.initialize_bps(flow, 1.0, 5, randstate=np.random.RandomState(0))
        bps["eps_par"], bps["eps_perp"] = draws[member].tolist()
        expected = flow + motion.generate_bps(bps, 15.0)
        np.testing.assert_allclose(ours[member].numpy(), expected, atol=1e-5)


def test_bps_draws_are_laplace_with_unit_variance():
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([perturb.draw_bps(generator) for _ in range(20000)])
    assert draws.mean().abs() < 0.03
    assert draws.var().item() == pytest.approx(1.0, abs=0.05)
    assert (draws.abs() > 3).float().mean().item() == pytest.approx(np.exp(-3 * np.sqrt(2)), abs=0.005)


def test_trace_step_is_pysteps_semilagrangian_with_previous_displacement():
    semilagrangian = import_pysteps("pysteps.extrapolation.semilagrangian")
    h, w = 30, 40
    yy, xx = np.mgrid[:h, :w]
    flows = [np.stack([1.5 + 0.5 * np.sin(yy / 7 + k), -0.8 + 0.4 * np.cos(xx / 9 - k)]) for k in range(3)]
    displacement = None
    ours = torch.zeros(1, 2, h, w)
    grid = ensemble.pixel_grid(h, w)
    for flow in flows:  # a different motion every step, as a perturbed member has
        _, displacement = semilagrangian.extrapolate(
            None, flow, [1.0], displacement_prev=displacement, return_displacement=True
        )
        ours = ensemble.trace_step(torch.from_numpy(flow)[None].float(), ours, grid)
    np.testing.assert_allclose(ours[0].numpy(), displacement, atol=1e-4)


def setup_for(rain: torch.Tensor, n_leads: int = 4, flow: torch.Tensor | None = None) -> ensemble.EnsembleSetup:
    if flow is None:
        flow = torch.zeros(2, *rain.shape[-2:])
        flow[0] = 1.0
    return ensemble.prepare(rain, flow, n_leads)


def test_without_perturbations_every_member_is_sprog():
    rain = rain_frames(4)
    rain[:, :, :2] = float("nan")
    setup = setup_for(rain)
    state = setup.state
    torch.testing.assert_close(
        setup.control, sprog.lagrangian_dbr(state, sprog.ar_levels(state, 4))[0], atol=1e-4, rtol=0
    )
    quiet = ensemble.EnsembleConfig(noise=False, motion_perturbation=False)
    out = next(ensemble.ensemble(setup, 2, 0, quiet, 300, 1000.0))
    expected = sprog.forecast(rain[None], setup.flow[None], 4)[0]
    for member in out:
        # the control is recomposed in the spectral domain, S-PROG in space: two pixels whose
        # values agree to float rounding may swap ranks, and so their matched values
        differs = ~torch.isclose(member, expected, atol=1e-4, rtol=0, equal_nan=True)
        assert differs.float().mean() < 1e-3
        for k in range(4):
            torch.testing.assert_close(
                member[k].flatten().sort().values,
                expected[k].flatten().sort().values,
                equal_nan=True,
                atol=1e-4,
                rtol=0,
            )


def test_members_are_reproducible_by_seed_whatever_the_batch():
    setup = setup_for(rain_frames(5))
    big = ensemble.EnsembleConfig(batch_members=5)
    small = ensemble.EnsembleConfig(batch_members=2)
    first = torch.cat(list(ensemble.ensemble(setup, 5, 11, big, 300, 1000.0)))
    second = torch.cat(list(ensemble.ensemble(setup, 5, 11, small, 300, 1000.0)))
    assert first.shape == (5, 4, 48, 60)
    torch.testing.assert_close(first, second, equal_nan=True, rtol=0, atol=0)
    other = torch.cat(list(ensemble.ensemble(setup, 5, 12, big, 300, 1000.0)))
    assert not torch.equal(torch.nan_to_num(first), torch.nan_to_num(other))
    assert all(not torch.equal(first[0], first[j]) for j in range(1, 5))  # members differ


def test_every_member_keeps_the_wet_area_and_values():
    """Without motion, nothing moves: every member has the last frame's values, only placed elsewhere."""
    rain = rain_frames(6)
    setup = setup_for(rain, flow=torch.zeros(2, 48, 60))
    no_motion = ensemble.EnsembleConfig(motion_perturbation=False)
    out = torch.cat(list(ensemble.ensemble(setup, 3, 0, no_motion, 300, 1000.0)))
    last = np.sort(sprog.dbr_to_rain(sprog.rain_to_dbr(rain[-1], SprogConfig()), SprogConfig()).numpy().ravel())
    for member in out.reshape(-1, 48 * 60).numpy():
        np.testing.assert_allclose(np.sort(member), last, rtol=1e-4)
    spread = out.std(dim=0).mean(dim=(-2, -1))  # grows with lead as the noise takes over
    assert (spread.diff() > 0).all()


def test_noise_has_the_innovation_variance_per_level():
    """An AR(2) level driven by its innovation std keeps unit variance: the noise part of a member
    at lead k has the variance the deterministic part lost."""
    setup = setup_for(rain_frames(7, (64, 64)), n_leads=6)
    phi = setup.state.phi[0]  # (L, 3)
    generator = torch.Generator().manual_seed(0)
    previous = torch.zeros(6, 64, 33, dtype=torch.complex64)
    current = torch.zeros_like(previous)
    variance = 0.0
    for _ in range(200):  # many draws of one lead-1 noise level
        eps = perturb.noise_levels(torch.randn(1, 64, 64, generator=generator), setup.filters)[0]
        level = phi[:, 0, None, None] * current + phi[:, 1, None, None] * previous + phi[:, 2, None, None] * eps
        variance += torch.fft.irfft2(level, s=(64, 64)).var(dim=(-2, -1), correction=0) / 200
    torch.testing.assert_close(variance, phi[:, 2] ** 2, rtol=1e-4, atol=1e-6)


def test_the_model_control_is_what_members_spread_around():
    cfg = ModelConfig(name="sprog", num_input_frames=4, num_output_frames=3, corrector={"hidden_channels": 8})
    model = build_model(cfg).eval()
    rain = torch.cat([rain_frames(8)[:1], rain_frames(8)])  # 4 frames
    with torch.no_grad():
        state, flow, field = model.lagrangian(rain[None, :, None])
    setup = ensemble.prepare(rain, flow[0], 3, cfg.sprog, state=state, control=field[0])
    torch.testing.assert_close(setup.control, ensemble.sprog_control(state, 3), atol=1e-4, rtol=0)  # untrained
    with torch.no_grad():
        torch.nn.init.normal_(model.head.bias, std=0.5)
        state, flow, field = model.lagrangian(rain[None, :, None])
    quiet = ensemble.EnsembleConfig(noise=False, motion_perturbation=False)
    setup = ensemble.prepare(rain, flow[0], 3, cfg.sprog, state=state, control=field[0])
    member = next(ensemble.ensemble(setup, 1, 0, quiet, 300, 1000.0))[0]
    with torch.no_grad():
        expected = model(rain[None, :, None])[0, :, 0]
    torch.testing.assert_close(member, expected, equal_nan=True, atol=1e-4, rtol=0)


def test_no_rain_gives_dry_members():
    rain = torch.zeros(3, 32, 32)
    rain[:, :4] = float("nan")
    out = next(ensemble.ensemble(setup_for(rain, 2), 2, 0, ensemble.EnsembleConfig(), 300, 1000.0))
    assert torch.isnan(out[:, :, :4]).all()
    assert (out[:, :, 6:-3, 3:-3] == 0).all()  # no rain; no data only where traced from outside
