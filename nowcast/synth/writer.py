"""Write the synthetic archive: one CF NetCDF file per present scan, plus ``synth.yaml``.

File layout (what the CF reader in ``nowcast.ingest.readers.cf`` reads)::

    dims      time = 1, y, x
    time      int64 "seconds since 1970-01-01 00:00:00", standard_name time
    y, x      float64 pixel centres in metres (projection_y/x_coordinate), y decreasing (north-up)
    rainfall_rate (time, y, x)  int16 packed: value * 0.01 = mm h-1, _FillValue -32768 = no data,
              zlib level 1 with shuffle, grid_mapping "crs"
    crs       scalar, CF grid mapping of a Lambert azimuthal equal-area projection (+ crs_wkt)
    global    Conventions CF-1.8, title, source "nowcast synthetic archive", seed

Each file is written under a hidden temporary name and renamed (``nowcast.atomic``), so a
killed run never leaves a half file that looks like a scan.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from pathlib import Path

import netCDF4
import numpy as np
from pyproj import CRS

from nowcast.atomic import atomic_write
from nowcast.config import dump_config, load_config
from nowcast.errors import ConfigError, NowcastError
from nowcast.scan import Grid
from nowcast.store import TIME_UNITS
from nowcast.synth.config import SynthConfig
from nowcast.synth.fields import generate_fields, missing_times, scan_times

log = logging.getLogger(__name__)

PREFIX = "synth_"
CONFIG_NAME = "synth.yaml"
SCALE_MMH = 0.01
FILL_RAW = np.int16(-32768)
COMPRESSION_LEVEL = 1  # level 1 compresses these fields nearly as well as 4, several times faster


def archive_name(time: np.datetime64) -> str:
    """The file name of one scan: ``synth_YYYYmmddHHMMSS.nc``."""
    return PREFIX + str(np.datetime64(time, "s")).replace("-", "").replace(":", "").replace("T", "") + ".nc"


def crs_attrs(config: SynthConfig) -> dict:
    """CF grid-mapping attributes (with ``crs_wkt``) of the archive's Lambert azimuthal equal-area projection."""
    crs = CRS.from_proj4(
        f"+proj=laea +lat_0={config.center_lat} +lon_0={config.center_lon} +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
    )
    return crs.to_cf()


def synth_grid(config: SynthConfig, crs: dict | None = None) -> Grid:
    """The archive's grid, centred on the projection origin; its crs is what the CF reader reports.

    Args:
        config: the archive configuration.
        crs: its ``crs_attrs``, when already at hand.
    """
    ny, nx, size = config.height, config.width, config.pixel_size_m
    x = (np.arange(nx) - (nx - 1) / 2) * size
    y = ((ny - 1) / 2 - np.arange(ny)) * size
    parsed = CRS.from_cf(crs or crs_attrs(config))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the same fallback as the CF reader
        text = parsed.to_proj4() or parsed.to_wkt()
    return Grid(x=x, y=y, crs=text)


def write_scan(path: Path, time: np.datetime64, rain: np.ndarray, grid: Grid, crs: dict, seed: int) -> None:
    """Write one scan as CF NetCDF, atomically (temporary name, then rename).

    Args:
        path: the final file path.
        time: valid time of the scan.
        rain: (ny, nx) float32 mm/h with NaN for no data.
        grid: the scan's grid (north-up).
        crs: CF grid-mapping attributes (``crs_attrs``).
        seed: recorded in the global attributes.
    """
    ny, nx = rain.shape
    raw = np.rint(np.where(np.isfinite(rain), rain, 0) / SCALE_MMH).clip(0, np.iinfo(np.int16).max).astype(np.int16)
    raw[~np.isfinite(rain)] = FILL_RAW
    with atomic_write(path) as tmp:  # closed (inner block) before it is synced and renamed
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
            ds.setncatts(
                {
                    "Conventions": "CF-1.8",
                    "title": "nowcast synthetic radar rain-rate scan",
                    "source": "nowcast synthetic archive",
                    "institution": "nowcast",
                    "seed": np.int64(seed),
                }
            )
            ds.createDimension("time", 1)
            ds.createDimension("y", ny)
            ds.createDimension("x", nx)
            tvar = ds.createVariable("time", "i8", ("time",))
            tvar.setncatts({"units": TIME_UNITS, "standard_name": "time", "calendar": "standard", "axis": "T"})
            tvar[:] = np.int64(np.datetime64(time, "s").astype(np.int64))
            for name, values in (("y", grid.y), ("x", grid.x)):
                var = ds.createVariable(name, "f8", (name,))
                var.setncatts(
                    {
                        "units": "m",
                        "standard_name": f"projection_{name}_coordinate",
                        "long_name": f"{name} coordinate of projection (pixel centre)",
                        "axis": name.upper(),
                    }
                )
                var[:] = values
            cvar = ds.createVariable("crs", "i4", ())
            cvar.setncatts(crs)
            rvar = ds.createVariable(
                "rainfall_rate",
                "i2",
                ("time", "y", "x"),
                zlib=True,
                complevel=COMPRESSION_LEVEL,
                shuffle=True,
                chunksizes=(1, ny, nx),
                fill_value=FILL_RAW,
            )
            rvar.set_auto_maskandscale(False)  # packed here, exactly: rint(mm/h / 0.01)
            rvar.setncatts(
                {
                    "scale_factor": np.float32(SCALE_MMH),
                    "units": "mm h-1",
                    "standard_name": "rainfall_rate",
                    "long_name": "rain rate",
                    "grid_mapping": "crs",
                }
            )
            rvar[0] = raw


def _same_config(saved: Path, config: SynthConfig) -> bool:
    """Whether ``saved`` holds ``config``: compared as configs, so a file written before a key existed
    (``regime``, say) still matches when the new key has its default."""
    if not saved.is_file():
        return False
    try:
        return load_config(SynthConfig, saved) == config
    except ConfigError:
        return False


def _claim(out_dir: Path, config: SynthConfig, overwrite: bool) -> None:
    """Refuse to mix archives: an existing one with another config is replaced only when asked."""
    existing = sorted(out_dir.glob(f"{PREFIX}*.nc"))
    same = _same_config(out_dir / CONFIG_NAME, config)
    if existing and not same:
        if not overwrite:
            raise NowcastError(
                f"{out_dir} already holds a synthetic archive of another configuration ({len(existing)} files); "
                "choose another folder or pass overwrite=True (nowcast synth --overwrite) to replace it"
            )
        log.info("removing %d files of the previous archive in %s", len(existing), out_dir)
        for path in existing:
            path.unlink()
    for stale in out_dir.glob(f".{PREFIX}*.nc.part"):  # left by a killed run
        stale.unlink()


def write_archive(
    out_dir: str | Path, config: SynthConfig, progress: bool = True, overwrite: bool = False
) -> list[Path]:
    """Generate the archive and write one file per present scan into ``out_dir`` (flat).

    Re-running with the same config is a no-op once every file exists; a folder holding an
    archive of another config is refused unless ``overwrite``.

    Args:
        out_dir: the folder (created if needed).
        config: the archive configuration.
        progress: show a progress bar.
        overwrite: replace an archive of another configuration in ``out_dir``.

    Returns:
        The paths of the scan files, in time order.

    Raises:
        NowcastError: ``out_dir`` holds another archive and ``overwrite`` is False.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config_text = dump_config(config)
    missing = missing_times(config)
    expected = [out_dir / archive_name(t) for t in scan_times(config) if np.datetime64(t, "s") not in missing]
    _claim(out_dir, config, overwrite)
    if (out_dir / CONFIG_NAME).is_file() and all(p.is_file() for p in expected):
        log.info("%s already holds this archive (%d scans); nothing to do", out_dir, len(expected))
        return expected
    with atomic_write(out_dir / CONFIG_NAME) as tmp:
        tmp.write_text(config_text)

    crs = crs_attrs(config)
    grid = synth_grid(config, crs)
    fields: Iterable[tuple[np.datetime64, np.ndarray]] = generate_fields(config)
    if progress:
        from rich.progress import track

        fields = track(fields, total=config.n_scans, description=f"synth {config.height}x{config.width}")
    written = []
    for time, rain in fields:
        if time in missing:
            continue
        path = out_dir / archive_name(time)
        write_scan(path, time, rain, grid, crs, config.seed)
        written.append(path)
    log.info(
        "wrote %d scans (%d missing) of %dx%d to %s", len(written), len(missing), config.height, config.width, out_dir
    )
    return written
