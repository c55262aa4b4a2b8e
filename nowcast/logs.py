"""Logging set-up, called once by the command line; library code only uses getLogger."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def quiet_py4j(record: logging.LogRecord) -> bool:
    """Drop py4j's retry chatter: it logs "Exception while sending command" with a traceback on the
    root logger (``logging.info``), so the ``py4j`` logger's level cannot silence it; after a Spark
    session has stopped, every Java object collected at exit prints one."""
    return record.levelno >= logging.WARNING or f"{os.sep}py4j{os.sep}" not in record.pathname


def setup_logging(level: str = "INFO", log_file: str | Path | None = None) -> None:
    """Configure the root logger once: messages go to stderr (stdout stays for results, e.g.
    evaluate's table), with rich formatting on a terminal and plain one-line records otherwise (no
    wrapping that splits paths in a log file or a pipe); ``log_file`` also gets every record."""
    level = os.environ.get("NOWCAST_LOG_LEVEL", level).upper()
    handlers: list[logging.Handler]
    if sys.stderr.isatty():
        console = Console(stderr=True)
        handlers = [RichHandler(console=console, rich_tracebacks=False, show_path=False)]
        handlers[0].setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
    else:
        handlers = [logging.StreamHandler(sys.stderr)]
        handlers[0].setFormatter(logging.Formatter(PLAIN_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S"))
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setFormatter(logging.Formatter(PLAIN_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S"))
        handlers.append(to_file)
    for handler in handlers:
        handler.addFilter(quiet_py4j)
    logging.basicConfig(level=level, handlers=handlers, force=True)
    for noisy in ("distributed", "py4j", "matplotlib", "numcodecs", "fsspec", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
