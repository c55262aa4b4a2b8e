"""Atomic writes: a reader sees the old file or the new one, never half of one.

Every output that someone may read while it is written (checkpoints, forecasts, pictures,
reports, manifest parts, synthetic scans) goes through ``atomic_write``::

    with atomic_write(path) as tmp:  # a fresh hidden name beside ``path``
        dataset.to_netcdf(tmp)       # any writer that takes a path
    # here ``tmp`` is flushed to disk and renamed onto ``path``

The temporary name is hidden (``.name.<random>.tmp``), so folder listings that skip hidden
files (ingest's source listing, predict's raw input) never take it for a finished file. It
lies in the destination folder because a rename is atomic only within one file system. On
any failure inside the block the temporary file (or folder) is removed and ``path`` is left
as it was.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _temporary_name(path: Path, suffix: str = "") -> Path:
    """A hidden name beside ``path``, unique to this call: ``.name.<random>.tmp<suffix>``."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{suffix}")


@contextmanager
def atomic_write(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; on success it is synced to disk and renamed onto ``path``.

    The parent folder is created when missing. The temporary path does not exist yet: the
    block creates it, as a file or as a folder (Zarr). A folder replaces an existing ``path``
    in two renames (the old one is moved aside first, then removed), as a folder cannot be
    replaced in one.

    Args:
        path: the final name.
        suffix: appended to the temporary name, for writers that pick a format by extension
            (matplotlib, Pillow).

    Yields:
        The temporary path.

    Raises:
        Whatever the block raises, after removing the temporary file; OSError from the sync
        or the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path, suffix)
    try:
        yield tmp
        _sync(tmp)
        if tmp.is_dir() and path.exists():
            old = _temporary_name(path, ".old")
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)  # put the old one back
                raise
            _remove(old)
        else:
            os.replace(tmp, path)
        _sync_folder(path.parent)
    except BaseException:
        _remove(tmp)
        raise


def write_file(fs, path: str, data: bytes) -> None:
    """Write ``data`` at ``path`` on the fsspec file system ``fs``, atomically.

    On a local disk through ``atomic_write``; on an object store in one PUT, which is atomic there.
    """
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol
    if "file" in protocols:
        with atomic_write(path) as tmp:
            tmp.write_bytes(data)
    else:
        fs.pipe_file(path, data)


def _sync(path: Path) -> None:
    """Flush a file, or every file of a folder, to disk before the rename makes it visible."""
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as f:
            os.fsync(f.fileno())


def _sync_folder(folder: Path) -> None:
    """Flush the rename itself (the folder entry); not every platform can open a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
