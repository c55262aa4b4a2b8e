"""Lines of rain: squall lines and frontal bands whose segments grow and decay along their length.

A line is a slightly bowed ridge lying across the wind, hundreds of km long: a narrow core of
heavy rain (Gaussian across, a few km wide) with lighter rain trailing behind it. Along its
length the intensity follows a 1-D random field whose features live tens of minutes (longer
ones longer, as in the latent field), so segments of the line grow, decay and leave gaps while
the line as a whole lives for hours: it lengthens and strengthens, then shrinks and weakens.
Lines drift with the wind at their centre. ``embedded`` lines are the bands of stratiform rain:
the same shape, multiplying the rain they lie in by ``1 + peak`` on their axis instead of
adding rain of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SEGMENT_KM = 20.0  # features of this wavelength live LineParams.segment_minutes
CELLULAR_KM = 50.0  # its spectrum is flat at longer wavelengths, ~k^-3 at shorter: segments of tens of km
TAPER_KM = 15.0  # the ends of a line fade over this length
TEXTURE = 0.5  # lines follow the latent field: x exp(TEXTURE * latent), clipped to 0.4-1.5
SPREAD_ALONG = 0.3  # new lines are centred within this fraction of the window from its centre line ...
SPREAD_ACROSS = 0.25  # ... and upwind, so that they cross the window halfway through their life, give or take this
SPREAD = 0.6  # along-line gain = clip(LineParams.continuity + SPREAD * f, 0, 1.6), f of unit variance


@dataclass(frozen=True)
class LineParams:
    """Sizes, intensities and lives of the lines of one regime (ranges are drawn uniformly)."""

    mean_count: float = 1.5  # lines alive at once on average; there is always at least one
    length_km: tuple[float, float] = (120.0, 320.0)
    core_sigma_km: tuple[float, float] = (1.5, 3.0)  # across-line Gaussian sigma of the core
    peak_mmh: tuple[float, float] = (15.0, 60.0)  # log-uniform, the top capped by max_cell_rain_mmh
    trailing_mmh: tuple[float, float] = (1.0, 4.0)  # rain just behind the core
    trailing_km: tuple[float, float] = (8.0, 30.0)  # e-folding depth of the trailing rain
    life_minutes: tuple[float, float] = (180.0, 480.0)
    segment_minutes: float = 40.0  # lifetime of 20 km features along the line
    shortest_km: float = 8.0  # shortest wavelength of the along-line modulation
    continuity: float = 0.55  # mean of the along-line gain: 0.55 leaves ~20 % of the length in gaps
    across_wind_deg: float = 15.0  # the line lies within this many degrees of perpendicular to the wind
    bend: float = 0.15  # largest bow (sagitta) as a fraction of the length
    embedded: bool = False  # a band multiplying the rain it lies in, peak_mmh then a relative gain


@dataclass
class Line:
    row: float  # centre, pixels of the working domain
    col: float
    angle: float  # direction along the line, radians, in (row, col) space
    front: float  # +1 or -1: which side of the line faces its motion
    length_px: float
    sigma_px: float
    peak: float
    trail_mmh: float
    trail_px: float
    bow_px: float  # the middle lies this far ahead of the ends
    life_steps: int
    age: int
    modes: np.ndarray  # (K,) complex amplitudes of the along-line field
    period_px: int  # of the along-line field, longer than the line: mode j has wavelength period_px / j
    half_px: int  # the along-line grid runs from -half_px to half_px
    phi: np.ndarray  # (K,) AR(1) memory of each mode per step
    innovation: np.ndarray  # (K,) its innovation std

    def strength(self) -> float:
        """Rise and fall over the life (as convective cells)."""
        return float(np.sin(np.pi * (self.age + 1) / (self.life_steps + 1)) ** 0.5)

    def gain(self, taper_px: float, continuity: float) -> tuple[np.ndarray, np.ndarray]:
        """Along-line gain (modulation x end taper) on the grid s = -S/2 .. S/2, and its smoothed version."""
        spectrum = np.zeros(self.period_px, dtype=np.complex128)
        spectrum[1 : len(self.modes) + 1] = self.modes
        s = np.arange(-self.half_px, self.half_px + 1)
        field = np.fft.ifft(spectrum).real[s % self.period_px] * self.period_px  # Re(sum a_j e^(2 pi i j s / P))
        gain = np.clip(continuity + SPREAD * field, 0.0, 1.6)
        visible = self.length_px * (0.35 + 0.65 * self.strength())  # lines lengthen as they grow
        x = np.clip((visible / 2 - np.abs(s)) / taper_px + 0.5, 0.0, 1.0)
        gain *= x * x * (3 - 2 * x)
        smooth = np.convolve(gain, np.full(41, 1 / 41), mode="same")
        return gain.astype(np.float32), smooth.astype(np.float32)


class Lines:
    """The lines on the working domain, advanced one scan at a time and drawn on the output window."""

    def __init__(
        self,
        params: LineParams,
        window: tuple[int, int, int, int],
        pixel_size_m: float,
        step_minutes: float,
        max_peak_mmh: float,
        rng: np.random.Generator,
    ) -> None:
        """
        Args:
            params: the regime's lines.
            window: (row, col, height, width) of the output window in the working domain.
            pixel_size_m: pixel size.
            step_minutes: time between scans.
            max_peak_mmh: the top of the core peaks (the config's max_cell_rain_mmh).
            rng: the lines' random stream.
        """
        self.params = params
        self._window = window
        self._pixel_km = pixel_size_m / 1000.0
        self._step_minutes = step_minutes
        self._max_peak = max_peak_mmh
        self._rng = rng
        self._taper_px = TAPER_KM / self._pixel_km
        self.lines: list[Line] = []
        self._started = False

    def _new(self, motion: tuple[float, float], gain: float, age_fraction: float) -> Line:
        p, km = self.params, self._pixel_km
        u = self._rng.random(10)
        row0, col0, height, width = self._window
        heading = np.arctan2(motion[1], motion[0])  # direction of motion in (row, col) space
        angle = heading + np.pi / 2 + np.deg2rad(p.across_wind_deg) * (2 * u[2] - 1)
        front = 1.0 if -motion[0] * np.sin(angle) + motion[1] * np.cos(angle) >= 0 else -1.0
        length = (p.length_km[0] + u[3] * (p.length_km[1] - p.length_km[0])) / km
        top = p.peak_mmh[1] if p.embedded else min(p.peak_mmh[1], self._max_peak)
        bottom = min(p.peak_mmh[0], top)
        peak = bottom * (top / bottom) ** u[4] * (1.0 if p.embedded else min(gain, 1.5))
        life = max(
            2, int(round((p.life_minutes[0] + u[5] * (p.life_minutes[1] - p.life_minutes[0])) / self._step_minutes))
        )
        age = int(age_fraction * life)
        # Where it would be now had it been halfway through its life at the window's centre.
        size = max(height, width)
        travel = np.hypot(*motion) * (age - life / 2) + SPREAD_ACROSS * size * (2 * u[0] - 1)
        along = SPREAD_ALONG * size * (2 * u[1] - 1)
        row = row0 + height / 2 + travel * np.cos(heading) + along * np.cos(angle)
        col = col0 + width / 2 + travel * np.sin(heading) + along * np.sin(angle)
        # The along-line field: modes of wavelength period/j, each living as long as its wavelength says.
        half = int(np.ceil(length / 2 + self._taper_px))
        period = max(int(np.ceil(1.5 * length)), 2 * half + 1)  # the grid never wraps around
        j = np.arange(1, max(2, min(int(period * km / p.shortest_km), period // 2 - 1)) + 1)
        weights = 1.0 / (1.0 + (j * CELLULAR_KM / (period * km)) ** 3)
        variance = 2 * weights / weights.sum()  # E|a_j|^2, so that the field has unit variance
        lifetime = p.segment_minutes * (period * km / j) / SEGMENT_KM
        phi = np.exp(-self._step_minutes / lifetime)
        return Line(
            row=row,
            col=col,
            angle=angle,
            front=front,
            length_px=length,
            sigma_px=max((p.core_sigma_km[0] + u[6] * (p.core_sigma_km[1] - p.core_sigma_km[0])) / km, 0.7),
            peak=peak,
            trail_mmh=p.trailing_mmh[0] + u[7] * (p.trailing_mmh[1] - p.trailing_mmh[0]),
            trail_px=(p.trailing_km[0] + u[8] * (p.trailing_km[1] - p.trailing_km[0])) / km,
            bow_px=p.bend * length * (2 * u[9] - 1),
            life_steps=life,
            age=age,
            modes=np.sqrt(variance) * self._complex_noise(len(j)),
            period_px=period,
            half_px=half,
            phi=phi,
            innovation=np.sqrt((1 - phi * phi) * variance),
        )

    def _complex_noise(self, n: int) -> np.ndarray:
        draws = self._rng.standard_normal((2, n))
        return (draws[0] + 1j * draws[1]) * np.sqrt(0.5)

    def _reach(self, line: Line) -> float:
        return line.length_px / 2 + self._taper_px + abs(line.bow_px) + 3 * line.trail_px + 4 * line.sigma_px

    def step(
        self, velocity_px: Callable[[float, float], tuple[float, float]], motion: tuple[float, float], gain: float
    ) -> None:
        """Move, age and evolve the lines, retire the dead or departed, add new ones.

        Args:
            velocity_px: (row, col) -> displacement (rows, cols) over this step at that point.
            motion: the domain-uniform displacement (rows, cols) of this step: new lines lie across it.
            gain: the scan's intensity gain.
        """
        row0, col0, height, width = self._window
        alive = []
        for line in self.lines:
            drow, dcol = velocity_px(line.row, line.col)
            line.row, line.col, line.age = line.row + drow, line.col + dcol, line.age + 1
            line.modes = line.phi * line.modes + line.innovation * self._complex_noise(len(line.modes))
            reach = self._reach(line)
            inside = row0 - reach < line.row < row0 + height + reach and col0 - reach < line.col < col0 + width + reach
            arriving = line.age < line.life_steps / 2  # born upwind, still on its way in
            if line.age < line.life_steps and (inside or arriving):
                alive.append(line)
        self.lines = alive
        mean_life = np.mean(self.params.life_minutes) / self._step_minutes
        if not self._started:  # a steady state: lines of all ages but the very last
            self._started = True
            for _ in range(max(1, self._rng.poisson(self.params.mean_count))):
                self.lines.append(self._new(motion, gain, 0.7 * self._rng.random()))
            return
        for _ in range(self._rng.poisson(self.params.mean_count / mean_life)):
            self.lines.append(self._new(motion, gain, 0.0))
        if not self.lines:  # never none: one that is already on its way in
            self.lines.append(self._new(motion, gain, 0.2 + 0.3 * self._rng.random()))

    def render(self, rain: np.ndarray, latent: np.ndarray) -> None:
        """Draw the lines into ``rain`` (the output window, mm/h, updated in place).

        Args:
            rain: (ny, nx) rain of the output window.
            latent: (ny, nx) latent field of the same window, for the lines' texture.
        """
        ny, nx = rain.shape
        for line in self.lines:
            row, col = line.row - self._window[0], line.col - self._window[1]
            reach = self._reach(line)
            r0, r1 = max(int(row - reach), 0), min(int(row + reach) + 2, ny)
            c0, c1 = max(int(col - reach), 0), min(int(col + reach) + 2, nx)
            if r0 >= r1 or c0 >= c1:
                continue
            dr = (np.arange(r0, r1, dtype=np.float32) - np.float32(row))[:, None]
            dc = (np.arange(c0, c1, dtype=np.float32) - np.float32(col))[None, :]
            cos, sin = np.float32(np.cos(line.angle)), np.float32(np.sin(line.angle))
            s = dr * cos + dc * sin  # along the line
            n = (dc * cos - dr * sin) * np.float32(line.front)  # across, positive ahead
            n -= np.float32(line.bow_px) * (1 - (2 * s / np.float32(line.length_px)) ** 2)
            gain, smooth = line.gain(self._taper_px, self.params.continuity)
            half = len(gain) // 2
            index = np.clip(np.rint(s).astype(np.intp) + half, 0, len(gain) - 1)
            strength = np.float32(line.strength())
            across = np.exp(-0.5 * (n / np.float32(line.sigma_px)) ** 2)
            shape = gain[index] * across
            if self.params.embedded:  # at most 1 + peak: bands keep stratiform rain moderate
                rain[r0:r1, c0:c1] *= 1 + np.float32(line.peak) * strength * np.minimum(shape, 1)
                continue
            texture = np.clip(np.exp(np.float32(TEXTURE) * latent[r0:r1, c0:c1]), 0.4, 1.5)
            activity = smooth[index]
            depth = np.float32(line.trail_px) * (0.3 + 0.7 * activity)  # deeper behind the active segments
            behind = np.where(n < 0, np.exp(np.minimum(n, 0) / np.maximum(depth, 1.0)), across)
            trailing = np.float32(line.trail_mmh) * (0.3 + 0.7 * activity) * behind
            drawn = strength * np.maximum(np.float32(line.peak) * shape, trailing) * texture
            np.maximum(rain[r0:r1, c0:c1], drawn.astype(np.float32), out=rain[r0:r1, c0:c1])
