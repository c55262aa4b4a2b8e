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


@app.command("evaluate-baselines")
def evaluate_baselines(
    store: Path = typer.Option(..., help="the Zarr store to score forecasts against"),
    out: Path = typer.Option(..., help="folder for scores.json, scores.md and scores.png"),
    leads: int = typer.Option(12, min=1, help="lead times scored, one per store time step"),
    inputs: int = typer.Option(3, min=2, help="input frames per forecast (extrapolation tracks motion over them)"),
    baseline: List[str] = typer.Option(["persistence", "extrapolation"], help="a baseline to score (repeatable)"),
    start: Optional[str] = typer.Option(None, help="earliest init time, e.g. 2024-06-01T00:00"),
    end: Optional[str] = typer.Option(None, help="latest init time"),
    stride: int = typer.Option(1, min=1, help="score every k-th valid start"),
    max_starts: Optional[int] = typer.Option(None, min=1, help="score at most this many starts"),
) -> None:
    """Score the persistence and optical-flow extrapolation baselines over a store, per lead time."""
    import numpy as np

    from nowcast.store import StoreReader
    from nowcast.verify.baselines import BASELINES, make_forecaster
    from nowcast.verify.evaluate import evaluate
    from nowcast.verify.report import write_reports

    unknown = [name for name in baseline if name not in BASELINES]
    if unknown:
        raise typer.BadParameter(f"unknown baseline {unknown[0]!r}; available: {', '.join(sorted(BASELINES))}",
                                 param_hint="--baseline")
    times = {}
    for hint, value in (("--start", start), ("--end", end)):
        try:
            times[hint] = None if value is None else np.datetime64(value, "s")
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not a time; use ISO 8601, e.g. 2024-06-01T12:00",
                                     param_hint=hint) from None
    try:
        reader = StoreReader(str(store))
        forecasters = {name: make_forecaster(name, reader.grid.pixel_size, reader.layout.time_step_s)
                       for name in baseline}
        result = evaluate(reader, forecasters, num_input_frames=inputs, n_leads=leads,
                          start=times["--start"], end=times["--end"],
                          stride=stride, max_starts=max_starts)
    except NowcastError as e:
        fail(e)
    paths = write_reports(result, out)
    log.info("scored %d starts (%d skipped at gaps); reports: %s", result.n_starts, result.n_skipped_gap,
             ", ".join(str(p) for p in paths.values()))


@app.command()
def inspect(
    files: List[Path] = typer.Argument(..., help="radar files to read (any format the readers know)"),
    reader_format: str = typer.Option("auto", "--format", help="reader name, or auto-detect by content"),
    quantity: Optional[str] = typer.Option(None, help="ODIM quantity or CF variable to read"),
) -> None:
    """Read each file as a scan and print its format, time, grid and rain statistics."""
    import numpy as np

    from nowcast.ingest.config import ReaderOptions
    from nowcast.ingest.readers import detect_format, read_scan

    options = ReaderOptions(format=reader_format, quantity=quantity)
    failed = 0
    for path in files:
        try:
            name = detect_format(str(path)) if reader_format == "auto" else reader_format
            scan = read_scan(str(path), options)
        except NowcastError as e:
            failed += 1
            typer.echo(f"ERROR {e}" if str(path) in str(e) else f"{path}: ERROR {e}")
            continue
        rain = scan.rain_rate
        valid = np.isfinite(rain)
        wet = valid & (rain > 0)
        typer.echo(
            f"{path}: {name} {scan.time} | {scan.grid.describe()} | crs {scan.grid.crs}\n"
            f"  valid {valid.mean():.1%}, wet {wet.sum() / max(valid.sum(), 1):.1%} of valid, "
            f"mean {np.nanmean(rain):.3f} mm/h, max {np.nanmax(rain):.2f} mm/h"
        )
    if failed:
        raise typer.Exit(1)


@app.command()
def synth(
    out_dir: Path = typer.Argument(..., help="folder for the archive (one CF NetCDF file per scan + synth.yaml)"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="synth YAML (SynthConfig keys); default: all defaults"),
    n_scans: Optional[int] = typer.Option(None, "--n-scans", help="number of scan times, missing ones included"),
    height: Optional[int] = typer.Option(None, help="rows (pixels)"),
    width: Optional[int] = typer.Option(None, help="columns (pixels)"),
    seed: Optional[int] = typer.Option(None, help="random seed: the same seed gives the same archive"),
    overrides: List[str] = typer.Argument(None, help="key=value overrides, e.g. wet_fraction=0.3"),
    overwrite: bool = typer.Option(False, help="replace an archive of another configuration in OUT_DIR"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Write a synthetic radar archive: realistic, moving, growing and decaying rain; deterministic by seed."""
    from nowcast.config import load_config
    from nowcast.synth import SynthConfig, write_archive

    extra = list(overrides or [])
    for key, value in (("n_scans", n_scans), ("height", height), ("width", width), ("seed", seed)):
        if value is not None:
            extra.append(f"{key}={value}")
    try:
        cfg = load_config(SynthConfig, config, extra)
        paths = write_archive(out_dir, cfg, progress=progress, overwrite=overwrite)
    except NowcastError as e:
        fail(e)
    log.info("%d scan files of %dx%d pixels in %s", len(paths), cfg.height, cfg.width, out_dir)
