"""Run the model on a whole domain: pad to its size divisor, tile large domains, mask no data.

Padding is NaN, which the model sees as no data (its mask channel is 0 there), so padding
adds no invented rain; the padded rows and columns are cropped off again.

Large domains are cut into square tiles that overlap by ``overlap`` pixels; tile starts are
multiples of the model's size divisor, so every tile sees the same pixel phase as the whole
domain would. Overlapping outputs are blended: a tile's outer half-overlap (where its receptive
field is cut) counts ~0, the inner half cross-fades linearly, then the sum is normalised. Where
the receptive field is narrower than half the overlap, tiled equals untiled to float precision.

No-data rule: the forecast is NaN wherever the *last input frame* has no data (outside the
radar range at the init time). Rain moving in from outside is unknown, but the model still
gives a value wherever the radar sees now; where it saw nothing, there is nothing to verify.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from nowcast.model import Model

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 1024 * 1024  # above this (after padding) the domain is tiled automatically
DEFAULT_OVERLAP = 32


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def tile_starts(length: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)``, overlapping by >= ``overlap``.

    ``length`` and ``tile`` are multiples of ``multiple``; so are the starts.
    """
    if tile >= length:
        return [0]
    stride = max(multiple, (tile - overlap) // multiple * multiple)
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _ramp(size: int, overlap: int, at_start: bool = False, at_end: bool = False) -> np.ndarray:
    """Blend weights along one axis: ~0 over the outer half of the overlap, then rising linearly to 1.

    A tile's outermost pixels see a cut receptive field, so they get (almost) no say where a
    neighbour covers them; the inner half of the overlap cross-fades. A side on the domain's
    edge (``at_start``/``at_end``) has no neighbour and keeps weight 1.
    """
    ramp = np.ones(size, np.float32)
    n = min(overlap, size // 2)
    if n > 0:
        half = n / 2
        edge = np.clip((np.arange(n, dtype=np.float32) + 0.5 - half) / half, 1e-4, 1.0)
        if not at_start:
            ramp[:n] = edge
        if not at_end:
            ramp[size - n :] = edge[::-1]
    return ramp


def _run(model: Model, rain: np.ndarray, bfloat16: bool = False, **grid: float) -> np.ndarray:
    """One model call on (T_in, H, W) with H, W divisible by the model's multiple -> (T_out, H, W)."""
    device = next(model.parameters()).device
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
        x = torch.from_numpy(np.ascontiguousarray(rain)).to(device)[None, :, None]  # (1, T_in, 1, H, W)
        return model(x, **grid)[0, :, 0].float().cpu().numpy()  # (T_out, H, W)


def run_model(
    model: Model,
    frames: np.ndarray,
    time_step_s: float = 300.0,
    pixel_size_m: float = 1000.0,
    tile_size: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    bfloat16: bool = False,
) -> np.ndarray:
    """Forecast every lead the model makes, on a domain of any size.

    Args:
        model: the network, in eval mode.
        frames: (num_input_frames, H, W) mm/h with NaN for no data, oldest first.
        time_step_s: the frames' spacing: one lead per step (models that condition on it).
        pixel_size_m: the grid spacing (likewise).
        tile_size: side of square tiles in pixels (rounded up to the model's multiple);
            None = no tiling unless the padded domain has more than ``max_pixels`` pixels.
        overlap: pixels shared by neighbouring tiles (rounded up to the model's multiple).
        max_pixels: pixel budget of one model call when ``tile_size`` is None.
        bfloat16: run the convolutions in bfloat16 (autocast): ~3x faster on CPUs with
            AVX512-BF16/AMX, at ~3 significant digits; float32 otherwise.

    Returns:
        (num_output_frames, H, W) float32 mm/h, NaN where the last input frame has no data.
    """
    frames = np.asarray(frames, np.float32)
    t_in, height, width = frames.shape
    m = model.multiple
    ph, pw = _round_up(height, m), _round_up(width, m)
    padded = np.full((t_in, ph, pw), np.nan, np.float32)
    padded[:, :height, :width] = frames
    grid = {"time_step_s": float(time_step_s), "pixel_size_m": float(pixel_size_m)}
    if model.whole_domain:  # its cascade and distribution match are the whole domain's: never tiled
        tile_size, max_pixels = None, ph * pw
    if tile_size is None and ph * pw > max_pixels:
        tile_size = max(m, int(np.sqrt(max_pixels)) // m * m)
        log.info("domain %dx%d is above the %d-pixel budget: tiles of %d", height, width, max_pixels, tile_size)
    if tile_size is None or (tile_size >= ph and tile_size >= pw):
        out = _run(model, padded, bfloat16, **grid)
    else:
        out = _run_tiled(model, padded, _round_up(tile_size, m), _round_up(overlap, m), bfloat16, **grid)
    out = out[:, :height, :width].astype(np.float32, copy=False)
    out[:, ~np.isfinite(frames[-1])] = np.nan
    return out


def _run_tiled(model: Model, padded: np.ndarray, tile: int, overlap: int, bfloat16: bool, **grid: float) -> np.ndarray:
    _, ph, pw = padded.shape
    th, tw = min(tile, ph), min(tile, pw)
    rows = tile_starts(ph, th, overlap, model.multiple)
    cols = tile_starts(pw, tw, overlap, model.multiple)
    total = np.zeros((model.cfg.num_output_frames, ph, pw), np.float32)
    norm = np.zeros((ph, pw), np.float32)
    log.info("forecasting %d tiles of %dx%d (overlap %d)", len(rows) * len(cols), th, tw, overlap)
    for r in rows:
        for c in cols:
            out = _run(model, padded[:, r : r + th, c : c + tw], bfloat16, **grid)  # (T_out, th, tw)
            weight = (
                _ramp(th, overlap, r == 0, r + th == ph)[:, None] * _ramp(tw, overlap, c == 0, c + tw == pw)[None, :]
            )  # (th, tw)
            total[:, r : r + th, c : c + tw] += out * weight
            norm[r : r + th, c : c + tw] += weight
    return total / norm


def model_forecaster(
    model: Model, time_step_s: float = 300.0, pixel_size_m: float = 1000.0, **options
) -> Callable[[np.ndarray, int], np.ndarray]:
    """The model as ``f(frames (T_in, H, W), n_leads) -> (n_leads, H, W)``, what ``nowcast.verify`` scores.

    Args:
        model: the network, in eval mode.
        time_step_s, pixel_size_m: the grid the frames come on (``run_model``).
        **options: passed to ``run_model`` (tile_size, overlap, max_pixels).
    """

    def forecast(frames: np.ndarray, n_leads: int) -> np.ndarray:
        if n_leads > model.cfg.num_output_frames:
            raise ValueError(f"the model forecasts {model.cfg.num_output_frames} leads, {n_leads} asked")
        return run_model(model, frames, time_step_s, pixel_size_m, **options)[:n_leads]

    return forecast
