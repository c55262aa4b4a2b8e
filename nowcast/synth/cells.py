"""Convective cells: small, intense, short-lived rain cores embedded in the wider rain.

The latent field gives realistic stratiform rain but rarely the 10-50+ mm/h cores of summer
convection, so a few Gaussian cells are added on top. They are born at a rate per area of
rain, at a random raining pixel; each grows and decays over its life (30-100 min) and drifts
with the local wind. ``CellParams`` holds the cells' sizes, lives and shapes: its defaults are
the ``mixed`` regime's; the ``convective_showers`` regime has smaller, shorter-lived cells born
anywhere (see ``regimes.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

TEXTURE = 0.7  # cores follow the rain they sit in: x exp(TEXTURE * (latent - latent at the centre))
REACH = 3.5  # cells are drawn out to this many sigma (major axis)
BIRTH_TRIES = 50


@dataclass(frozen=True)
class CellParams:
    """Sizes, lives and shapes of the cells of one regime (ranges are drawn uniformly)."""

    min_peak_mmh: float = 10.0  # peaks are log-uniform from here to the config's max_cell_rain_mmh
    sigma_km: tuple[float, float] = (1.5, 4.0)  # Gaussian sigma of a cell core
    min_sigma_px: float = 0.7  # narrower cores would fall between pixel centres
    life_minutes: tuple[float, float] = (30.0, 100.0)
    aspect: tuple[float, float] = (1.0, 2.5)  # major/minor axis ratio of the elliptic cores
    profile: float = 0.75  # rain ~ exp(-q**profile / 2), q the squared elliptic radius; < 1: sharper than Gaussian
    anywhere: bool = False  # born at any pixel (scattered showers), not only where it already rains


@dataclass
class Cell:
    row: float  # centre, pixels of the working domain
    col: float
    sigma_px: float  # geometric mean of the two axes
    aspect: float
    angle: float  # radians, orientation of the major axis
    peak_mmh: float
    life_steps: int
    age: int = 0

    def strength(self) -> float:
        """Rise and fall over the life: a flattened sine over (0, pi), so cells spend most of it mature."""
        return float(np.sin(np.pi * (self.age + 1) / (self.life_steps + 1)) ** 0.5)


class ConvectiveCells:
    """The population of cells on the working domain, advanced one scan at a time."""

    def __init__(
        self,
        shape: tuple[int, int],
        pixel_size_m: float,
        step_minutes: float,
        cells_per_hour_per_10k_km2: float,
        max_peak_mmh: float,
        rng: np.random.Generator,
        params: CellParams | None = None,
    ) -> None:
        self.shape = shape
        self.params = params or CellParams()
        self._rng = rng
        self._pixel_km = pixel_size_m / 1000.0
        self._step_minutes = step_minutes
        self._area_10k_km2 = shape[0] * shape[1] * self._pixel_km**2 / 1e4
        self._rate_per_step = cells_per_hour_per_10k_km2 * step_minutes / 60.0
        self._max_peak = max_peak_mmh
        self.cells: list[Cell] = []
        self._started = False

    def _new(self, latent: np.ndarray, threshold: float, gain: float, age_fraction: bool) -> Cell | None:
        p = self.params
        for _ in range(BIRTH_TRIES):  # a random raining pixel (any pixel for scattered showers)
            u = self._rng.random(8)
            row, col = u[0] * self.shape[0], u[1] * self.shape[1]
            if p.anywhere or latent[int(row), int(col)] > threshold:
                break
        else:
            return None
        sigma = (p.sigma_km[0] + u[2] * (p.sigma_km[1] - p.sigma_km[0])) / self._pixel_km
        min_peak = min(p.min_peak_mmh, self._max_peak)
        peak = min_peak * (self._max_peak / min_peak) ** u[3] * min(gain, 1.5)
        life_minutes = p.life_minutes[0] + u[4] * (p.life_minutes[1] - p.life_minutes[0])
        life = max(2, int(round(life_minutes / self._step_minutes)))
        age = int(u[5] * life) if age_fraction else 0
        aspect = p.aspect[0] + u[6] * (p.aspect[1] - p.aspect[0])
        return Cell(
            row=row,
            col=col,
            sigma_px=max(sigma, p.min_sigma_px),
            aspect=aspect,
            angle=np.pi * u[7],
            peak_mmh=peak,
            life_steps=life,
            age=age,
        )

    def step(
        self,
        velocity_px: Callable[[float, float], tuple[float, float]],
        latent: np.ndarray,
        threshold: float,
        gain: float,
    ) -> None:
        """Move, age and retire cells, then add the newly born ones.

        Args:
            velocity_px: (row, col) -> displacement (rows, cols) over this step at that point.
            latent: the latent field on the working domain (births only where it is wet).
            threshold: latent value above which it rains.
            gain: the scan's intensity gain (stronger days, stronger cells).
        """
        alive = []
        for cell in self.cells:
            drow, dcol = velocity_px(cell.row, cell.col)
            cell.row, cell.col, cell.age = cell.row + drow, cell.col + dcol, cell.age + 1
            inside = (
                -REACH * cell.sigma_px < cell.row < self.shape[0] + REACH * cell.sigma_px
                and -REACH * cell.sigma_px < cell.col < self.shape[1] + REACH * cell.sigma_px
            )
            if cell.age < cell.life_steps and inside:
                alive.append(cell)
        self.cells = alive
        wet = 1.0 if self.params.anywhere else float(np.mean(latent > threshold))
        expected = self._rate_per_step * self._area_10k_km2 * wet
        if not self._started:  # start in a steady state: as many cells as a long run would have
            self._started = True
            mean_life_minutes = np.mean(self.params.life_minutes)
            births, age_fraction = self._rng.poisson(expected * mean_life_minutes / self._step_minutes), True
        else:
            births, age_fraction = self._rng.poisson(expected), False
        for _ in range(births):
            born = self._new(latent, threshold, gain, age_fraction)
            if born is not None:
                self.cells.append(born)

    def render(self, rain: np.ndarray, latent: np.ndarray, offset: tuple[int, int]) -> None:
        """Add the cells' rain (mm/h) to ``rain``, the output window at ``offset`` of the working domain.

        Overlapping cells merge by their maximum, so two weak cells never make one implausibly strong core.

        Args:
            rain: (ny, nx) stratiform rain of the output window, updated in place.
            latent: (ny, nx) latent field of the same window, for the cores' texture.
            offset: (row, col) of the window in the working domain.
        """
        ny, nx = rain.shape
        cores = np.zeros_like(rain)
        for cell in self.cells:
            row, col = cell.row - offset[0], cell.col - offset[1]
            major, minor = cell.sigma_px * np.sqrt(cell.aspect), cell.sigma_px / np.sqrt(cell.aspect)
            reach = REACH * major
            r0, r1 = max(int(row - reach), 0), min(int(row + reach) + 2, ny)
            c0, c1 = max(int(col - reach), 0), min(int(col + reach) + 2, nx)
            if r0 >= r1 or c0 >= c1:
                continue
            dr = (np.arange(r0, r1) - row)[:, None]
            dc = (np.arange(c0, c1) - col)[None, :]
            cos, sin = np.cos(cell.angle), np.sin(cell.angle)
            q = ((dr * cos + dc * sin) / major) ** 2 + ((dc * cos - dr * sin) / minor) ** 2
            if self.params.profile != 1.0:
                q = q**self.params.profile
            centre = latent[min(max(int(round(row)), 0), ny - 1), min(max(int(round(col)), 0), nx - 1)]
            texture = np.clip(np.exp(TEXTURE * (latent[r0:r1, c0:c1] - centre)), 0.3, 1.5)
            core = (cell.peak_mmh * cell.strength()) * np.exp(-0.5 * q) * texture
            np.maximum(cores[r0:r1, c0:c1], core.astype(np.float32), out=cores[r0:r1, c0:c1])
        rain += cores
