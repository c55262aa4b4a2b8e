"""Motion from the input frames and semi-Lagrangian advection, in torch, without learning.

Why it is in the model: a ConvLSTM that has to learn displacement from scratch needs far more
data and compute than most users have, and what it learns fades into a blur after a few leads.
Optical-flow extrapolation moves rain without blurring it; the network then only has to learn
what extrapolation gets wrong (growth, decay, which scales stay predictable). Doing the flow in
torch keeps the model one module on tensors: batched in training, on any device, no numpy trip.

Motion: dense Lucas-Kanade (the 2x2 structure-tensor solve in Gaussian windows) on a coarse
pyramid of the log-rain frames (no level coarser than ``min_level_px`` across: on a 128 km crop
an 8-pixel level only adds noise), refined by warping, averaged over the consecutive frame pairs,
then spread from where it is well determined (textured rain) to where it is not (flat, dry)
by confidence-weighted smoothing, with the domain's weighted mean motion as the last resort.
Advection: each lead samples the last frame once at the point reached by tracing the motion
field back ``k`` steps (pysteps' backward semi-Lagrangian scheme), so leads do not smear.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nowcast.model.blur import gaussian_blur
from nowcast.model.config import MotionConfig


def _base_grid(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """(1, 2, H, W) pixel coordinates (x, y)."""
    ys = torch.arange(h, device=like.device, dtype=like.dtype)
    xs = torch.arange(w, device=like.device, dtype=like.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy])[None]


def sample(field: torch.Tensor, coords: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """Bilinear sample of (N, C, H, W) at pixel coordinates (N, 2, H', W') (x, y).

    Outside the field: 0 (``padding="zeros"``) or the nearest edge value (``"border"``).
    """
    h, w = field.shape[-2:]
    scale = coords.new_tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)]).view(1, 2, 1, 1)
    grid = (coords * scale - 1).permute(0, 2, 3, 1)  # (N, H', W', 2) in [-1, 1]
    return F.grid_sample(field, grid, mode="bilinear", padding_mode=padding, align_corners=True)


def _gradients(field: torch.Tensor, solver: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x and y gradients of (N, 1, h, w): central differences (solver 2), or solver 1's, which halve
    the difference over 4 pixels instead of 2 and so come out twice their size."""
    span = 2 if solver == 1 else 1

    def along(ahead_pad: tuple[int, ...], behind_pad: tuple[int, ...], dim: int) -> torch.Tensor:
        ahead = F.pad(field, ahead_pad, mode="replicate").narrow(dim, span, field.shape[dim])
        behind = F.pad(field, behind_pad, mode="replicate").narrow(dim, 0, field.shape[dim])
        return 0.5 * (ahead - behind)

    return along((0, span, 0, 0), (span, 0, 0, 0), -1), along((0, 0, 0, span), (0, 0, span, 0), -2)


def _lucas_kanade(first: torch.Tensor, second: torch.Tensor, flow: torch.Tensor, cfg: MotionConfig) -> torch.Tensor:
    """Refine ``flow`` (N, 2, h, w) so that first(x) ~ second(x + flow); returns the new flow."""
    grid = _base_grid(*first.shape[-2:], first)
    padding = "zeros" if cfg.solver == 1 else "border"  # the edge value: no false edge where the warp leaves
    for _ in range(cfg.iterations):
        warped = sample(second, grid + flow, padding)
        gx, gy = _gradients(0.5 * (first + warped), cfg.solver)
        gt = warped - first
        sxx, sxy, syy, sxt, syt = gaussian_blur(
            torch.cat([gx * gx, gx * gy, gy * gy, gx * gt, gy * gt], 1), cfg.window_sigma
        ).unbind(1)
        sxx, syy = sxx + cfg.ridge, syy + cfg.ridge
        det = sxx * syy - sxy * sxy
        du = (-syy * sxt + sxy * syt) / det
        dv = (sxy * sxt - sxx * syt) / det
        flow = flow + torch.stack([du, dv], 1).clamp(-2, 2)  # at most 2 level pixels per round
    return flow


def _confidence(field: torch.Tensor, window_sigma: float) -> torch.Tensor:
    """Smaller eigenvalue of the structure tensor (N, 1, h, w): high only where motion is determined."""
    gx = F.pad(field, (0, 1, 0, 0), mode="replicate").diff(dim=-1)
    gy = F.pad(field, (0, 0, 0, 1), mode="replicate").diff(dim=-2)
    sxx, sxy, syy = gaussian_blur(torch.cat([gx * gx, gx * gy, gy * gy], 1), window_sigma).unbind(1)
    half_trace, half_diff = 0.5 * (sxx + syy), 0.5 * (sxx - syy)
    return (half_trace - torch.sqrt(half_diff * half_diff + sxy * sxy)).clamp(min=0)[:, None]


@torch.no_grad()
def estimate_motion(z: torch.Tensor, has_data: torch.Tensor, cfg: MotionConfig = MotionConfig()) -> torch.Tensor:
    """Motion in full-resolution pixels per time step.

    Args:
        z: (B, T, H, W) log rain (``transform.rain_to_z``), 0 where dry or no data; T >= 2.
        has_data: (B, T, H, W) bool.
        cfg: the motion's settings (the model passes its own ``model.motion``).

    Returns:
        (B, 2, H, W) float32 (u, v): rain at x moves to x + (u, v) in one step.
    """
    b, t, h, w = z.shape
    if t < 2:
        return z.new_zeros(b, 2, h, w, dtype=torch.float32)
    z = torch.where(has_data, z, 0.0).float()
    first, second = z[:, :-1].reshape(-1, 1, h, w), z[:, 1:].reshape(-1, 1, h, w)  # all consecutive pairs
    flow, f = None, 1
    for factor in cfg.pyramid:
        f = max(1, min(factor, h // cfg.min_level_px, w // cfg.min_level_px))
        a, c = F.avg_pool2d(first, f, ceil_mode=True), F.avg_pool2d(second, f, ceil_mode=True)
        if flow is None:
            flow = a.new_zeros(a.shape[0], 2, *a.shape[-2:])
        else:  # carry the coarser flow to this level: resize, rescale to this level's pixels
            scale = flow.new_tensor([a.shape[-1] / flow.shape[-1], a.shape[-2] / flow.shape[-2]]).view(1, 2, 1, 1)
            flow = F.interpolate(flow, size=a.shape[-2:], mode="bilinear", align_corners=False) * scale
        flow = _lucas_kanade(a, c, flow, cfg)
    level = f  # the finest level's pooling factor; ``a`` is the first frames pooled by it
    weight = _confidence(a, cfg.window_sigma) * (a > 0)  # only where it rains
    weight = weight.view(b, t - 1, 1, *flow.shape[-2:])
    flow = flow.view(b, t - 1, 2, *flow.shape[-2:])
    pair_flow = (weight * flow).sum(1) / weight.sum(1).clamp(min=1e-12)  # (B, 2, h, w) confidence-weighted pair mean
    weight = weight.sum(1)  # (B, 1, h, w)
    total = weight.sum(dim=(2, 3), keepdim=True)
    mean_flow = (weight * pair_flow).sum(dim=(2, 3), keepdim=True) / total.clamp(min=1e-12)  # domain mean
    sigma = cfg.spread_sigma_px / level
    floor = 1e-3 * total / weight[0, 0].numel()  # below ~0.1 % of the mean confidence: use the domain mean
    spread = (gaussian_blur(weight * pair_flow, sigma) + floor * mean_flow) / (gaussian_blur(weight, sigma) + floor)
    spread = torch.where(total > 0, spread, torch.zeros_like(spread))
    return F.interpolate(spread, size=(h, w), mode="bilinear", align_corners=False) * level


def advect(field: torch.Tensor, flow: torch.Tensor, steps: int) -> torch.Tensor:
    """Move ``field`` (B, C, H, W) along ``flow`` (B, 2, H, W) for 1..steps steps -> (B, steps, C, H, W).

    Backward semi-Lagrangian: the value at x after k steps is the field at the point that
    reaches x in k steps, found by stepping back one flow vector at a time (the flow is read
    where the trace is). Each lead samples the original field once; points traced from outside
    the domain get 0.
    """
    grid = _base_grid(*field.shape[-2:], flow)
    position = grid.expand(field.shape[0], -1, -1, -1)
    out = []
    for _ in range(steps):
        position = position - sample(flow, position, "border")
        out.append(sample(field, position))
    return torch.stack(out, 1)
