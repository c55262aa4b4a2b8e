"""Mutated radar files made from the real ones: damaged bytes, wrong attributes, absurd values.

Every mutant keeps its source file's name stamp (so it claims the same time as a file already
ingested) unless the mutation is about the name. ``make_mutants`` is deterministic by seed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import netCDF4
import numpy as np

from tests.readers_helpers import BOM_C10_DIR, OPERA_DIR, RMI_DIR


def _bytes_mutation(kind: str, data: bytes, rng: np.random.Generator) -> bytes:
    if kind == "truncated":
        return data[: int(rng.integers(0, len(data) - 1))]
    if kind == "bitflips":
        buf = bytearray(data)
        for pos in rng.integers(0, len(buf), size=int(rng.integers(1, 64))):
            buf[pos] ^= 1 << int(rng.integers(0, 8))
        return bytes(buf)
    if kind == "empty":
        return b""
    if kind == "random":
        return rng.bytes(int(rng.integers(1, 100_000)))
    if kind == "text":
        return b"this is not a radar file\n" * int(rng.integers(1, 100))
    if kind == "hdf5-header-only":
        return data[:512]
    raise ValueError(kind)


BYTE_KINDS = ["truncated", "bitflips", "empty", "random", "text", "hdf5-header-only"]


def _knmi_edit(kind: str, path: Path, rng: np.random.Generator) -> None:
    with h5py.File(path, "r+") as f:
        cal = f["image1/calibration"]
        img = f["image1/image_data"]
        if kind == "knmi-no-data-array":
            del f["image1/image_data"]
        elif kind == "knmi-wrong-shape":
            del f["image1/image_data"]
            f["image1"].create_dataset("image_data", data=np.zeros((10, 7), np.uint16))
        elif kind == "knmi-garbage-formula":
            cal.attrs["calibration_formulas"] = np.bytes_(b"GEO=banana")
        elif kind == "knmi-absurd-gain":
            cal.attrs["calibration_formulas"] = np.bytes_(b"GEO=1e30*PV+0.0")
            img[...] = np.where(img[...] == 65535, 65535, 7)
        elif kind == "knmi-negative":
            cal.attrs["calibration_formulas"] = np.bytes_(b"GEO=0.01*PV-50.0")
        elif kind == "knmi-all-missing":
            img[...] = 65535
        elif kind == "knmi-wrong-time":
            f["overview"].attrs["product_datetime_end"] = np.array([b"26-AUG-2011;03:00:00.000"])
        elif kind == "knmi-garbage-time":
            f["overview"].attrs["product_datetime_end"] = np.array([b"yesterday"])
        elif kind == "knmi-no-geographic":
            del f["geographic"]
        elif kind == "knmi-wrong-columns":
            f["geographic"].attrs["geo_number_columns"] = np.array([int(rng.integers(1, 600))], np.int32)
        elif kind == "knmi-pixel-size":
            f["geographic"].attrs["geo_pixel_size_x"] = np.array([2.0], np.float32)
        else:
            raise ValueError(kind)


KNMI_KINDS = [
    "knmi-no-data-array",
    "knmi-wrong-shape",
    "knmi-garbage-formula",
    "knmi-absurd-gain",
    "knmi-negative",
    "knmi-all-missing",
    "knmi-wrong-time",
    "knmi-garbage-time",
    "knmi-no-geographic",
    "knmi-wrong-columns",
    "knmi-pixel-size",
]


def _odim_edit(kind: str, path: Path, rng: np.random.Generator) -> None:
    with h5py.File(path, "r+") as f:
        data = f["dataset1/data1/data"]
        if kind == "odim-all-nan":
            data[...] = np.nan
        elif kind == "odim-huge":
            data[...] = np.float32(1e30)
        elif kind == "odim-no-quantity":
            for group in ("dataset1/data1/what", "dataset1/what", "dataset2/what"):
                if group in f and "quantity" in f[group].attrs:
                    f[group].attrs["quantity"] = np.bytes_(b"VRAD")
        elif kind == "odim-bad-projdef":
            f["where"].attrs["projdef"] = np.bytes_(b"+proj=nonsense")
        elif kind == "odim-no-where":
            del f["where"]
        else:
            raise ValueError(kind)


ODIM_KINDS = ["odim-all-nan", "odim-huge", "odim-no-quantity", "odim-bad-projdef", "odim-no-where"]


def _cf_edit(kind: str, path: Path, rng: np.random.Generator) -> None:
    with netCDF4.Dataset(path, "r+") as ds:
        var = ds["precipitation"]
        if kind == "cf-no-grid-mapping":
            var.delncattr("grid_mapping")
        elif kind == "cf-unknown-variable":
            var.standard_name = "air_temperature"
        elif kind == "cf-bad-time-units":
            ds["valid_time"].units = "fortnights since the flood"
        elif kind == "cf-negative":
            var.set_auto_maskandscale(False)
            var[:] = np.full(var.shape, -300, np.int16)
        else:
            raise ValueError(kind)


CF_KINDS = ["cf-no-grid-mapping", "cf-unknown-variable", "cf-bad-time-units", "cf-negative"]


def make_mutants(out: Path, knmi_sources: list[Path], n: int, seed: int = 0) -> dict[Path, str]:
    """Write ``n`` mutants into ``out``; returns {path: kind}.

    KNMI mutants come from ``knmi_sources`` (files already in the store under test); the others
    from the other networks' files (another grid, another time).
    """
    rng = np.random.default_rng(seed)
    others = {
        "odim": sorted(RMI_DIR.glob("*.hdf"))[:5] + sorted(OPERA_DIR.glob("*.hdf"))[:2],
        "cf": sorted(BOM_C10_DIR.glob("*.nc"))[:5],
    }
    plan = (
        [("bytes", k) for k in BYTE_KINDS] * 3
        + [("knmi", k) for k in KNMI_KINDS] * 2
        + [("odim", k) for k in ODIM_KINDS]
        + [("cf", k) for k in CF_KINDS]
    )
    out.mkdir(parents=True, exist_ok=True)
    mutants: dict[Path, str] = {}
    for i in range(n):
        family, kind = plan[i % len(plan)]
        if family in ("bytes", "knmi"):
            pool = knmi_sources if family == "knmi" or rng.random() < 0.6 else others["odim"] + others["cf"]
        else:
            pool = others[family]
        source = pool[int(rng.integers(0, len(pool)))]
        target = out / f"m{i:04d}_{kind}_{source.name}"
        if family == "bytes":
            target.write_bytes(_bytes_mutation(kind, source.read_bytes(), rng))
        else:
            shutil.copyfile(source, target)
            {"knmi": _knmi_edit, "odim": _odim_edit, "cf": _cf_edit}[family](kind, target, rng)
        mutants[target] = kind
    return mutants
