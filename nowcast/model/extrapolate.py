"""Semi-Lagrangian extrapolation as pySTEPS does it, in torch: displacements once, one warp per lead.

``displacements`` traces every pixel back along the motion field with pySTEPS' midpoint rule
(``pysteps.extrapolation.semilagrangian``, ``n_iter=1``): the velocity of a step is read half a
step back along the trace, at the edge value outside the domain. Lead ``k`` samples its field
once, at the point reached after ``k`` steps, so nothing is interpolated twice and leads do not
smear. ``warp`` samples like ``scipy.ndimage.map_coordinates(order=1, mode="constant")``: a
point outside the pixel centres takes ``outside``, and a no-data (NaN) neighbour makes the
sample no data.
"""

from __future__ import annotations

import torch

from nowcast.model.motion import sample


def displacements(flow: torch.Tensor, steps: int) -> torch.Tensor:
    """Backward displacement of every pixel after 1..steps steps.

    Args:
        flow: (B, 2, H, W) motion (u, v) in pixels per step: rain at x moves to x + (u, v).
        steps: number of steps.

    Returns:
        (B, steps, 2, H, W): the field at lead ``k`` is the current field at x + out[:, k - 1].
    """
    b, _, h, w = flow.shape
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"))[None].expand(b, -1, -1, -1)  # (B, 2, H, W)
    displacement = torch.zeros_like(flow)
    increment = flow
    out = []
    for _ in range(steps):
        increment = sample(flow, grid + displacement - increment / 2, "border")  # the midpoint's velocity
        displacement = displacement - increment
        increment = sample(flow, grid + displacement, "border")
        out.append(displacement)
    return torch.stack(out, dim=1)


def warp(field: torch.Tensor, displacement: torch.Tensor, outside: float | torch.Tensor = float("nan")) -> torch.Tensor:
    """Sample (N, C, H, W) at x + ``displacement`` (N, 2, H, W), bilinear.

    Args:
        field: values, NaN for no data.
        displacement: from ``displacements``.
        outside: the value where the point lies outside the pixel centres: a number, or (N,)
            one per field.

    Returns:
        (N, C, H, W); NaN where a neighbour of the point is no data.
    """
    n, _, h, w = field.shape
    ys = torch.arange(h, device=field.device, dtype=displacement.dtype)
    xs = torch.arange(w, device=field.device, dtype=displacement.dtype)
    coords = torch.stack(torch.meshgrid(xs, ys, indexing="xy"))[None] + displacement  # (N, 2, H, W)
    missing = torch.isnan(field)
    values = sample(torch.where(missing, 0.0, field), coords)
    if missing.any():
        values = torch.where(sample(missing.to(field.dtype), coords) > 0, float("nan"), values)
    inside = (coords[:, :1] >= 0) & (coords[:, :1] <= w - 1) & (coords[:, 1:] >= 0) & (coords[:, 1:] <= h - 1)
    outside = torch.as_tensor(outside, dtype=field.dtype, device=field.device)
    if outside.ndim == 1:
        outside = outside.view(-1, 1, 1, 1)
    return torch.where(inside, values, outside)
