"""S-PROG (Seed 2003) in torch, as ``pysteps.nowcasts.sprog`` computes it: nothing learned.

Why it is the model's starting point: it estimates from each event's own last three frames what
matters for the next hour -- the motion, and how fast every scale loses predictability -- and it
keeps the observed wet area and intensity distribution. That is why it transfers to any radar
network, where a network trained on a few archives does not.

The steps, in pySTEPS' order:

1. rain in mm/h -> dBR (below ``rain_threshold_mmh``: ``zero_db``); no data stays NaN and, where
   any input frame lacks data, the forecast has none either;
2. the two older frames are moved onto the last one along the motion (``extrapolate.py``), so
   their correlations are Lagrangian; no data is then filled with each frame's minimum;
3. each frame is split into a cascade of normalised bandpass levels (``cascade.py``);
4. per level, the lag-1 and lag-2 correlations give AR(2) parameters (``autoregression.py``);
5. per lead, every level steps its AR(2) recursion (no noise) and the levels are recomposed with
   the last frame's statistics;
6. the percentile mask keeps the last frame's wet area and the empirical CDF match gives the
   forecast the last frame's values (``probmatch.py``);
7. lead ``k`` is warped once along the displacement accumulated over ``k`` steps.

``initialise`` (1-4), ``ar_levels`` (5, before recomposition) and ``finish`` (6-7) are separate so
that the learned model (``corrector.py``) can work on the cascade between them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nowcast.model.autoregression import ar2_parameters, iterate_ar2, lag_correlations
from nowcast.model.cascade import bandpass_filters, decompose, recompose
from nowcast.model.config import SprogConfig
from nowcast.model.extrapolate import displacements, warp
from nowcast.model.probmatch import keep_distribution, keep_distribution_differentiable

AR_ORDER = 2


def rain_to_dbr(rain_mmh: torch.Tensor, cfg: SprogConfig) -> torch.Tensor:
    """mm/h -> dBR; below the rain threshold: ``cfg.zero_db``; NaN stays NaN."""
    dbr = 10 * torch.log10(rain_mmh.clamp(min=cfg.rain_threshold_mmh))
    dbr = torch.where(rain_mmh < cfg.rain_threshold_mmh, cfg.zero_db, dbr)
    return torch.where(torch.isnan(rain_mmh), float("nan"), dbr)


def dbr_to_rain(dbr: torch.Tensor, cfg: SprogConfig) -> torch.Tensor:
    """dBR -> mm/h; below the rain threshold: 0; NaN stays NaN."""
    rain = torch.pow(10.0, dbr / 10)
    return torch.where(rain < cfg.rain_threshold_mmh, 0.0, rain)


@dataclass
class SprogState:
    """What the forecast starts from, estimated from the input frames."""

    frames: torch.Tensor  # (B, 3, H, W) the last three frames in dBR, moved onto the last, no data filled
    levels: torch.Tensor  # (B, 2, L, H, W) normalised Lagrangian cascades of the last two frames
    phi: torch.Tensor  # (B, L, 3) AR(2) parameters per level: phi_1, phi_2, innovation std
    means: torch.Tensor  # (B, L) the last frame's level statistics, which recomposition restores
    stds: torch.Tensor  # (B, L)
    last_dbr: torch.Tensor  # (B, H, W) the last frame in dBR, no data filled with its minimum
    n_wet: torch.Tensor  # (B,) pixels of the last frame at or above the rain threshold
    no_data: torch.Tensor  # (B, H, W) bool: some input frame has no data here
    displacement: torch.Tensor  # (B, n_leads, 2, H, W) from ``extrapolate.displacements``


def _fill_no_data(dbr: torch.Tensor) -> torch.Tensor:
    """NaN -> the minimum of its own frame (B, T, H, W); a frame without data becomes 0."""
    finite = torch.isfinite(dbr)
    low = torch.where(finite, dbr, float("inf")).amin(dim=(-2, -1), keepdim=True)
    return torch.where(finite, dbr, torch.where(torch.isfinite(low), low, 0.0))


def initialise(rain_mmh: torch.Tensor, flow: torch.Tensor, n_leads: int, cfg: SprogConfig) -> SprogState:
    """Steps 1-4: the Lagrangian cascades of the last three frames and their AR(2) parameters.

    Args:
        rain_mmh: (B, T, H, W) mm/h, NaN for no data, oldest first; T >= 3 (the last 3 are used).
        flow: (B, 2, H, W) motion in pixels per time step (``motion.estimate_motion``).
        n_leads: lead times to prepare displacements for.
        cfg: the settings.
    """
    if rain_mmh.ndim != 4 or rain_mmh.shape[1] < AR_ORDER + 1:
        raise ValueError(f"S-PROG needs (B, T >= {AR_ORDER + 1}, H, W) input frames, got {tuple(rain_mmh.shape)}")
    b, _, h, w = rain_mmh.shape
    dbr = rain_to_dbr(rain_mmh[:, -(AR_ORDER + 1) :].float(), cfg)  # (B, 3, H, W)
    no_data = ~torch.isfinite(dbr).all(dim=1)
    displacement = displacements(flow.float(), max(n_leads, AR_ORDER))  # (B, n, 2, H, W)
    lowest = torch.where(torch.isfinite(dbr), dbr, float("inf")).amin(dim=(-2, -1))  # (B, 3) pySTEPS' "min"
    moved = [warp(dbr[:, i : i + 1], displacement[:, AR_ORDER - i - 1], lowest[:, i])[:, 0] for i in range(AR_ORDER)]
    dbr = _fill_no_data(torch.stack([*moved, dbr[:, -1]], dim=1))  # (B, 3, H, W) Lagrangian, finite
    filters = bandpass_filters(h, w, cfg.n_cascade_levels, cfg.gauss_scale, dbr.device)
    cascade = decompose(dbr.reshape(-1, h, w), filters)
    levels = cascade.levels.view(b, AR_ORDER + 1, -1, h, w)  # (B, 3, L, H, W)
    phi = ar2_parameters(lag_correlations(levels))  # (B, L, 3)
    last = dbr[:, -1]
    threshold_db = 10 * math.log10(cfg.rain_threshold_mmh)
    return SprogState(
        frames=dbr,
        levels=levels[:, 1:],
        phi=phi,
        means=cascade.means.view(b, AR_ORDER + 1, -1)[:, -1],
        stds=cascade.stds.view(b, AR_ORDER + 1, -1)[:, -1],
        last_dbr=last,
        n_wet=(last >= threshold_db).sum(dim=(-2, -1)),
        no_data=no_data,
        displacement=displacement[:, :n_leads],
    )


def ar_levels(state: SprogState, n_leads: int) -> torch.Tensor:
    """Step 5 before recomposition: the normalised levels of every lead, (B, n_leads, L, H, W)."""
    previous, current = state.levels[:, 0], state.levels[:, 1]
    out = []
    for _ in range(n_leads):
        previous, current = current, iterate_ar2(previous, current, state.phi)
        out.append(current)
    return torch.stack(out, dim=1)


def lagrangian_dbr(state: SprogState, levels: torch.Tensor) -> torch.Tensor:
    """Step 5's recomposition: (B, n, L, H, W) levels -> (B, n, H, W) dBR, with the last frame's statistics."""
    return recompose(levels, state.means[:, None], state.stds[:, None])


def finish(field: torch.Tensor, state: SprogState, cfg: SprogConfig, differentiable: bool = False) -> torch.Tensor:
    """Steps 6-7: wet-area mask, CDF match to the last frame, warp to each lead; dBR (B, n, H, W) -> mm/h.

    ``differentiable`` passes a gradient through the CDF match to ``field`` (for training: see
    ``probmatch.keep_distribution_differentiable``); the values are the same.

    Returns:
        (B, n, H, W) float32 mm/h, NaN where some input frame had no data or the trace left the domain.
    """
    b, n, h, w = field.shape
    sorted_last = state.last_dbr.reshape(b, h * w).sort(dim=-1).values  # (B, H*W)
    match = keep_distribution_differentiable if differentiable else keep_distribution
    rows = [
        match(field[i].reshape(n, h * w).float(), sorted_last[i : i + 1], state.n_wet[i].expand(n)) for i in range(b)
    ]
    matched = torch.stack(rows).view(b, n, h, w)
    matched = torch.where(state.no_data[:, None], float("nan"), matched)
    moved = warp(matched.reshape(b * n, 1, h, w), state.displacement[:, :n].reshape(b * n, 2, h, w))
    return dbr_to_rain(moved.view(b, n, h, w), cfg)


def forecast(
    rain_mmh: torch.Tensor, flow: torch.Tensor, n_leads: int, cfg: SprogConfig = SprogConfig()
) -> torch.Tensor:
    """S-PROG's deterministic forecast.

    Args:
        rain_mmh: (B, T, H, W) mm/h with NaN for no data, oldest first, T >= 3.
        flow: (B, 2, H, W) motion (u, v) in pixels per time step.
        n_leads: number of lead times, one per input time step.
        cfg: the settings (pySTEPS' defaults).

    Returns:
        (B, n_leads, H, W) float32 mm/h, NaN where the forecast has no data.
    """
    state = initialise(rain_mmh, flow, n_leads, cfg)
    return finish(lagrangian_dbr(state, ar_levels(state, n_leads)), state, cfg)
