"""The spectral cascade of a field, in torch: pySTEPS' Gaussian bandpass filters and FFT decomposition.

A field is split into ``n_levels`` bandpass-filtered copies whose sum is the field again (the
filters sum to one at every wavenumber), from the largest scales (level 0, which also holds the
mean) to the smallest. Each level is normalised by its own mean and standard deviation, so an
autoregressive model per level works on unit-variance series. The filters are those of
``pysteps.cascade.bandpass_filters.filter_gaussian`` (Pulkkinen et al. 2019): Gaussians in log
wavenumber, centred at geometric steps between 1 and half the domain's longest side, so the
levels are relative to the domain: 6 levels on a 700 km domain reach from ~700 km to ~2 km.
The FFT is periodic over the domain, as in pySTEPS (no padding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def bandpass_filters(
    height: int, width: int, n_levels: int, gauss_scale: float = 0.5, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The filter weights in rfft2 layout: (n_levels, H, W // 2 + 1) float32, summing to 1 per wavenumber.

    Level 0 keeps the mean (wavenumber 0) whole; the others get none of it.
    """
    if n_levels < 3:
        raise ValueError(f"n_levels must be at least 3, got {n_levels}")
    max_length = max(height, width)
    ky = torch.fft.fftfreq(height, d=1.0 / height, dtype=torch.float64)  # integer wavenumbers, FFT order
    kx = torch.arange(width // 2 + 1, dtype=torch.float64)
    radius = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)  # (H, W//2 + 1)
    q = (0.5 * max_length) ** (1.0 / n_levels)
    centres = [0.5 * (q ** (k - 1) + q**k) for k in range(1, n_levels + 1)]
    log_r = torch.where(radius > 0, torch.log(radius.clamp(min=1e-12)) / math.log(q), torch.zeros_like(radius))
    weights = torch.stack(
        [torch.exp(-((log_r - math.log(c) / math.log(q)) ** 2) / (2 * gauss_scale**2)) for c in centres]
    )  # (L, H, W//2 + 1)
    weights = weights / weights.sum(dim=0, keepdim=True)
    weights[:, 0, 0] = 0.0
    weights[0, 0, 0] = 1.0
    return weights.to(device=device, dtype=torch.float32)


@dataclass
class Cascade:
    """Normalised levels and the statistics that undo the normalisation."""

    levels: torch.Tensor  # (N, L, H, W) zero mean, unit std per level
    means: torch.Tensor  # (N, L)
    stds: torch.Tensor  # (N, L)


def decompose(field: torch.Tensor, filters: torch.Tensor) -> Cascade:
    """Split (N, H, W) finite fields into the cascade of ``filters`` (``bandpass_filters``)."""
    h, w = field.shape[-2:]
    spectrum = torch.fft.rfft2(field.float())  # (N, H, W//2 + 1)
    levels = torch.fft.irfft2(spectrum[:, None] * filters[None], s=(h, w))  # (N, L, H, W)
    means = levels.mean(dim=(-2, -1))
    stds = levels.std(dim=(-2, -1), correction=0).clamp(min=1e-12)  # a flat level stays flat, not NaN
    return Cascade((levels - means[..., None, None]) / stds[..., None, None], means, stds)


def recompose(levels: torch.Tensor, means: torch.Tensor, stds: torch.Tensor) -> torch.Tensor:
    """The field back from normalised levels (..., L, H, W) and their (..., L) statistics: (..., H, W)."""
    return (levels * stds[..., None, None] + means[..., None, None]).sum(dim=-3)
