"""STEPS' perturbations in torch: noise with the field's own spatial spectrum, and motion perturbations.

Why these two: an S-PROG forecast loses the small scales it cannot predict, so it is too smooth
to be a possible future. STEPS (Bowler et al. 2006, Seed et al. 2013) puts back, per cascade
level, noise with the power spectrum of the observed rain, at the variance the AR(2) model of
that level cannot predict (its innovation std): a member keeps the observed structure at every
scale, and how much of each scale is random grows with lead time as fast as that scale
decorrelated in the last frames. The motion field is uncertain too: each member moves along the
estimated motion plus a perturbation that grows with lead time.

Noise, as ``pysteps.noise.fftgenerators`` (``initialize_nonparam_2d_fft_filter``,
``generate_noise_2d_fft_filter``) and the STEPS loop compute it:

- the filter is the amplitude spectrum of the input frames (dBR, Lagrangian), after removing
  the jump between "no rain" and the lowest rain (``rm_rdisc``) and tapering with a Tukey window
  (alpha 0.2) so the periodic FFT sees no edge: the mean of the frames' rfft2, made absolute;
- a member's noise is white Gaussian noise filtered by it, split into the cascade, each level
  normalised to zero mean and unit std. Here that happens in the spectral domain (pySTEPS'
  ``domain="spectral"`` option, Pulkkinen et al. 2019): the levels are never transformed back
  one by one, their std comes from Parseval's theorem.

Motion perturbations: pySTEPS' ``bps`` (``pysteps.noise.motion``): one Laplace draw per member
along and across the local motion, scaled by ``p[0] * t**p[1] + p[2]`` km/h at lead ``t`` minutes.
"""

from __future__ import annotations

import math

import torch


def tukey_window(height: int, width: int, alpha: float = 0.2) -> torch.Tensor:
    """pySTEPS' radial Tukey window (``utils.tapering.compute_window_function``): 1 inside, 0 at the rim."""
    y = torch.arange(height, dtype=torch.float64)[:, None] / height - 0.5
    x = torch.arange(width, dtype=torch.float64)[None, :] / width - 0.5
    r = torch.sqrt(x**2 + y**2)  # (H, W)
    taper = 0.5 * (1 + torch.cos(math.pi * (r / (alpha * 0.5) - 1 / alpha + 1)))
    window = torch.where(r > 0.5 * (1 - alpha), taper, torch.ones_like(r))
    return torch.where(r >= 0.5, 0.0, window).float()


def nonparametric_filter(frames_dbr: torch.Tensor) -> torch.Tensor:
    """The noise filter: the input frames' mean amplitude spectrum, (H, W // 2 + 1) float32.

    Args:
        frames_dbr: (T, H, W) finite dBR (no data filled), the frames the AR model was fitted on.
    """
    field = frames_dbr.double()
    low = field.min()
    wet = field > low
    if wet.any():  # the jump from "no rain" to the lowest rain is not structure: close it
        field = torch.where(wet, field - (field[wet].min() - low), field)
    field = field - field.amin(dim=(-2, -1), keepdim=True)
    window = tukey_window(*field.shape[-2:]).double()
    return torch.fft.rfft2(field * window).mean(dim=0).abs().float()


def parseval_weights(width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(W // 2 + 1,) how often each rfft2 column stands in the full spectrum: 1 for the first
    (and the Nyquist column when W is even), 2 for the others."""
    weights = torch.full((width // 2 + 1,), 2.0, device=device)
    weights[0] = 1.0
    if width % 2 == 0:
        weights[-1] = 1.0
    return weights


def spectral_std(spectrum: torch.Tensor, width: int) -> torch.Tensor:
    """Population std of the real fields whose rfft2 is ``spectrum`` (..., H, W // 2 + 1), with no mean."""
    height = spectrum.shape[-2]
    power = (spectrum.real**2 + spectrum.imag**2) * parseval_weights(width, spectrum.device)
    return power.sum(dim=(-2, -1)).sqrt() / (height * width)


def level_filters(noise_filter: torch.Tensor, bandpass: torch.Tensor) -> torch.Tensor:
    """The noise filter times each bandpass filter, mean removed: (L, H, W // 2 + 1) float32."""
    filters = bandpass * noise_filter[None]
    filters[:, 0, 0] = 0.0
    return filters


def noise_levels(white: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """Normalised cascade levels of filtered white noise, in the spectral domain.

    Args:
        white: (B, H, W) white Gaussian noise.
        filters: (L, H, W // 2 + 1) from ``level_filters``.

    Returns:
        (B, L, H, W // 2 + 1) complex64: the rfft2 of each level, zero mean and unit std in space.
    """
    height, width = white.shape[-2:]
    spectrum = torch.fft.rfft2(white.float())  # (B, H, W//2 + 1)
    # the filters are real, so a level's power is |white|^2 times the filter's square: every
    # level's std (``spectral_std``) from one product, without forming the levels' power
    power = (spectrum.real.square() + spectrum.imag.square()) * parseval_weights(width, white.device)
    std = (power.flatten(1) @ filters.square().flatten(1).T).sqrt() / (height * width)  # (B, L)
    scale = filters[None] / std.clamp(min=1e-12)[..., None, None]  # (B, L, H, W//2 + 1) real
    return spectrum[:, None] * scale


# Bowler et al. (2006), pySTEPS' defaults; ``lucaskanade/fmi+mch`` in pySTEPS' documentation is
# (2.32, 0.337, -2.65) along and (1.91, 0.334, -2.07) across the motion
BPS_PARALLEL = (10.88, 0.23, -7.68)
BPS_PERPENDICULAR = (5.76, 0.31, -2.72)


def bps_gain(lead_minutes: float, p: tuple[float, float, float] | list[float]) -> float:
    """The std of the motion perturbation at ``lead_minutes``, km/h: ``p[0] * t**p[1] + p[2]``."""
    return p[0] * lead_minutes ** p[1] + p[2]


def draw_bps(generator: torch.Generator) -> torch.Tensor:
    """One member's (along, across) draws: Laplace with unit variance (pySTEPS' ``initialize_bps``)."""
    u = torch.rand(2, generator=generator, dtype=torch.float64) - 0.5  # Laplace by inverse CDF
    return (-torch.sign(u) * torch.log1p(-2 * u.abs()) / math.sqrt(2)).float()


def flow_directions(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors (2, H, W) along and across the motion ``flow`` (2, H, W); zero where it does not move."""
    speed = torch.linalg.vector_norm(flow, dim=0, keepdim=True)
    along = torch.where(speed > 1e-12, flow / speed.clamp(min=1e-12), 0.0)
    return along, torch.stack([-along[1], along[0]])


def perturbed_flow(
    flow: torch.Tensor,
    draws: torch.Tensor,
    lead_minutes: float,
    time_step_s: float,
    pixel_size_m: float,
    p_parallel: tuple[float, float, float] | list[float] = BPS_PARALLEL,
    p_perpendicular: tuple[float, float, float] | list[float] = BPS_PERPENDICULAR,
    scale: float = 1.0,
    directions: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Each member's motion at one lead: the estimated motion plus its BPS perturbation.

    Args:
        flow: (2, H, W) motion in pixels per time step.
        draws: (B, 2) from ``draw_bps``, one row per member.
        lead_minutes: the lead the step ends at.
        time_step_s, pixel_size_m: the grid, to turn km/h into pixels per step.
        p_parallel, p_perpendicular: the growth of the perturbation along and across the motion.
        scale: a factor on both (1: pySTEPS' perturbation).
        directions: ``flow_directions(flow)`` when the caller has them (they do not change with lead).

    Returns:
        (B, 2, H, W) pixels per time step.
    """
    along, across = directions if directions is not None else flow_directions(flow)
    km_per_h_to_px = time_step_s / 3600 * 1000 / pixel_size_m
    g_along = scale * bps_gain(lead_minutes, p_parallel) * km_per_h_to_px
    g_across = scale * bps_gain(lead_minutes, p_perpendicular) * km_per_h_to_px
    return (
        flow[None]
        + g_along * draws[:, 0, None, None, None] * along[None]
        + g_across * draws[:, 1, None, None, None] * across[None]
    )
