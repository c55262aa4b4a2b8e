"""Object stores (``s3://``, ``gs://``, ...) through fsspec, for outputs written as whole files.

Zarr stores open URLs directly (``StoreReader("s3://bucket/knmi.zarr")``). Files that our code
writes with the local file system's guarantees (checkpoints renamed into place, NetCDF forecasts)
are made in a local folder and then uploaded: one PUT per file, which an object store makes
visible whole or not at all, so a reader never sees half a checkpoint or half a forecast.

Credentials come from the environment fsspec's backend reads (for S3: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ``~/.aws/config``, instance
roles); they never appear in a config file, and nothing here logs them.
"""

from __future__ import annotations

import logging
import posixpath
from pathlib import Path

import fsspec

from nowcast.errors import NowcastError

log = logging.getLogger(__name__)


def is_url(path: str | Path | None) -> bool:
    """True for a URL of a remote file system (``s3://...``); plain paths and ``file://`` are local."""
    return isinstance(path, str) and "://" in path and not path.startswith("file://")


def join(url: str, *parts: str) -> str:
    """``url`` with path parts appended, with single slashes."""
    return posixpath.join(url.rstrip("/"), *parts)


def filesystem(url: str):
    """(fsspec file system, path inside it) for ``url``, with a clear error when the backend is missing."""
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as e:
        raise NowcastError(f"{url}: {e} (install the fsspec backend for this URL, e.g. `pip install s3fs`)") from None


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.exists(path)


def download(url: str, local: str | Path) -> Path:
    """Copy the file at ``url`` to ``local`` (its folder is created); returns the local path."""
    fs, path = filesystem(url)
    local = Path(local)
    local.parent.mkdir(parents=True, exist_ok=True)
    try:
        fs.get_file(path, str(local))
    except FileNotFoundError:
        raise NowcastError(f"{url} does not exist") from None
    return local


def download_folder(url: str, local: str | Path) -> list[Path]:
    """Copy every file directly under ``url`` (not sub-folders) into ``local``."""
    fs, path = filesystem(url)
    local = Path(local)
    local.mkdir(parents=True, exist_ok=True)
    copied: list[Path] = []
    if not fs.exists(path):
        return copied
    for info in fs.ls(path, detail=True):
        if info["type"] == "file":
            target = local / posixpath.basename(info["name"])
            fs.get_file(info["name"], str(target))
            copied.append(target)
    return copied


def upload(local: str | Path, url: str) -> str:
    """Copy the local file to ``url`` in one PUT (visible whole or not at all); returns ``url``."""
    fs, path = filesystem(url)
    fs.put_file(str(local), path)
    return url


def upload_folder(local: str | Path, url: str, last: tuple[str, ...] = ()) -> list[str]:
    """Upload every file under ``local`` to ``url``, keeping relative paths; the relative paths in
    ``last`` go after all the others (metadata such as a Zarr group's ``zarr.json`` after its arrays)."""
    local = Path(local)
    files = sorted(
        (p for p in local.rglob("*") if p.is_file()), key=lambda p: (p.relative_to(local).as_posix() in last, str(p))
    )
    return [upload(p, join(url, *p.relative_to(local).parts)) for p in files]


def remove(url: str) -> None:
    fs, path = filesystem(url)
    fs.rm(path, recursive=True)


def list_names(url: str) -> list[str]:
    """Names of the entries directly under ``url`` (empty when it does not exist)."""
    fs, path = filesystem(url)
    if not fs.exists(path):
        return []
    return sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False))
