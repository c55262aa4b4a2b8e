"""The project's exception types: each says what went wrong, where, and what is allowed."""


class NowcastError(Exception):
    """Base class for errors a user can cause and fix (bad file, bad config, missing frames)."""


class ConfigError(NowcastError):
    """A configuration file or override is invalid; the message names the key and the file."""


class ReaderError(NowcastError):
    """A radar file cannot be read as a scan; the message names the file and the problem."""


class StoreError(NowcastError):
    """The Zarr store is missing, locked, or does not match what the caller expects."""


class CheckpointError(NowcastError):
    """A checkpoint is not ours, is damaged, or does not match the input."""


class MissingFramesError(NowcastError):
    """A forecast needs input frames that are missing from the store."""


class OutputError(NowcastError):
    """An output could not be written; nothing was left under its final name."""


def output_error(path, error: BaseException) -> OutputError:
    """An OutputError naming the file, the cause and, when it tells, how much space is left."""
    import errno
    import os
    import shutil

    folder = os.path.dirname(os.path.abspath(path))
    detail = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES):
        detail = os.strerror(error.errno)
    try:
        free = shutil.disk_usage(folder).free
        space = f"; {free / 2**20:.1f} MiB free in {folder}"
    except OSError:
        space = ""
    if not os.access(folder, os.W_OK) or (os.path.exists(folder) and os.statvfs(folder).f_flag & os.ST_RDONLY):
        detail += " (Read-only file system)" if "Read-only" not in detail else ""
    elif space and shutil.disk_usage(folder).free < 1 << 20 and "No space left" not in detail:
        detail += " (No space left on device)"
    return OutputError(f"could not write {path}: {detail}{space}; nothing was written under that name")
