"""The `nowcast` command: thin, each subcommand parses, loads config and calls one function.

Heavy imports (torch, dask, pyspark) happen inside the commands so `nowcast --help` is instant.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer
import typer.core

from nowcast.errors import NowcastError
from nowcast.logs import setup_logging

if TYPE_CHECKING:
    from nowcast.model.ensemble import EnsembleConfig

LOG_OPTIONS = ("--log-level", "--log-file")


class _LogOptionsAnywhere(typer.core.TyperGroup):
    """``--log-level`` and ``--log-file`` accepted after the subcommand too (``nowcast ingest --log-level DEBUG``).

    They belong to the top-level callback, which configures logging once before any subcommand;
    given after the subcommand, they are moved in front of it before parsing.
    """

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        front: list[str] = []
        rest: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                rest += args[i:]
                break
            if arg in LOG_OPTIONS and i + 1 < len(args):
                front += args[i : i + 2]
                i += 2
                continue
            if arg.split("=", 1)[0] in LOG_OPTIONS and "=" in arg:
                front.append(arg)
            else:
                rest.append(arg)
            i += 1
        return super().parse_args(ctx, front + rest)


app = typer.Typer(
    cls=_LogOptionsAnywhere, add_completion=False, no_args_is_help=True, help="Radar precipitation nowcasting."
)
MEMBERS_HELP = (
    "an ensemble of N members (STEPS-like perturbations around the model's cascade forecast): members, "
    "exceedance probabilities and mean"
)
INPUT_TIME_STEP_HELP = (
    "the input's time step in seconds, to run a model trained at another step on it (one lead per input step)"
)
METHOD_HELP = "model (the checkpoint) or sprog (nowcast's own S-PROG, nothing learned: any grid, any lead)"
log = logging.getLogger("nowcast")


@app.callback()
def _main(
    log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING or ERROR"),
    log_file: Path | None = typer.Option(None, help="also write every log record to this file"),
) -> None:
    setup_logging(log_level, log_file)


def fail(error: Exception, code: int = 2) -> None:
    """Report a user-fixable error in one clear message and exit non-zero (no traceback)."""
    log.error(str(error))
    raise typer.Exit(code)


def naming(config: Path | None, error: NowcastError) -> NowcastError:
    """A config value found bad only once used (a path that does not exist) still names the file."""
    from nowcast.errors import ConfigError

    if isinstance(error, ConfigError) and config is not None and str(config) not in str(error):
        return ConfigError(f"{config}: {error}")
    return error


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except NowcastError as e:
        fail(e)


@app.command()
def ingest(
    config: Path = typer.Option(..., "--config", "-c", help="ingest YAML, e.g. configs/ingest/knmi.yaml"),
    engine: str | None = typer.Option(None, help="dask (default), spark or serial"),
    master: str | None = typer.Option(None, help="Spark master URL (yarn, k8s://..., spark://host:port)"),
    address: str | None = typer.Option(None, help="Dask scheduler address (tcp://host:8786)"),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. store.chunk_time=24"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    reader_format: str | None = typer.Option(
        None, "--format", help="reader name or pysteps:NAME (source.reader.format; default: detect by content)"
    ),
) -> None:
    """Ingest radar files into a Zarr store (resumable; bad files are quarantined).

    Exit status: 0 all files ingested, 3 some files quarantined, 1 some chunks failed, 2 bad input.
    """
    from nowcast.config import load_config
    from nowcast.ingest.config import IngestConfig
    from nowcast.ingest.run import run_ingest

    extra = list(overrides or []) + _engine_overrides(engine, master, address)
    extra += [f"source.reader.format={reader_format}"] if reader_format else []
    try:
        cfg = load_config(IngestConfig, config, extra)
        summary = run_ingest(cfg, progress=progress)
    except NowcastError as e:
        fail(naming(config, e))
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items())) or "nothing new"
    log.info("%s: %d of %d times valid; this run: %s", summary.store_path, summary.n_valid, summary.n_times, counts)
    for path, reason in summary.quarantined:
        log.warning("quarantined: %s", reason or path)
    if summary.failed_chunks:
        log.error("%d chunks failed; run the same command again to retry them", len(summary.failed_chunks))
        raise typer.Exit(1)
    if summary.quarantined:
        raise typer.Exit(3)


def _engine_overrides(
    engine: str | None, master: str | None, address: str | None, address_flag: str = "--address"
) -> list[str]:
    """--engine, --master and --address (tune: --scheduler) as config overrides. --master is a
    Spark master and the address a Dask scheduler, so each picks its engine; an --engine that says
    otherwise is an error naming both, never a silent switch."""
    implied = (("--master", master, "spark"), (address_flag, address, "dask"))
    given = [(flag, value, name) for flag, value, name in implied if value]
    if len(given) == 2:
        raise typer.BadParameter(f"--master {master} (Spark) and {address_flag} {address} (Dask) exclude each other")
    extra = [f"engine.name={engine}"] if engine else []
    for flag, value, name in given:
        if engine and engine != name:
            raise typer.BadParameter(
                f"--engine {engine} conflicts with {flag} {value}, which is for the {name} engine: "
                f"use --engine {name} or drop one of them",
                param_hint="--engine",
            )
        key = "engine.spark.master" if name == "spark" else "engine.address"
        extra += [f"{key}={value}"] + ([] if engine else [f"engine.name={name}"])
    return extra


BASELINE_HELP = "a baseline scored beside the model (repeatable; 'none': the model alone)"
DEPRECATED_BASELINES_HELP = "deprecated: --baseline, once per name"


def _baseline_names(baseline: list[str] | None, baselines: str | None, default: list[str]) -> list[str]:
    """The baselines asked for, checked against the registry (its error lists the valid names).

    ``--baselines a,b`` is the deprecated spelling of ``--baseline a --baseline b``; ``none`` (or an
    empty ``--baselines``) asks for none.
    """
    from nowcast.verify.baselines import get_baseline

    names = list(baseline or [])
    if baselines is not None:
        log.warning("--baselines is deprecated: pass --baseline once per name")
        names += [name.strip() for name in baselines.split(",") if name.strip()] or ["none"]
    if not names:
        return list(default)
    if "none" in names:
        if len(names) > 1:
            raise typer.BadParameter("'none' cannot be combined with other baselines", param_hint="--baseline")
        return []
    for name in names:
        get_baseline(name)  # ConfigError: unknown name, the valid ones listed
    return names


def _time_option(value: str | None, flag: str):
    from nowcast.predict.inputs import parse_time

    return parse_time(value, flag)


def _predict_config(config: Path | None, overrides: list[str] | None, **flags):
    """The PredictConfig of ``predict`` and ``evaluate``: the YAML file, then ``key=value``
    overrides, then the flags given (a flag left out changes nothing)."""
    from nowcast.config import load_config
    from nowcast.predict import PredictConfig

    extra = list(overrides or []) + [f"{key}={value}" for key, value in flags.items() if value is not None]
    return load_config(PredictConfig, config, extra)


@app.command("evaluate-baselines")
def evaluate_baselines(
    store: Path = typer.Option(..., help="the Zarr store to score forecasts against"),
    out: Path = typer.Option(..., help="folder for scores.json, scores.md and scores.png"),
    leads: int = typer.Option(12, min=1, help="lead times scored, one per store time step"),
    inputs: int = typer.Option(3, min=2, help="input frames per forecast (extrapolation tracks motion over them)"),
    baseline: list[str] = typer.Option(
        None, help="a baseline to score (repeatable; default: persistence, extrapolation)"
    ),
    baselines: str | None = typer.Option(None, hidden=True, help=DEPRECATED_BASELINES_HELP),
    start: str | None = typer.Option(None, help="earliest init time, e.g. 2024-06-01T00:00"),
    end: str | None = typer.Option(None, help="latest init time"),
    stride: int = typer.Option(1, min=1, help="score every k-th valid start"),
    max_starts: int | None = typer.Option(None, min=1, help="score at most this many starts"),
) -> None:
    """Score the persistence and optical-flow extrapolation baselines over a store, per lead time."""
    from nowcast.store import StoreReader
    from nowcast.verify.baselines import make_forecaster
    from nowcast.verify.evaluate import evaluate
    from nowcast.verify.report import write_reports

    try:
        names = _baseline_names(baseline, baselines, ["persistence", "extrapolation"])
        if not names:
            raise typer.BadParameter("name at least one baseline to score", param_hint="--baseline")
        times = {"start": _time_option(start, "--start"), "end": _time_option(end, "--end")}
        reader = StoreReader(str(store))
        forecasters = {name: make_forecaster(name, reader.pixel_size_m, reader.time_step_s) for name in names}
        result = evaluate(
            reader,
            forecasters,
            num_input_frames=inputs,
            n_leads=leads,
            start=times["start"],
            end=times["end"],
            stride=stride,
            max_starts=max_starts,
        )
    except NowcastError as e:
        fail(e)
    paths = write_reports(result, out)
    log.info(
        "scored %d starts (%d skipped at gaps); reports: %s",
        result.n_starts,
        result.n_skipped_gap,
        ", ".join(str(p) for p in paths.values()),
    )


@app.command()
def inspect(
    files: list[Path] = typer.Argument(..., help="radar files to read (any format the readers know)"),
    reader_format: str = typer.Option("auto", "--format", help="reader name or pysteps:NAME, or auto-detect"),
    quantity: str | None = typer.Option(None, help="ODIM quantity or CF variable to read"),
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
            f"{path}: {name} {scan.time} | {scan.quantity or 'rain rate'} | {scan.grid.describe()} "
            f"| crs {scan.grid.crs}\n"
            f"  valid {valid.mean():.1%}, wet {wet.sum() / max(valid.sum(), 1):.1%} of valid, "
            f"mean {np.nanmean(rain):.3f} mm/h, max {np.nanmax(rain):.2f} mm/h"
        )
    if failed:
        raise typer.Exit(1)


@app.command()
def synth(
    out_dir: Path = typer.Argument(..., help="folder for the archive (one CF NetCDF file per scan + synth.yaml)"),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="synth YAML (SynthConfig keys); default: all defaults"
    ),
    n_scans: int | None = typer.Option(None, "--n-scans", help="number of scan times, missing ones included"),
    height: int | None = typer.Option(None, help="rows (pixels)"),
    width: int | None = typer.Option(None, help="columns (pixels)"),
    seed: int | None = typer.Option(None, help="random seed: the same seed gives the same archive"),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. wet_fraction=0.3"),
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


@app.command()
def train(
    config: Path = typer.Option(..., "--config", "-c", help="train YAML, e.g. configs/train/debug.yaml"),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. optim.max_steps=100"),
    nproc: int = typer.Option(1, "--nproc", min=1, help="processes on this machine; > 1 launches torchrun"),
    resume: bool = typer.Option(False, "--resume", help="continue runs/<name>/last.pt exactly"),
    stop_at: int | None = typer.Option(None, "--stop-at", help="stop with a checkpoint at this step"),
    nnodes: str | None = typer.Option(None, "--nnodes", help="torchrun --nnodes, for several machines"),
    node_rank: int | None = typer.Option(None, "--node-rank", help="torchrun --node-rank"),
    rdzv_endpoint: str | None = typer.Option(None, "--rdzv-endpoint", help="HOST:PORT all nodes meet at"),
    engine: str = typer.Option("torchrun", "--engine", help="torchrun, or spark: one rank per Spark task"),
    master: str | None = typer.Option(None, "--master", help="--engine spark: master URL (default local[N])"),
    num_processes: int | None = typer.Option(None, "--num-processes", min=1, help="--engine spark: DDP ranks"),
    spark_conf: list[str] = typer.Option(None, "--spark-conf", help="--engine spark: spark.key=value (repeatable)"),
) -> None:
    """Train the ConvLSTM nowcaster (torch DDP over --nproc processes; gloo on CPU, nccl on GPUs)."""
    from nowcast.config import load_config
    from nowcast.train.config import TrainConfig

    extra = list(overrides or [])
    try:
        cfg = load_config(TrainConfig, config, extra)  # a bad config stops here, before any launch
    except NowcastError as e:
        fail(e)
    if engine != "torchrun":
        _train_on_engine(config, cfg, engine, master, num_processes or nproc, spark_conf, resume, stop_at)
        return
    if nproc > 1 or nnodes or rdzv_endpoint:
        from nowcast.train.launch import launch, torchrun_argv

        argv = torchrun_argv(str(config), nproc, extra, resume, stop_at, nnodes, node_rank, rdzv_endpoint)
        raise typer.Exit(launch(argv, nproc))
    from nowcast.train.remote import run_training  # loop.train, with run.out_dir allowed to be s3://...

    try:
        result = run_training(cfg, resume=resume, stop_at=stop_at)
    except NowcastError as e:
        fail(naming(config, e))
    log.info("stopped at step %d; checkpoints and metrics.csv in %s", result["step"], result["run_dir"])


def _train_on_engine(config, cfg, engine, master, num_processes, spark_conf, resume, stop_at) -> None:
    """``nowcast train --engine spark``: the ranks as Spark tasks (TorchDistributor)."""
    if engine != "spark":
        raise typer.BadParameter(f"unknown engine {engine!r}; available: torchrun, spark", param_hint="--engine")
    conf = {}
    for item in spark_conf or []:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("spark."):
            raise typer.BadParameter(f"{item!r} is not of the form spark.key=value", param_hint="--spark-conf")
        conf[key] = value
    from nowcast.train.spark_launch import train_on_spark

    try:
        result = train_on_spark(cfg, num_processes, master, resume=resume, stop_at=stop_at, spark_conf=conf)
    except NowcastError as e:
        fail(naming(config, e))
    log.info("stopped at step %d; checkpoints and metrics.csv in %s", result["step"], result["run_dir"])


@app.command()
def tune(
    config: Path = typer.Option(..., "--config", "-c", help="tune YAML, e.g. configs/tune/debug.yaml"),
    engine: str | None = typer.Option(None, "--engine", help="dask (default: a local cluster) or spark"),
    master: str | None = typer.Option(None, "--master", help="Spark master URL (yarn, k8s://..., spark://host:port)"),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://host:8786)"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="run failed trials again"),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. search.n_trials=16"),
) -> None:
    """Hyperparameter search: trials in parallel on Dask or Spark workers, resumable; results sorted by score."""
    from nowcast.config import load_config
    from nowcast.tune import TuneConfig, run_tune

    extra = list(overrides or []) + _engine_overrides(engine, master, scheduler, address_flag="--scheduler")
    try:
        cfg = load_config(TuneConfig, config, extra)
        summary = run_tune(cfg, str(config), retry_failed=retry_failed)
    except NowcastError as e:
        fail(naming(config, e))
    log.info(
        "%d trials (%d complete, %d failed; %d run now); reports: %s",
        len(summary.results),
        summary.n_complete,
        summary.n_failed,
        summary.ran,
        ", ".join(str(p) for p in summary.paths.values()),
    )


@app.command()
def predict(
    ctx: typer.Context,
    input_path: str = typer.Option(..., "--input", help="a Zarr store (path or URL), or a folder of raw radar files"),
    out: str = typer.Option(..., help="forecast file: .nc (CF NetCDF) or .zarr; a path or a URL (s3://...)"),
    checkpoint: str | None = typer.Option(None, help="checkpoint from `nowcast train` (default: the shipped model)"),
    method: str = typer.Option("model", help=METHOD_HELP),
    time: str | None = typer.Option(
        None, help="forecast from the latest valid frame at or before this time (ISO 8601; default: the newest)"
    ),
    leads: int | None = typer.Option(None, min=1, help="lead times to write (default: all the model makes)"),
    plot: bool = typer.Option(False, "--plot", help="also write a PNG panel and an animated GIF beside --out"),
    fallback: str | None = typer.Option(None, help="none, or extrapolation: optical flow when frames are missing"),
    tile_size: int | None = typer.Option(None, min=8, help="forecast in square tiles of this side (pixels)"),
    reader_format: str = typer.Option("auto", "--format", help="raw files: reader name or pysteps:NAME, or auto"),
    input_time_step: int | None = typer.Option(None, min=1, help=INPUT_TIME_STEP_HELP),
    output_grid: str | None = typer.Option(
        None, "--output-grid", help="raw files: model (default: the grid the model ran on) or input (the files' own)"
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="predict YAML (PredictConfig keys)"),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. tile_overlap=64"),
    members: int | None = typer.Option(None, "--members", min=2, help=MEMBERS_HELP),
    seed: int = typer.Option(0, "--seed", help="with --members: the same seed gives the same members"),
    probabilities: str = typer.Option(
        "0.5,1,5,10", "--probabilities", help="with --members: thresholds (mm/h) of the exceedance probabilities"
    ),
) -> None:
    """Forecast the next lead times from the latest input frames; write CF NetCDF/Zarr (and pictures)."""
    from nowcast.predict import load_method, store_window
    from nowcast.predict.inputs import staleness_note
    from nowcast.predict.remote import load_model_from, predict_to
    from nowcast.predict.writer import check_out_path
    from nowcast.store import is_store

    try:
        cfg = _predict_config(
            config,
            overrides,
            leads=leads,
            plot=plot or None,
            fallback=fallback,
            tile_size=tile_size,
            input_time_step_s=input_time_step,
            output_grid=output_grid,
        )
        check_out_path(out)
        until = _time_option(time, "--time")
        # a checkpoint path, a URL, or None for the shipped model; or a method without one
        loaded = load_model_from(checkpoint) if method == "model" else load_method(method, checkpoint, cfg.leads)
        if is_store(input_path):
            from nowcast.store import StoreReader

            window = store_window(StoreReader(input_path), loaded.cfg.num_input_frames, until)
        elif Path(input_path).is_dir():
            window = _raw_window(Path(input_path), loaded, cfg, until, reader_format)
        else:
            raise NowcastError(f"--input {input_path}: neither a nowcast store nor a folder of radar files")
        stale = staleness_note(window, until)
        if stale:
            log.warning("%s", stale)
        if members:
            from nowcast.predict.ensemble import ensemble_to_file, parse_thresholds

            thresholds = parse_thresholds(probabilities)
            result = ensemble_to_file(loaded, window, cfg, out, members, seed, thresholds, _command_line(ctx))
        else:
            result = predict_to(loaded, window, cfg, out, history=_command_line(ctx))
    except NowcastError as e:
        fail(e)
    for kind, path in result["paths"].items():
        log.info("%s: %s", kind, path)


def _command_line(ctx: typer.Context) -> str:
    """The command as parsed (for the output's history attribute)."""
    parts = ["nowcast", ctx.info_name or "predict"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value in (None, False, [], ()) or value == param.default:
            continue
        flag = [param.opts[0]] if param.opts[0].startswith("-") else []
        parts += flag + ([] if value is True else [str(v) for v in (value if isinstance(value, list) else [value])])
    return " ".join(parts)


def _raw_window(folder: Path, loaded, cfg, until, reader_format: str):
    """Raw files -> input window: ingest's readers, each scan regridded to the model's pixel size.

    The model's grid is what ``nowcast.regrid`` makes of the input's (kept within 1 %, area
    average when coarser, bilinear when finer, lon/lat to a local equal-area projection); the
    window remembers the input's own grid for ``--output-grid input``.
    """
    import dataclasses

    from nowcast.ingest.config import ReaderOptions
    from nowcast.ingest.readers import read_scan
    from nowcast.ingest.sources import time_from_name
    from nowcast.predict.raw_input import raw_window
    from nowcast.regrid import Regridder, plan_regrid
    from nowcast.scan import Scan

    options = ReaderOptions(format=reader_format)
    plans: dict[tuple, Regridder] = {}

    def read(path: str) -> Scan:
        scan = read_scan(path, options)
        g = scan.grid
        key = (g.shape, g.x[0], g.y[0], g.pixel_size, g.pixel_size_y, g.crs)
        if key not in plans:
            plans[key] = plan_regrid(g, loaded.pixel_size_m)
            log.info("%s: input grid %s", path, plans[key].describe())
        regrid = plans[key]
        return Scan(scan.time, regrid.apply(scan.rain_rate), regrid.target, scan.source)

    step = cfg.input_time_step_s or loaded.time_step_s  # the files' own step where the user gave it
    window = raw_window(
        folder, read, step, loaded.cfg.num_input_frames, until, time_from_name, cfg.tolerance_s, reader_format != "auto"
    )
    sources = [r.source for r in plans.values() if r.target.same_as(window.frames.grid)]
    if sources and not sources[-1].same_as(window.frames.grid):
        frames = dataclasses.replace(window.frames, input_grid=sources[-1])
        window = dataclasses.replace(window, frames=frames)
    return window


@app.command()
def evaluate(
    store: Path = typer.Option(..., help="the Zarr store to score forecasts against"),
    out: Path = typer.Option(..., help="folder for scores.json, scores.md and scores.png"),
    checkpoint: Path | None = typer.Option(None, help="checkpoint from `nowcast train` (default: the shipped model)"),
    method: str = typer.Option("model", help=METHOD_HELP),
    baseline: list[str] = typer.Option(None, help=BASELINE_HELP + "; default: persistence, extrapolation"),
    baselines: str | None = typer.Option(None, hidden=True, help=DEPRECATED_BASELINES_HELP),
    start: str | None = typer.Option(None, help="earliest init time, e.g. 2024-06-01T00:00"),
    end: str | None = typer.Option(None, help="latest init time"),
    leads: int | None = typer.Option(None, min=1, help="lead times scored (default: all the model makes)"),
    stride: int = typer.Option(1, min=1, help="score every k-th valid start"),
    max_starts: int | None = typer.Option(None, min=1, help="score at most this many starts"),
    tile_size: int | None = typer.Option(None, min=8, help="run the model in square tiles of this side"),
    precision: str | None = typer.Option(
        None, help="auto (default: bfloat16 where the CPU has it natively), float32 or bfloat16"
    ),
    input_time_step: int | None = typer.Option(None, min=1, help=INPUT_TIME_STEP_HELP),
    members: int | None = typer.Option(
        None, "--members", min=2, help="also score the model's ensemble and pySTEPS STEPS, N members each"
    ),
    seed: int = typer.Option(0, "--seed", help="with --members: the ensembles' seed"),
    config: Path | None = typer.Option(None, "--config", "-c", help="predict YAML (PredictConfig keys)"),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. tile_overlap=64"),
) -> None:
    """Score the model against persistence and optical-flow extrapolation over a store, per lead time."""
    from nowcast.predict import check_data_facts, load_method, model_forecaster
    from nowcast.predict.run import lead_count
    from nowcast.store import StoreReader
    from nowcast.verify.baselines import make_forecaster
    from nowcast.verify.evaluate import evaluate as run_evaluation
    from nowcast.verify.report import markdown, write_reports

    try:
        names = _baseline_names(baseline, baselines, ["persistence", "extrapolation"])
        cfg = _predict_config(
            config,
            overrides,
            leads=leads,
            tile_size=tile_size,
            precision=precision,
            input_time_step_s=input_time_step,
        )
        times = {"start": _time_option(start, "--start"), "end": _time_option(end, "--end")}
        loaded = load_method(method, checkpoint, leads)
        reader = StoreReader(str(store))
        step_s, pixel_m = reader.time_step_s, reader.pixel_size_m
        check_data_facts(
            loaded,
            pixel_size_m=pixel_m,
            time_step_s=step_s,
            crs=reader.grid.crs,
            source=reader.path,
            input_time_step_s=cfg.input_time_step_s,
        )
        forecasters = {
            "model": model_forecaster(loaded.model, time_step_s=step_s, pixel_size_m=pixel_m, **cfg.forecast_options())
        }
        forecasters.update({name: make_forecaster(name, pixel_size_m=pixel_m, time_step_s=step_s) for name in names})
        result = run_evaluation(
            reader,
            forecasters,
            num_input_frames=loaded.cfg.num_input_frames,
            n_leads=lead_count(loaded, cfg),
            start=times["start"],
            end=times["end"],
            stride=stride,
            max_starts=max_starts,
        )
    except NowcastError as e:
        fail(naming(config, e))
    paths = write_reports(result, out)
    typer.echo(markdown(result))
    log.info(
        "scored %d starts of %s with %s (%d skipped at gaps); reports: %s",
        result.n_starts,
        loaded.path,
        ", ".join(forecasters),
        result.n_skipped_gap,
        ", ".join(str(p) for p in paths.values()),
    )
    if members:
        window = {"start": times["start"], "end": times["end"], "stride": stride, "max_starts": max_starts}
        try:
            _evaluate_members(loaded, reader, members, seed, lead_count(loaded, cfg), window, out, cfg.ensemble)
        except NowcastError as e:
            fail(e)


def _evaluate_members(
    loaded, reader, n_members: int, seed: int, n_leads: int, window: dict, out: Path, ens: EnsembleConfig
) -> None:
    """``evaluate --members``: the model's ensemble (perturbed as ``ens``, the config's
    ``ensemble`` section) and pySTEPS STEPS on the same starts -> ensemble.*."""
    from nowcast.predict.ensemble import ensemble_forecaster
    from nowcast.verify.ensemble_baselines import make_ensemble_forecaster
    from nowcast.verify.ensemble_evaluate import evaluate_ensembles
    from nowcast.verify.ensemble_report import markdown, write_ensemble_reports

    grid = {"time_step_s": reader.layout.time_step_s, "pixel_size_m": reader.grid.pixel_size}
    forecasters = {
        "model ensemble": ensemble_forecaster(loaded.model, n_members, seed, ens, **grid),
        "steps": make_ensemble_forecaster("steps", n_members, reader.grid.pixel_size, reader.layout.time_step_s, seed),
    }
    result = evaluate_ensembles(reader, forecasters, n_members, loaded.cfg.num_input_frames, n_leads, **window)
    paths = write_ensemble_reports(result, out)
    typer.echo(markdown(result))
    log.info("ensemble reports: %s", ", ".join(str(p) for p in paths.values()))


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("demo-output"), "--out", help="where the demo writes everything"),
    data: Path | None = typer.Option(None, help="a folder of your radar files: forecast them with the shipped model"),
    input_time_step: int | None = typer.Option(None, min=1, help="with --data: " + INPUT_TIME_STEP_HELP),
) -> None:
    """The whole chain on a generated radar archive: synth, ingest, train, forecast, evaluate."""
    from nowcast.demo import run_demo

    try:
        written = run_demo(out_dir, data, input_time_step)
    except NowcastError as e:
        fail(e)
    log.info("demo finished; look at:")
    for kind, path in written.items():
        log.info("  %-12s %s", kind, path)


@app.command()
def watch(
    incoming: Path = typer.Option(..., "--incoming", help="folder the radar scans land in (watched recursively)"),
    store: Path = typer.Option(..., "--store", help="Zarr store the scans are appended to (created if missing)"),
    out: Path = typer.Option(..., "--out", help="folder of the forecasts: <init time>.nc, latest.nc, status.json"),
    checkpoint: str | None = typer.Option(None, help="checkpoint from `nowcast train` (default: the shipped model)"),
    config: Path | None = typer.Option(None, "--config", "-c", help="watch YAML, e.g. configs/watch/default.yaml"),
    poll: float | None = typer.Option(None, "--poll", min=0.01, help="poll every N seconds instead of inotify (NFS)"),
    plot: bool = typer.Option(False, "--plot", help="also write a PNG panel and a GIF beside each forecast"),
    engine: str = typer.Option("watchdog", "--engine", help="watchdog (inotify/polling loop) or spark (a stream)"),
    master: str | None = typer.Option(None, "--master", help="Spark master URL for --engine spark (local[*])"),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. max_wait_s=60 fallback=none"),
) -> None:
    """Ingest each scan as it lands and forecast as soon as its input window is whole (until SIGTERM)."""
    import signal
    import threading

    from nowcast.config import load_config
    from nowcast.predict.loading import load_method
    from nowcast.predict.remote import load_model_from
    from nowcast.watch import WatchConfig
    from nowcast.watch.engines import service_for

    stop = threading.Event()

    def _stop(signum, _frame) -> None:
        log.info("%s: stopping after the current cycle", signal.Signals(signum).name)
        stop.set()

    try:
        extra = list(overrides or []) + ([f"poll_s={poll}"] if poll else [])
        cfg = load_config(WatchConfig, config, extra)
        run_watch = service_for(engine, master)
        if cfg.method == "model":
            loaded = load_model_from(checkpoint)
        else:
            loaded = load_method(cfg.method, checkpoint, cfg.predict.leads)
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        run_watch(incoming, store, out, loaded, cfg, plot, stop)
    except NowcastError as e:
        fail(naming(config, e))


@app.command()
def replay(
    src: Path = typer.Argument(..., help="an archive folder of radar files"),
    dest: Path = typer.Argument(..., help="the folder to play them into (e.g. a watcher's --incoming)"),
    speed: float = typer.Option(60.0, "--speed", help="times faster than the archive's own cadence (0: no waiting)"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="only the first N files"),
) -> None:
    """Copy an archive into a folder at its own cadence sped up (temporary name, then rename)."""
    from nowcast.watch.replay import replay as run_replay

    try:
        delivered = run_replay(src, dest, speed, limit)
    except NowcastError as e:
        fail(e)
    log.info("replayed %d files into %s", len(delivered), dest)
