"""Ensembles around the S-PROG (or the model's) forecast: STEPS in torch, in the spectral domain.

A member is what STEPS (``pysteps.nowcasts.steps``) makes, computed differently:

1. the S-PROG state of the start (``sprog.initialise``: Lagrangian cascades of the last three
   frames, AR(2) per level, the last frame's wet area and values);
2. per lead, every level steps its AR(2) recursion *with* noise: the level's normalised noise
   (``noise.py``, the field's own spectrum) times the AR innovation std (pySTEPS' ``phi[-1]``)
   times ``noise_scale``. The recursion is linear, so a member's level is the noise-free
   recursion (the *control*, the same for every member) plus the recursion of the noise alone,
   started from zero. The control is computed once; only the noise part is per member, and it
   stays in the spectral domain: one inverse FFT per member and lead, not one per level;
3. the member keeps the last frame's wet area and values (``probmatch.keep_distribution``:
   S-PROG's percentile mask and CDF match);
4. it moves along its own motion: the estimated motion plus a BPS perturbation
   (``perturb.perturbed_flow``), traced with pySTEPS' semi-Lagrangian midpoint rule, one step
   per lead, and the field is warped once per lead along the accumulated displacement.

The control is S-PROG's forecast, or the model's (``SprogCorrector.lagrangian``: S-PROG with the
learned per-level gains and dBR offset), so the members spread around the model's forecast.
Members are computed ``batch_members`` at a time (memory grows with the batch, not with the
ensemble) and each has its own random generator seeded from ``seed`` and its index: the same
seed gives the same members whatever the batch size or device.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from pydantic import Field

from nowcast.config import Section
from nowcast.model import noise as perturb
from nowcast.model.cascade import bandpass_filters
from nowcast.model.config import SprogConfig
from nowcast.model.extrapolate import warp
from nowcast.model.motion import sample
from nowcast.model.sprog import SprogState, dbr_to_rain, initialise


class EnsembleConfig(Section):
    """How members are perturbed (``ensemble.py``, ``noise.py``)."""

    noise: bool = True  # cascade noise with the field's own spectrum, at the AR innovation std
    noise_scale: float = Field(1.0, ge=0)  # a factor on that std (1: STEPS)
    motion_perturbation: bool = True  # BPS perturbations of the motion field
    p_parallel: list[float] = Field(list(perturb.BPS_PARALLEL), min_length=3, max_length=3)  # km/h growth, along
    p_perpendicular: list[float] = Field(list(perturb.BPS_PERPENDICULAR), min_length=3, max_length=3)  # across
    motion_scale: float = Field(1.0, ge=0)  # a factor on both
    batch_members: int = Field(4, ge=1)  # members computed at once: memory ~ 70 MB per member at 700x700


@dataclass
class EnsembleSetup:
    """What every member of one start shares."""

    state: SprogState  # batch of one
    flow: torch.Tensor  # (2, H, W) the estimated motion, pixels per step
    control: torch.Tensor  # (n_leads, H, W) the control forecast in the Lagrangian frame, dBR
    filters: torch.Tensor  # (L, H, W // 2 + 1) noise filter of each level (``perturb.level_filters``)
    sorted_last: torch.Tensor  # (1, H * W) the last frame's dBR, ascending
    n_leads: int


def spectral_levels(levels: torch.Tensor) -> torch.Tensor:
    """rfft2 of normalised spatial levels (..., L, H, W)."""
    return torch.fft.rfft2(levels)


def sprog_control(state: SprogState, n_leads: int) -> torch.Tensor:
    """S-PROG's Lagrangian forecast (n_leads, H, W) dBR, the AR(2) recursion run in the spectral domain."""
    h, w = state.last_dbr.shape[-2:]
    previous, current = spectral_levels(state.levels[0]).unbind(0)  # (L, H, W//2 + 1) each
    phi, stds = state.phi[0], state.stds[0]
    mean = state.means[0].sum() * h * w  # the means of the levels sit at wavenumber 0
    out = []
    for _ in range(n_leads):
        previous, current = current, phi[:, 0, None, None] * current + phi[:, 1, None, None] * previous
        spectrum = (current * stds[:, None, None]).sum(dim=0)
        spectrum[0, 0] = spectrum[0, 0] + mean
        out.append(torch.fft.irfft2(spectrum, s=(h, w)))
    return torch.stack(out)


def prepare(
    rain_mmh: torch.Tensor,
    flow: torch.Tensor,
    n_leads: int,
    cfg: SprogConfig = SprogConfig(),
    state: SprogState | None = None,
    control: torch.Tensor | None = None,
) -> EnsembleSetup:
    """The shared part of one start's ensemble.

    Args:
        rain_mmh: (T, H, W) mm/h with NaN for no data, oldest first, T >= 3.
        flow: (2, H, W) motion in pixels per time step.
        n_leads: lead times.
        cfg: S-PROG's settings.
        state: the S-PROG state when the caller has it already (batch of one); else computed.
        control: (n_leads, H, W) the model's Lagrangian forecast in dBR; None: S-PROG's.
    """
    if state is None:
        state = initialise(rain_mmh[None].float(), flow[None].float(), n_leads, cfg)
    h, w = state.last_dbr.shape[-2:]
    if control is None:
        control = sprog_control(state, n_leads)
    bandpass = bandpass_filters(h, w, cfg.n_cascade_levels, cfg.gauss_scale, state.frames.device)
    filters = perturb.level_filters(perturb.nonparametric_filter(state.frames[0]), bandpass)
    sorted_last = state.last_dbr.reshape(1, h * w).sort(dim=-1).values
    return EnsembleSetup(state, flow.float(), control.float(), filters, sorted_last, n_leads)


def member_seeds(seed: int, n_members: int) -> list[int]:
    """One seed per member, drawn from ``seed``: member ``j`` is the same in any batch."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2**62, (n_members,), generator=generator).tolist()


def keep_distribution_wet(field: torch.Tensor, sorted_target: torch.Tensor, n_wet: int) -> torch.Tensor:
    """``probmatch.keep_distribution`` for one ``n_wet``, sorting only the wet pixels.

    The ``n_wet``-th highest value is found by selection (linear time), and only the pixels at or
    above it are sorted: several times faster than sorting whole rows, same values.

    Args:
        field: (B, P) forecast values.
        sorted_target: (1, P) the observation, ascending.
        n_wet: pixels the observation has at or above the rain threshold.

    Returns:
        (B, P) values taken from the target.
    """
    b, p = field.shape
    out = sorted_target[:, :1].expand(b, p).clone()
    if n_wet <= 0:
        return out
    threshold = field.kthvalue(p - min(n_wet, p) + 1, dim=-1, keepdim=True).values  # (B, 1)
    for i in range(b):
        wet = (field[i] >= threshold[i]).nonzero().squeeze(1)
        order = field[i, wet].argsort()
        out[i, wet[order]] = sorted_target[0, p - wet.numel() :]
    return out


def trace_step(velocity: torch.Tensor, displacement: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """One more step back along ``velocity`` (B, 2, H, W) from the accumulated ``displacement``
    (B, 2, H, W): pySTEPS' semi-Lagrangian midpoint rule with ``displacement_prev`` (the velocity
    is read half a step back along the trace, at the edge value outside the domain)."""
    increment = sample(velocity, grid + displacement, "border")
    increment = sample(velocity, grid + displacement - increment / 2, "border")
    return displacement - increment


def pixel_grid(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(1, 2, H, W) pixel coordinates (x, y)."""
    ys = torch.arange(height, device=device, dtype=torch.float32)
    xs = torch.arange(width, device=device, dtype=torch.float32)
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"))[None]


def members(
    setup: EnsembleSetup,
    seeds: list[int],
    ens: EnsembleConfig,
    time_step_s: float,
    pixel_size_m: float,
    cfg: SprogConfig = SprogConfig(),
) -> torch.Tensor:
    """The members with these seeds, (B, n_leads, H, W) float32 mm/h, NaN where there is no data."""
    state, device = setup.state, setup.flow.device
    b, n = len(seeds), setup.n_leads
    h, w = setup.control.shape[-2:]
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    draws = torch.stack([perturb.draw_bps(g) for g in generators]).to(device)  # (B, 2)
    phi, stds = state.phi[0], state.stds[0]  # (L, 3), (L,)
    innovation = (ens.noise_scale * phi[:, 2])[:, None, None]  # (L, 1, 1)
    previous = current = None  # the noise part of each member's levels, spectral
    grid = pixel_grid(h, w, device)
    displacement = torch.zeros(b, 2, h, w, device=device)
    step_minutes = time_step_s / 60
    directions = perturb.flow_directions(setup.flow)
    out = torch.empty(b, n, h, w, device=device)
    for k in range(n):
        field = setup.control[k].expand(b, h, w)
        if ens.noise:
            white = torch.stack([torch.randn(h, w, generator=g) for g in generators]).to(device)
            eps = perturb.noise_levels(white, setup.filters) * innovation  # (B, L, H, W//2 + 1)
            if current is None:
                previous, current = torch.zeros_like(eps), eps
            else:
                previous, current = current, phi[:, 0, None, None] * current + phi[:, 1, None, None] * previous + eps
            field = field + torch.fft.irfft2((current * stds[:, None, None]).sum(dim=1), s=(h, w))
        matched = keep_distribution_wet(field.reshape(b, h * w), setup.sorted_last, int(state.n_wet[0]))
        matched = torch.where(state.no_data, float("nan"), matched.view(b, h, w))
        if ens.motion_perturbation and ens.motion_scale > 0:
            velocity = perturb.perturbed_flow(
                setup.flow,
                draws,
                (k + 1) * step_minutes,
                time_step_s,
                pixel_size_m,
                ens.p_parallel,
                ens.p_perpendicular,
                ens.motion_scale,
                directions,
            )  # (B, 2, H, W)
        else:
            velocity = setup.flow[None].expand(b, -1, -1, -1)
        displacement = trace_step(velocity, displacement, grid)
        out[:, k] = dbr_to_rain(warp(matched[:, None], displacement)[:, 0], cfg)
    return out


def ensemble(
    setup: EnsembleSetup,
    n_members: int,
    seed: int,
    ens: EnsembleConfig,
    time_step_s: float,
    pixel_size_m: float,
    cfg: SprogConfig = SprogConfig(),
) -> Iterator[torch.Tensor]:
    """The members of one start, ``ens.batch_members`` at a time: (b, n_leads, H, W) mm/h each.

    Args:
        setup: from ``prepare``.
        n_members: ensemble size.
        seed: the same seed gives the same members.
        ens: the perturbations.
        time_step_s, pixel_size_m: the grid (the motion perturbation is in km/h).
        cfg: S-PROG's settings (the rain threshold on the way out).
    """
    if n_members < 1:
        raise ValueError(f"n_members must be at least 1, got {n_members}")
    seeds = member_seeds(seed, n_members)
    for first in range(0, n_members, ens.batch_members):
        yield members(setup, seeds[first : first + ens.batch_members], ens, time_step_s, pixel_size_m, cfg)
