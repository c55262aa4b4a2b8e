"""The rain transform: mm/h <-> z, the log-like space the network (and the loss) works in.

``z = log10(1 + R / dry_threshold)`` after setting rates below the dry threshold to 0: dry is
exactly 0, 1 mm/h ~ 1.04, 10 mm/h ~ 2.0, 100 mm/h ~ 3.0 (with the default 0.1 mm/h), so heavy
and light rain live on one scale like dBR, but without dBR's -inf for dry pixels.
"""

from __future__ import annotations

import math

import torch


def rain_to_z(rain_mmh: torch.Tensor, dry_threshold_mmh: float, max_rain_mmh: float) -> torch.Tensor:
    """mm/h (finite, no NaN) -> z >= 0; rates below the threshold map to exactly 0."""
    rain = rain_mmh.clamp(0, max_rain_mmh)
    rain = torch.where(rain < dry_threshold_mmh, torch.zeros_like(rain), rain)
    return torch.log10(1 + rain / dry_threshold_mmh)


def z_to_rain(z: torch.Tensor, dry_threshold_mmh: float, max_rain_mmh: float) -> torch.Tensor:
    """z (any real) -> mm/h in [0, max]; results below the dry threshold become exactly 0."""
    z_max = math.log10(1 + max_rain_mmh / dry_threshold_mmh)
    rain = dry_threshold_mmh * torch.expm1(z.clamp(0, z_max) * math.log(10))
    return torch.where(rain < dry_threshold_mmh, torch.zeros_like(rain), rain)
