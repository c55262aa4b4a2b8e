"""Gaussian blurs of (N, C, H, W) tensors, zero outside the field: one per sigma, or several at once.

Two ways to the same result: direct separable convolution, cheapest for the motion estimate's
few small levels, and FFT, which serves the correction's four scales of twelve full-size leads
with one forward transform (on CPU a single-channel convolution costs about the same at any
kernel size, ~0.35 s per scale for 12 x 700 x 700; the FFT does all four in under half of that).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_kernel(sigma: float, like: torch.Tensor) -> torch.Tensor:
    """The normalised 1-D kernel, truncated at 3 sigma: (2 * radius + 1,)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, device=like.device, dtype=like.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W), zero outside the field."""
    k = gaussian_kernel(sigma, x)
    radius, c = k.numel() // 2, x.shape[1]
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius, 0), groups=c)


def gaussian_blurs(x: torch.Tensor, sigmas: tuple[float, ...]) -> list[torch.Tensor]:
    """``[gaussian_blur(x, s) for s in sigmas]`` (to float rounding), through one FFT of ``x``.

    Zero padding by the widest kernel's radius makes the FFT's circular convolution the linear one
    inside the field; each kernel's own transform keeps the truncation of ``gaussian_blur``.
    """
    h, w = x.shape[-2:]
    kernels = [gaussian_kernel(s, x) for s in sigmas]
    pad = max(k.numel() // 2 for k in kernels)
    size = (h + pad, w + pad)
    spectrum = torch.fft.rfft2(x, s=size)
    out = []
    for k in kernels:
        radius = k.numel() // 2
        ky = torch.fft.fft(torch.roll(F.pad(k, (0, size[0] - k.numel())), -radius))  # centre at index 0
        kx = torch.fft.rfft(torch.roll(F.pad(k, (0, size[1] - k.numel())), -radius))
        out.append(torch.fft.irfft2(spectrum * (ky[:, None] * kx[None, :]), s=size)[..., :h, :w])
    return out
