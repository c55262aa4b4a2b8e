"""Which reader a file needs, decided from its content (magic bytes, conventions), never its name."""

from __future__ import annotations

import os

import h5py

from nowcast.errors import ReaderError
from nowcast.ingest.readers.common import text

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
HDF5_OFFSETS = (0, 512, 1024, 2048)  # the superblock may follow a user block of these sizes
NETCDF_CLASSIC_MAGICS = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
GRIB_MAGIC = b"GRIB"


def detect_format(path: str) -> str:
    """Name the reader for ``path`` by looking inside it.

    Args:
        path: a radar file.

    Returns:
        ``"odim"``, ``"knmi"``, ``"cf"`` or ``"grib"`` (formats read through pySTEPS are named
        in the config or with ``--format pysteps:NAME``: their files carry no common signature).

    Raises:
        ReaderError: missing, empty, unreadable, or not a format this project reads.
    """
    path = str(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(max(HDF5_OFFSETS) + len(HDF5_MAGIC))
    except OSError as e:
        raise ReaderError(f"{path}: cannot open: {e.strerror or e}") from e
    if size == 0:
        raise ReaderError(f"{path}: empty file")
    if head[:4] in NETCDF_CLASSIC_MAGICS:
        return "cf"
    if head[:4] == GRIB_MAGIC:
        return "grib"
    if any(head[o : o + len(HDF5_MAGIC)] == HDF5_MAGIC for o in HDF5_OFFSETS):
        return _detect_hdf5(path)
    raise ReaderError(f"{path}: not a radar file this project reads (formats: {_formats()})")


def _detect_hdf5(path: str) -> str:
    try:
        with h5py.File(path, "r") as f:
            return _classify(f, path)
    except ReaderError:
        raise
    except Exception as e:  # truncated or damaged HDF5
        raise ReaderError(f"{path}: damaged HDF5 file: {e}") from e


def _classify(f: h5py.File, path: str) -> str:
    try:
        conventions = text(f.attrs.get("Conventions", ""))
    except ValueError:  # an array of several values: not ODIM's single string
        conventions = ""
    if conventions.startswith("ODIM_H5"):
        return "odim"
    what = f.get("what")
    if isinstance(what, h5py.Group) and "object" in what.attrs:
        return "odim"
    if isinstance(f.get("image1"), h5py.Group) and isinstance(f.get("geographic"), h5py.Group):
        return "knmi"
    if _has_cf_variable(f):
        return "cf"
    raise ReaderError(
        f"{path}: HDF5 file without radar content (no ODIM_H5 conventions, no KNMI image1/geographic "
        f"groups, no CF variables); formats: {_formats()}"
    )


def _has_cf_variable(f: h5py.File) -> bool:
    found = []

    def visit(_name: str, obj: object) -> bool | None:
        if isinstance(obj, h5py.Dataset) and ("standard_name" in obj.attrs or "grid_mapping" in obj.attrs):
            found.append(obj)
            return True  # stops the walk
        return None

    f.visititems(visit)
    return bool(found)


def _formats() -> str:
    """The registered readers, for messages (imported here: the registry imports this module)."""
    from nowcast.ingest.readers import available

    return ", ".join(available())
