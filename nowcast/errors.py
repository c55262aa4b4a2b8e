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
