"""Measurements on generated rain fields, shared by the synthetic-archive tests."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def phase_correlation_shift(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(rows, cols) that ``after`` is shifted from ``before``, to sub-pixel by a parabola at the peak."""
    a, b = np.nan_to_num(before), np.nan_to_num(after)
    window = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    cross = np.fft.fft2(b * window) * np.conj(np.fft.fft2(a * window))
    surface = np.real(np.fft.ifft2(cross / np.maximum(np.abs(cross), 1e-12)))
    peak = np.unravel_index(np.argmax(surface), surface.shape)
    shift = []
    for axis, n in enumerate(surface.shape):
        idx = list(peak)
        values = []
        for d in (-1, 0, 1):
            idx[axis] = (peak[axis] + d) % n
            values.append(surface[tuple(idx)])
        left, centre, right = values
        offset = 0.5 * (left - right) / (left - 2 * centre + right)
        position = peak[axis] + offset
        shift.append(position - n if position > n / 2 else position)
    return np.array(shift)


def component_areas(frame: np.ndarray, threshold: float) -> np.ndarray:
    """Areas (pixels) of the 8-connected regions at or above ``threshold``."""
    labels, n = ndimage.label(np.nan_to_num(frame) >= threshold, structure=np.ones((3, 3)))
    return np.bincount(labels.ravel(), minlength=n + 1)[1:]


def track_durations(frames: np.ndarray, shifts: np.ndarray, threshold: float) -> np.ndarray:
    """Frames each rain cell is seen for: regions at ``threshold`` linked in time where they overlap.

    Each frame is moved back by the accumulated displacement ``shifts`` (T, 2) (rows, cols per step,
    the first ignored) so that a cell that only moved overlaps itself; a track is then a region of
    the (time, y, x) stack connected in space within a frame and at the same pixel between frames.
    Tracks still alive at the first or last frame are left out (their length is not known).
    """
    offsets = np.rint(np.cumsum(shifts, axis=0) - shifts[0]).astype(int)
    wet = np.stack([np.roll(np.nan_to_num(f) >= threshold, -o, axis=(0, 1)) for f, o in zip(frames, offsets)])
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connected within a frame
    structure[0, 1, 1] = structure[2, 1, 1] = True  # the same pixel one frame apart
    labels, n = ndimage.label(wet, structure=structure)
    spans = ndimage.find_objects(labels)
    return np.array([s[0].stop - s[0].start for s in spans if s[0].start > 0 and s[0].stop < len(frames)])


def elongation(mask: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Length/width ratio of a region (from its second moments), its centroid and its long axis (unit, rows/cols)."""
    points = np.argwhere(mask).astype(float)
    centre = points.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov((points - centre).T))
    return float(np.sqrt(values[1] / max(values[0], 1e-9))), centre, vectors[:, 1]


def moved_correlation(before: np.ndarray, after: np.ndarray, shift: np.ndarray) -> float:
    """Correlation of log(1 + rain) between ``before`` moved by ``shift`` (rows, cols; rounded) and ``after``.

    Only the part of the domain seen in both is compared: how much the rain changed beyond moving.
    """
    dr, dc = np.rint(shift).astype(int)
    n, m = before.shape
    rows, cols = slice(max(0, -dr), min(n, n - dr)), slice(max(0, -dc), min(m, m - dc))
    moved = slice(rows.start + dr, rows.stop + dr), slice(cols.start + dc, cols.stop + dc)
    a, b = np.log1p(np.nan_to_num(before[rows, cols])), np.log1p(np.nan_to_num(after[moved]))
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
