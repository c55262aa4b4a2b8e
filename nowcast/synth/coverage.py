"""Where and when the synthetic radar sees nothing: range circles, blocked beams, missing scans.

No-data pixels (NaN) are fixed in time, as for a real composite: outside every radar's range,
or behind a beam blockage (a narrow sector from some distance out) unless another radar covers
them. Missing scans come in short outages of one to three scans; the first and last scans are
always present so that an archive spans exactly ``n_scans`` steps.
"""

from __future__ import annotations

import numpy as np

from nowcast.synth.config import SynthConfig

COVERAGE = 0.62  # one central radar reaches 0.62 of the domain's longer side: corners stay dark
RING = 0.28  # several radars sit on a ring this far (fraction of the longer side) from the centre
SECTOR_DEG = (5.0, 15.0)
MAX_OUTAGE = 3


def nodata_mask(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Boolean (height, width), True where the composite has no data.

    Args:
        config: the archive configuration (domain size, radars, blocked sectors).
        rng: the coverage's random stream.

    Returns:
        The mask, identical for every scan.
    """
    ny, nx = config.height, config.width
    n = config.n_radars
    if n == 0:
        return np.zeros((ny, nx), dtype=bool)
    side = max(ny, nx)
    rows = np.arange(ny)[:, None] - (ny - 1) / 2
    cols = np.arange(nx)[None, :] - (nx - 1) / 2
    angle0 = rng.uniform(0, 2 * np.pi)
    jitter = rng.normal(0, 0.03 * side, (n, 2))
    ring = 0.0 if n == 1 else RING * side
    centres = [
        (
            ring * np.cos(angle0 + 2 * np.pi * i / n) + jitter[i, 0],
            ring * np.sin(angle0 + 2 * np.pi * i / n) + jitter[i, 1],
        )
        for i in range(n)
    ]
    if config.radar_range_km is not None:
        reach = config.radar_range_km * 1000.0 / config.pixel_size_m
    else:
        reach = COVERAGE * side * (1.0 if n == 1 else 1.15 / np.sqrt(n))
    seen = np.zeros((ny, nx), dtype=bool)
    blocked: list[list[tuple[float, float, float]]] = [[] for _ in range(n)]
    for s in range(config.blocked_sectors):
        u = rng.random(3)
        blocked[s % n].append(
            (u[0] * 360.0, SECTOR_DEG[0] + u[1] * (SECTOR_DEG[1] - SECTOR_DEG[0]), (0.05 + 0.25 * u[2]) * reach)
        )
    for (crow, ccol), sectors in zip(centres, blocked):
        drow, dcol = rows - crow, cols - ccol
        distance = np.hypot(drow, dcol)
        visible = distance <= reach
        azimuth = np.rad2deg(np.arctan2(dcol, -drow)) % 360.0  # clockwise from north (rows run south)
        for centre_deg, width_deg, start in sectors:
            off = np.abs((azimuth - centre_deg + 180.0) % 360.0 - 180.0)
            visible &= ~((off <= width_deg / 2) & (distance >= start))
        seen |= visible
    return ~seen


def missing_indices(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of the scans that are not written (outages of 1-3 scans).

    Args:
        config: the archive configuration (n_scans, n_missing or missing_fraction).
        rng: the missing scans' random stream.

    Returns:
        int array of scan indices, never the first or the last.
    """
    n = config.n_scans
    wanted = config.n_missing if config.n_missing is not None else int(round(config.missing_fraction * n))
    wanted = min(wanted, max(n - 2, 0))
    chosen: set[int] = set()
    while len(chosen) < wanted:
        start, length = int(rng.integers(1, n - 1)), int(rng.integers(1, MAX_OUTAGE + 1))
        for i in range(start, min(start + length, n - 1)):
            if len(chosen) < wanted:
                chosen.add(i)
    return np.array(sorted(chosen), dtype=np.int64)
