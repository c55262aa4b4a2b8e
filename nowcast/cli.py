"""The `nowcast` command: thin, each subcommand parses, loads config and calls one function.

Heavy imports (torch, dask, pyspark) happen inside the commands so `nowcast --help` is instant.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

import typer

from nowcast.errors import NowcastError
from nowcast.logs import setup_logging

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Radar precipitation nowcasting.")
log = logging.getLogger("nowcast")


@app.callback()
def _main(log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING or ERROR")) -> None:
    setup_logging(log_level)


def fail(error: Exception, code: int = 2) -> None:
    """Report a user-fixable error in one clear message and exit non-zero (no traceback)."""
    log.error(str(error))
    raise typer.Exit(code)


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except NowcastError as e:
        fail(e)
