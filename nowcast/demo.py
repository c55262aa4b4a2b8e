"""`nowcast demo`: the whole chain on a generated archive, as a user would run it.

Each step is the real `nowcast` command in a child process, so the demo shows (and checks)
exactly what a user types: synth -> ingest (Dask) -> train -> predict (+ pictures) -> evaluate.
With ``data`` it forecasts the user's own radar files with the shipped model instead.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

from nowcast.errors import NowcastError

log = logging.getLogger(__name__)

DEMO_CONFIGS = {
    "synth": Path("configs/synth/demo.yaml"),
    "ingest": Path("configs/ingest/demo.yaml"),
    "train": Path("configs/train/demo.yaml"),
}


def _nowcast(step: str, args: list[str]) -> None:
    """Run one `nowcast` command (no shell), streaming its output; stop the demo if it fails."""
    from rich.markup import escape

    # paths may hold markup-like text ("[/abs/path]"): only the step name is markup
    log.info("[bold]%s[/bold]: nowcast %s", escape(step), escape(" ".join(args)), extra={"markup": True})
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "nowcast", *args], check=False)
    if done.returncode not in (0, 3):  # 3: ingest quarantined some files, which the demo reports
        raise NowcastError(f"demo step {step!r} failed (exit status {done.returncode}); see the messages above")
    log.info("%s done in %.0f s", step, time.monotonic() - started)


def _held_out_start(store_path: Path) -> str:
    """First time of the period training held out for validation: the train config's own split."""
    import numpy as np

    from nowcast.config import load_config
    from nowcast.store import StoreReader
    from nowcast.train.config import TrainConfig
    from nowcast.train.data import validation_times

    cfg = load_config(TrainConfig, DEMO_CONFIGS["train"], [f"data.stores=[{store_path}]"])
    reader = StoreReader(str(store_path))
    held_out = np.flatnonzero(validation_times(reader, cfg.data))
    if held_out.size == 0:
        raise NowcastError(f"{DEMO_CONFIGS['train']} holds no period out for validation; the demo evaluates on it")
    return str(reader.times[held_out[0]])


def run_demo(out_dir: Path, data: Path | None = None, input_time_step_s: int | None = None) -> dict[str, Path]:
    """Run the demo into ``out_dir``; returns what it wrote, by kind.

    With ``data``, ``input_time_step_s`` runs the shipped model at those files' own time step.
    """
    for path in DEMO_CONFIGS.values():
        if not path.is_file():
            raise NowcastError(f"{path} not found: run the demo from the repository's top folder (`make demo`)")
    out_dir.mkdir(parents=True, exist_ok=True)
    forecast = out_dir / "forecast.nc"
    if data is not None:
        step = ["--input-time-step", str(input_time_step_s)] if input_time_step_s else []
        _nowcast("forecast your files", ["predict", "--input", str(data), "--out", str(forecast), "--plot", *step])
        return {"forecast": forecast, "panel": forecast.with_suffix(".png"), "animation": forecast.with_suffix(".gif")}

    archive, store = out_dir / "archive", out_dir / "store.zarr"
    run_name = time.strftime("demo-%Y%m%dT%H%M%S")  # a new run each time: a second `make demo` keeps the first
    checkpoint = out_dir / "runs" / run_name / "best.pt"
    scores = out_dir / "scores"
    _nowcast("1/5 synthetic archive", ["synth", str(archive), "--config", str(DEMO_CONFIGS["synth"])])
    _nowcast(
        "2/5 ingest with Dask",
        ["ingest", "--config", str(DEMO_CONFIGS["ingest"]), f"source.paths=[{archive}]", f"store.path={store}"],
    )
    _nowcast(
        "3/5 train",
        [
            "train",
            "--config",
            str(DEMO_CONFIGS["train"]),
            f"data.stores=[{store}]",
            f"run.out_dir={out_dir / 'runs'}",
            f"run.name={run_name}",
        ],
    )
    _nowcast(
        "4/5 forecast",
        ["predict", "--checkpoint", str(checkpoint), "--input", str(store), "--out", str(forecast), "--plot"],
    )
    _nowcast(
        "5/5 evaluate on the held-out period",
        [
            "evaluate",
            "--checkpoint",
            str(checkpoint),
            "--store",
            str(store),
            "--out",
            str(scores),
            "--start",
            _held_out_start(store),
            "--stride",
            "3",
        ],
    )
    return {
        "forecast": forecast,
        "panel": forecast.with_suffix(".png"),
        "animation": forecast.with_suffix(".gif"),
        "scores": scores / "scores.md",
        "score plot": scores / "scores.png",
        "store": store,
        "checkpoint": checkpoint,
    }
