"""Synthetic radar archives: realistic rain sequences at any size, deterministic by seed.

What ``make demo``, tests and benchmarks ingest, and what models are pre-trained on:
power-law (k^-3) rain fields, mostly dry with lognormal-like wet rates and a few heavy
convective cores, moved by a slowly turning wind with a weak rotation/shear, growing and
decaying, with no-data regions (NaN) and a few missing scans.

The ``regime`` key picks the kind of weather (``regimes.py``): ``mixed`` (the above, the
default), ``convective_showers``, ``fast_motion``, ``lines``, ``stratiform`` or ``dry``, or a list
of segments that walks through several; ``regime_series(config)`` says which regime holds each scan.

- ``generate_fields(config)`` yields ``(time, rain)`` for every scan, missing ones included;
  ``missing_times(config)`` says which ones ``write_archive`` leaves out.
- ``write_archive(out_dir, config)`` writes one CF NetCDF file per present scan
  (``synth_YYYYmmddHHMMSS.nc``) and ``synth.yaml`` with the resolved config.
"""

from nowcast.synth.config import SynthConfig
from nowcast.synth.fields import generate_fields, missing_times, nodata, regime_series, scan_times, wind_series
from nowcast.synth.writer import archive_name, crs_attrs, synth_grid, write_archive, write_scan

__all__ = [
    "SynthConfig",
    "generate_fields",
    "missing_times",
    "nodata",
    "regime_series",
    "scan_times",
    "wind_series",
    "archive_name",
    "crs_attrs",
    "synth_grid",
    "write_archive",
    "write_scan",
]
