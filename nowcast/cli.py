"""The `nowcast` command: thin, each subcommand parses, loads config and calls one function.

Heavy imports (torch, dask, pyspark) happen inside the commands so `nowcast --help` is instant.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from nowcast.errors import NowcastError
from nowcast.logs import setup_logging

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Radar precipitation nowcasting.")
MEMBERS_HELP = (
    "an ensemble of N members (STEPS-like perturbations around the model's cascade forecast): members, "
    "exceedance probabilities and mean"
)
INPUT_TIME_STEP_HELP = (
    "the input's time step in seconds, to run a model trained at another step on it (one lead per input step)"
)
log = logging.getLogger("nowcast")


@app.callback()
def _main(log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING or ERROR")) -> None:
    setup_logging(log_level)


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
) -> None:
    """Ingest radar files into a Zarr store (resumable; bad files are quarantined).

    Exit status: 0 all files ingested, 3 some files quarantined, 1 some chunks failed, 2 bad input.
    """
    from nowcast.config import load_config
    from nowcast.ingest.config import IngestConfig
    from nowcast.ingest.run import run_ingest

    extra = list(overrides or [])
    extra += [f"engine.name={engine}"] if engine else []
    extra += [f"engine.spark.master={master}", "engine.name=spark"] if master else []
    extra += [f"engine.address={address}"] if address else []
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


@app.command("evaluate-baselines")
def evaluate_baselines(
    store: Path = typer.Option(..., help="the Zarr store to score forecasts against"),
    out: Path = typer.Option(..., help="folder for scores.json, scores.md and scores.png"),
    leads: int = typer.Option(12, min=1, help="lead times scored, one per store time step"),
    inputs: int = typer.Option(3, min=2, help="input frames per forecast (extrapolation tracks motion over them)"),
    baseline: list[str] = typer.Option(["persistence", "extrapolation"], help="a baseline to score (repeatable)"),
    start: str | None = typer.Option(None, help="earliest init time, e.g. 2024-06-01T00:00"),
    end: str | None = typer.Option(None, help="latest init time"),
    stride: int = typer.Option(1, min=1, help="score every k-th valid start"),
    max_starts: int | None = typer.Option(None, min=1, help="score at most this many starts"),
) -> None:
    """Score the persistence and optical-flow extrapolation baselines over a store, per lead time."""
    import numpy as np

    from nowcast.store import StoreReader
    from nowcast.verify.baselines import BASELINES, make_forecaster
    from nowcast.verify.evaluate import evaluate
    from nowcast.verify.report import write_reports

    unknown = [name for name in baseline if name not in BASELINES]
    if unknown:
        raise typer.BadParameter(
            f"unknown baseline {unknown[0]!r}; available: {', '.join(sorted(BASELINES))}", param_hint="--baseline"
        )
    times = {}
    for hint, value in (("--start", start), ("--end", end)):
        try:
            times[hint] = None if value is None else np.datetime64(value, "s")
        except ValueError:
            raise typer.BadParameter(
                f"{value!r} is not a time; use ISO 8601, e.g. 2024-06-01T12:00", param_hint=hint
            ) from None
    try:
        reader = StoreReader(str(store))
        forecasters = {
            name: make_forecaster(name, reader.grid.pixel_size, reader.layout.time_step_s) for name in baseline
        }
        result = evaluate(
            reader,
            forecasters,
            num_input_frames=inputs,
            n_leads=leads,
            start=times["--start"],
            end=times["--end"],
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
    reader_format: str = typer.Option("auto", "--format", help="reader name, or auto-detect by content"),
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
            f"{path}: {name} {scan.time} | {scan.grid.describe()} | crs {scan.grid.crs}\n"
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
) -> None:
    """Train the ConvLSTM nowcaster (torch DDP over --nproc processes; gloo on CPU, nccl on GPUs)."""
    from nowcast.config import load_config
    from nowcast.train.config import TrainConfig

    extra = list(overrides or [])
    try:
        cfg = load_config(TrainConfig, config, extra)  # a bad config stops here, before any launch
    except NowcastError as e:
        fail(e)
    if nproc > 1 or nnodes or rdzv_endpoint:
        from nowcast.train.launch import launch, torchrun_argv

        argv = torchrun_argv(str(config), nproc, extra, resume, stop_at, nnodes, node_rank, rdzv_endpoint)
        raise typer.Exit(launch(argv, nproc))
    from nowcast.train.loop import train as run_training

    try:
        result = run_training(cfg, resume=resume, stop_at=stop_at)
    except NowcastError as e:
        fail(naming(config, e))
    log.info("stopped at step %d; checkpoints and metrics.csv in %s", result["step"], result["run_dir"])


@app.command()
def predict(
    ctx: typer.Context,
    input_path: Path = typer.Option(..., "--input", help="a Zarr store, or a folder of raw radar files"),
    out: Path = typer.Option(..., help="forecast file: .nc (CF NetCDF) or .zarr"),
    checkpoint: Path | None = typer.Option(None, help="checkpoint from `nowcast train` (default: the shipped model)"),
    time: str | None = typer.Option(
        None, help="forecast from the latest valid frame at or before this time (ISO 8601; default: the newest)"
    ),
    leads: int | None = typer.Option(None, min=1, help="lead times to write (default: all the model makes)"),
    plot: bool = typer.Option(False, "--plot", help="also write a PNG panel and an animated GIF beside --out"),
    fallback: str | None = typer.Option(None, help="none, or extrapolation: optical flow when frames are missing"),
    tile_size: int | None = typer.Option(None, min=8, help="forecast in square tiles of this side (pixels)"),
    reader_format: str = typer.Option("auto", "--format", help="raw files: reader name, or auto-detect"),
    input_time_step: int | None = typer.Option(None, min=1, help=INPUT_TIME_STEP_HELP),
    config: Path | None = typer.Option(None, "--config", "-c", help="predict YAML (PredictConfig keys)"),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. tile_overlap=64"),
    members: int | None = typer.Option(None, "--members", min=2, help=MEMBERS_HELP),
    seed: int = typer.Option(0, "--seed", help="with --members: the same seed gives the same members"),
    probabilities: str = typer.Option(
        "0.5,1,5,10", "--probabilities", help="with --members: thresholds (mm/h) of the exceedance probabilities"
    ),
) -> None:
    """Forecast the next lead times from the latest input frames; write CF NetCDF/Zarr (and pictures)."""
    from nowcast.config import load_config
    from nowcast.predict import PredictConfig, load_model, predict_to_file, resolve_checkpoint, store_window
    from nowcast.predict.inputs import parse_time
    from nowcast.predict.writer import check_out_path

    extra = list(overrides or [])
    extra += [f"leads={leads}"] if leads is not None else []
    extra += ["plot=true"] if plot else []
    extra += [f"fallback={fallback}"] if fallback else []
    extra += [f"tile_size={tile_size}"] if tile_size is not None else []
    extra += [f"input_time_step_s={input_time_step}"] if input_time_step is not None else []
    try:
        cfg = load_config(PredictConfig, config, extra)
        check_out_path(out)
        until = parse_time(time)
        loaded = load_model(resolve_checkpoint(checkpoint))
        if (input_path / "zarr.json").is_file():
            from nowcast.store import StoreReader

            window = store_window(StoreReader(str(input_path)), loaded.cfg.num_input_frames, until)
        elif input_path.is_dir():
            window = _raw_window(input_path, loaded, cfg, until, reader_format)
        else:
            raise NowcastError(f"--input {input_path}: neither a nowcast store nor a folder of radar files")
        if members:
            from nowcast.predict.ensemble import ensemble_to_file, parse_thresholds

            thresholds = parse_thresholds(probabilities)
            result = ensemble_to_file(loaded, window, cfg, out, members, seed, thresholds, _command_line(ctx))
        else:
            result = predict_to_file(loaded, window, cfg, out, history=_command_line(ctx))
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
    """Raw files -> input window: ingest's readers, coarsened to the model's pixel size when a whole multiple."""
    from nowcast.errors import CheckpointError, ConfigError
    from nowcast.ingest.align import plan_spatial
    from nowcast.ingest.config import AlignConfig, ReaderOptions
    from nowcast.ingest.readers import read_scan
    from nowcast.ingest.sources import time_from_name
    from nowcast.predict.raw_input import raw_window
    from nowcast.scan import Scan

    options = ReaderOptions(format=reader_format)
    target = loaded.pixel_size_m

    def read(path: str) -> Scan:
        scan = read_scan(path, options)
        if target is None or scan.grid.pixel_size >= target * (1 - 1e-6):
            return scan  # same size, or coarser: check_data_facts reports the mismatch
        try:
            plan = plan_spatial(scan.grid, AlignConfig(pixel_size_m=target))
        except ConfigError:
            raise CheckpointError(
                f"{path}: pixel size {scan.grid.pixel_size:g} m cannot be coarsened to the "
                f"checkpoint's pixel_size_m {target:g} m (not a whole multiple)"
            ) from None
        return Scan(scan.time, plan.apply(scan.rain_rate), plan.target, scan.source)

    step = cfg.input_time_step_s or loaded.time_step_s  # the files' own step where the user gave it
    return raw_window(folder, read, step, loaded.cfg.num_input_frames, until, time_from_name, cfg.tolerance_s)


@app.command()
def evaluate(
    store: Path = typer.Option(..., help="the Zarr store to score forecasts against"),
    out: Path = typer.Option(..., help="folder for scores.json, scores.md and scores.png"),
    checkpoint: Path | None = typer.Option(None, help="checkpoint from `nowcast train` (default: the shipped model)"),
    baselines: str = typer.Option(
        "persistence,extrapolation", help="baselines scored beside the model, comma-separated"
    ),
    start: str | None = typer.Option(None, help="earliest init time, e.g. 2024-06-01T00:00"),
    end: str | None = typer.Option(None, help="latest init time"),
    leads: int | None = typer.Option(None, min=1, help="lead times scored (default: all the model makes)"),
    stride: int = typer.Option(1, min=1, help="score every k-th valid start"),
    max_starts: int | None = typer.Option(None, min=1, help="score at most this many starts"),
    tile_size: int | None = typer.Option(None, min=8, help="run the model in square tiles of this side"),
    precision: str = typer.Option("auto", help="auto (bfloat16 where the CPU has it natively), float32 or bfloat16"),
    input_time_step: int | None = typer.Option(None, min=1, help=INPUT_TIME_STEP_HELP),
    members: int | None = typer.Option(
        None, "--members", min=2, help="also score the model's ensemble and pySTEPS STEPS, N members each"
    ),
    seed: int = typer.Option(0, "--seed", help="with --members: the ensembles' seed"),
) -> None:
    """Score the model against persistence and optical-flow extrapolation over a store, per lead time."""
    from nowcast.config import validate
    from nowcast.predict import PredictConfig, check_data_facts, load_model, model_forecaster, resolve_checkpoint
    from nowcast.predict.inputs import parse_time
    from nowcast.store import StoreReader
    from nowcast.verify.baselines import BASELINES, make_forecaster
    from nowcast.verify.evaluate import evaluate as run_evaluation
    from nowcast.verify.report import markdown, write_reports

    names = [name.strip() for name in baselines.split(",") if name.strip()]
    unknown = [name for name in names if name not in BASELINES]
    if unknown:
        raise typer.BadParameter(
            f"unknown baseline {unknown[0]!r}; available: {', '.join(sorted(BASELINES))}", param_hint="--baselines"
        )
    try:
        times = {"start": parse_time(start, "--start"), "end": parse_time(end, "--end")}
        loaded = load_model(resolve_checkpoint(checkpoint))
        reader = StoreReader(str(store))
        check_data_facts(
            loaded, reader.grid.pixel_size, reader.layout.time_step_s, reader.grid.crs, reader.path, input_time_step
        )
        n_leads = leads or loaded.cfg.num_output_frames
        if n_leads > loaded.cfg.num_output_frames:
            raise typer.BadParameter(
                f"the model forecasts {loaded.cfg.num_output_frames} lead times", param_hint="--leads"
            )
        options = validate(
            PredictConfig, {"tile_size": tile_size, "precision": precision}, "command line"
        ).forecast_options()
        grid = {"time_step_s": reader.layout.time_step_s, "pixel_size_m": reader.grid.pixel_size}
        forecasters = {"model": model_forecaster(loaded.model, **grid, **options)}
        forecasters.update(
            {name: make_forecaster(name, reader.grid.pixel_size, reader.layout.time_step_s) for name in names}
        )
        result = run_evaluation(
            reader,
            forecasters,
            num_input_frames=loaded.cfg.num_input_frames,
            n_leads=n_leads,
            start=times["start"],
            end=times["end"],
            stride=stride,
            max_starts=max_starts,
        )
    except NowcastError as e:
        fail(e)
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
            _evaluate_members(loaded, reader, members, seed, n_leads, window, out)
        except NowcastError as e:
            fail(e)


def _evaluate_members(loaded, reader, n_members: int, seed: int, n_leads: int, window: dict, out: Path) -> None:
    """``evaluate --members``: the model's ensemble and pySTEPS STEPS on the same starts -> ensemble.*."""
    from nowcast.predict.ensemble import ensemble_forecaster
    from nowcast.verify.ensemble_baselines import make_ensemble_forecaster
    from nowcast.verify.ensemble_evaluate import evaluate_ensembles
    from nowcast.verify.ensemble_report import markdown, write_ensemble_reports

    grid = {"time_step_s": reader.layout.time_step_s, "pixel_size_m": reader.grid.pixel_size}
    forecasters = {
        "model ensemble": ensemble_forecaster(loaded.model, n_members, seed, **grid),
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
