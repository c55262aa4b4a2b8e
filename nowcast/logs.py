"""Logging set-up, called once by the command line; library code only uses getLogger."""

from __future__ import annotations

import logging
import os

from rich.logging import RichHandler


def quiet_py4j(record: logging.LogRecord) -> bool:
    """Drop py4j's retry chatter: it logs "Exception while sending command" with a traceback on the
    root logger (``logging.info``), so the ``py4j`` logger's level cannot silence it; after a Spark
    session has stopped, every Java object collected at exit prints one."""
    return record.levelno >= logging.WARNING or f"{os.sep}py4j{os.sep}" not in record.pathname


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once, with rich formatting on a terminal."""
    level = os.environ.get("NOWCAST_LOG_LEVEL", level).upper()
    handler = RichHandler(rich_tracebacks=False, show_path=False)
    handler.addFilter(quiet_py4j)
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", handlers=[handler], force=True)
    for noisy in ("distributed", "py4j", "matplotlib", "numcodecs", "fsspec", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
