"""Logging set-up, called once by the command line; library code only uses getLogger."""

from __future__ import annotations

import logging
import os

from rich.logging import RichHandler


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once, with rich formatting on a terminal."""
    level = os.environ.get("NOWCAST_LOG_LEVEL", level).upper()
    logging.basicConfig(
        level=level,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(rich_tracebacks=False, show_path=False)],
        force=True,
    )
    for noisy in ("distributed", "py4j", "matplotlib", "numcodecs", "fsspec", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
