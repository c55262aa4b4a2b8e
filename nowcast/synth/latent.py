"""The latent Gaussian field behind the rain: power-law spectrum, advected, evolving like S-PROG.

The field lives on a periodic domain a little larger than the output (so rain leaving on one
side does not reappear at once on the other) and is kept as its Fourier spectrum:
- the domain-uniform wind moves it by an exact phase shift (no numerical diffusion);
- the weak rotation/shear is a semi-Lagrangian warp (``scipy.ndimage.map_coordinates``);
- each wavenumber then follows an AR(1) process whose memory falls with scale, so small
  features decorrelate in minutes and large ones over hours (as STEPS/S-PROG cascades do);
- each radial band is renormalised to the target power, like STEPS normalises each cascade
  level, which undoes the smoothing of the interpolation and keeps the k^-beta spectrum.
"""

from __future__ import annotations

import numpy as np
from scipy import fft
from scipy.ndimage import map_coordinates

LIFETIME_EXPONENT = 1.0  # lifetime ~ wavelength: 2 km features live ~12 min when 100 km live 10 h


def padded_shape(shape: tuple[int, int], pixel_size_m: float, largest_scale_km: float) -> tuple[int, int]:
    """The periodic working domain: at least 1.25x the output, up to one largest scale more, at most 2x."""
    extra = largest_scale_km * 1000.0 / pixel_size_m
    return tuple(fft.next_fast_len(int(np.ceil(min(2 * n, max(1.25 * n, n + extra))))) for n in shape)


class LatentField:
    """A zero-mean, unit-variance periodic Gaussian field evolved one scan at a time."""

    def __init__(
        self,
        shape: tuple[int, int],
        pixel_size_m: float,
        slope: float,
        largest_scale_km: float,
        lifetime_minutes_100km: float,
        step_minutes: float,
        rng: np.random.Generator,
    ) -> None:
        ny, nx = shape
        self.shape = shape
        self._rng = rng
        self._ky = np.fft.fftfreq(ny).astype(np.float32)  # cycles per pixel
        self._kx = np.fft.rfftfreq(nx).astype(np.float32)
        k = np.hypot(self._ky[:, None], self._kx[None, :]).astype(np.float64)
        pixel_km = pixel_size_m / 1000.0
        k0 = pixel_km / largest_scale_km
        power = (k * k + k0 * k0) ** (-slope / 2)
        power[0, 0] = 0.0  # zero mean: the domain-mean rain is set by the threshold, not the field
        # Half-spectrum weights (Parseval for rfft): columns other than 0 and Nyquist stand for two.
        weight = np.full(k.shape, 2.0)
        weight[:, 0] = 1.0
        if nx % 2 == 0:
            weight[:, -1] = 1.0
        power *= (ny * nx) ** 2 / np.sum(weight * power)  # unit variance in real space
        wavelength_km = pixel_km / np.maximum(k, 1e-12)
        lifetime = lifetime_minutes_100km * (np.minimum(wavelength_km, largest_scale_km) / 100.0) ** LIFETIME_EXPONENT
        phi = np.exp(-step_minutes / lifetime)
        self._phi = phi.astype(np.float32)
        self._innovation = (np.sqrt(1 - phi * phi) * np.sqrt(power)).astype(np.float32)
        # Radial bands one fundamental wide, and their target power.
        self._band = np.rint(k * max(ny, nx)).astype(np.intp).ravel()
        self._weight = weight.astype(np.float32).ravel()
        target = np.bincount(self._band, weights=(weight * power).ravel())
        self._target = target
        self._spectrum = (np.sqrt(power) * self._noise()).astype(np.complex64)  # a stationary start
        rows = np.arange(ny, dtype=np.float32)[:, None]
        cols = np.arange(nx, dtype=np.float32)[None, :]
        self._rows, self._cols = np.broadcast_to(rows, shape), np.broadcast_to(cols, shape)

    def _noise(self) -> np.ndarray:
        """Complex white noise with E|e|^2 = 1 on the half spectrum."""
        shape = (self.shape[0], self.shape[1] // 2 + 1)
        draws = self._rng.standard_normal((2, *shape), dtype=np.float32)
        noise = np.empty(shape, dtype=np.complex64)
        noise.real, noise.imag = draws[0], draws[1]
        noise *= np.float32(np.sqrt(0.5))
        return noise

    def step(self, shift_px: tuple[float, float], warp_px: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        """Advance one scan and return the field (ny, nx) float32.

        Args:
            shift_px: uniform displacement (rows down, columns right) in pixels over this step.
            warp_px: extra displacement field (rows, columns), each (ny, nx), or None.

        Returns:
            The new latent field, zero mean and unit variance.
        """
        drow, dcol = shift_px
        # Moving content by (drow, dcol) multiplies each mode by exp(-2 pi i k . d); separable.
        self._spectrum *= np.exp(-2j * np.pi * self._ky * drow).astype(np.complex64)[:, None]
        self._spectrum *= np.exp(-2j * np.pi * self._kx * dcol).astype(np.complex64)[None, :]
        if warp_px is not None:
            field = fft.irfft2(self._spectrum, s=self.shape, workers=1)
            coords = np.stack([self._rows - warp_px[0], self._cols - warp_px[1]])  # semi-Lagrangian: look upwind
            field = map_coordinates(field, coords, order=1, mode="grid-wrap", output=np.float32)
            self._spectrum = fft.rfft2(field, workers=1)
        self._spectrum *= self._phi
        self._spectrum += self._innovation * self._noise()
        power = self._spectrum.real**2 + self._spectrum.imag**2
        band_power = np.bincount(self._band, weights=(power.ravel() * self._weight), minlength=len(self._target))
        gain = np.sqrt(self._target / np.maximum(band_power, 1e-30)).astype(np.float32)
        self._spectrum *= gain[self._band].reshape(self._spectrum.shape)
        return fft.irfft2(self._spectrum, s=self.shape, workers=1).astype(np.float32, copy=False)
