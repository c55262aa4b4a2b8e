"""Forecast latency: the ConvLSTM against pysteps' optical-flow extrapolation, same input, same run.

One forecast of 12 leads on a 700x700 domain (quick: 128x128) with the model already loaded
(the model config of configs/train/default.yaml, random weights: latency does not depend on
them), on 2 threads under ``inference_mode``, in float32 and with bfloat16 autocast, and a
CPU-sized config beside it; the baseline is ``nowcast.verify``'s extrapolation (pysteps
Lucas-Kanade + semi-Lagrangian). Goal: the model >= 3x faster.
Peak memory of one forecast is measured in a fresh process (tracemalloc does not see torch):
peak RSS (``getrusage``) minus the RSS before the forecast, model and input already loaded,
for the whole domain and in tiles.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_LEADS = 12
THREADS = 2
GOAL_SPEEDUP = 3.0
ROOT = Path(__file__).resolve().parents[1]

# a model sized for CPUs, measured beside the default to show what the goal needs (see the report)
CPU_CONFIG = {"stem_stride": 4, "hidden_channels": [16, 32, 32], "kernel_sizes": [3, 3, 3]}

# runs in a fresh interpreter: argv = model config JSON, frames .npy, threads, run_model options JSON
_MEMORY_SCRIPT = """
import json, resource, sys
import numpy as np, psutil, torch
from nowcast.model import ModelConfig, build_model
from nowcast.predict.forecast import run_model
torch.set_num_threads(int(sys.argv[3]))
model = build_model(ModelConfig.model_validate(json.loads(sys.argv[1]))).eval()
frames = np.load(sys.argv[2])
run_model(model, frames[:, :64, :64])  # load torch's kernels first: their memory is not the forecast's
before = psutil.Process().memory_info().rss
run_model(model, frames, **json.loads(sys.argv[4]))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"before": before, "peak": peak}))
"""


def model_config():
    """The realistic model: configs/train/default.yaml's, else the ModelConfig defaults."""
    from nowcast.config import read_yaml
    from nowcast.model import ModelConfig

    path = ROOT / "configs" / "train" / "default.yaml"
    section = read_yaml(path).get("model", {}) if path.is_file() else {}
    return ModelConfig.model_validate(section)


def moving_rain(size: int, n_frames: int, seed: int = 0) -> np.ndarray:
    """(n_frames, size, size) mm/h: rain cells drifting east-north-east, a no-data rim like a radar's."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cells = rng.uniform(0, size, size=(40, 2))
    peaks = rng.gamma(2.0, 5.0, size=40)
    widths = rng.uniform(0.01, 0.04, size=40) * size
    frames = np.zeros((n_frames, size, size), np.float32)
    for t in range(n_frames):
        for (cy, cx), peak, width in zip(cells, peaks, widths):
            r2 = (yy - cy + 1.0 * t) ** 2 + (xx - cx - 2.0 * t) ** 2
            frames[t] += peak * np.exp(-r2 / (2 * width**2))
    frames[frames < 0.05] = 0
    outside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 > (0.52 * size) ** 2
    frames[:, outside] = np.nan
    return frames


def _timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _peak_memory(cfg, frames: np.ndarray, **options) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.npy"
        np.save(path, frames)
        done = subprocess.run(
            [sys.executable, "-c", _MEMORY_SCRIPT, cfg.model_dump_json(), str(path), str(THREADS), json.dumps(options)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return (result["peak"] - result["before"]) / 2**20


def run(quick: bool, out_dir: Path) -> list[dict]:
    import torch

    from nowcast.model import build_model
    from nowcast.predict.forecast import run_model
    from nowcast.verify.baselines import extrapolation

    torch.set_num_threads(THREADS)
    size = 128 if quick else 700
    repeats = 1 if quick else 3
    base = model_config()
    cfg = type(base).model_validate({**base.model_dump(), "num_output_frames": N_LEADS})
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    frames = moving_rain(size, cfg.num_input_frames)

    extrapolation(frames, N_LEADS)  # warm-up: pysteps' imports
    extrap_s = _timed(lambda: extrapolation(frames, N_LEADS), repeats)
    rows = [{"name": f"pysteps LK + semi-Lagrangian, {N_LEADS} leads, {size}x{size}", "value": extrap_s, "unit": "s"}]
    variants = [
        ("model (default config, float32)", model, {}),
        ("model (default config, bfloat16 autocast)", model, {"bfloat16": True}),
    ]
    cpu_cfg = type(cfg).model_validate({**cfg.model_dump(), **CPU_CONFIG})
    variants.append((f"model (CPU-sized config {CPU_CONFIG}, float32)", build_model(cpu_cfg).eval(), {}))
    from nowcast.predict.config import PredictConfig
    from nowcast.predict.loading import default_checkpoint, load_model

    if default_checkpoint().is_file():  # what `nowcast predict` runs when no checkpoint is given
        shipped = load_model(default_checkpoint()).model
        variants.append(("shipped model (nowcast/assets/model.pt), float32", shipped, {}))
        auto = PredictConfig().use_bfloat16()  # the default precision of `nowcast predict` on this CPU
        variants.append(
            (
                f"shipped model, default precision ({'bfloat16' if auto else 'float32'} here)",
                shipped,
                {"bfloat16": auto},
            )
        )
    for label, net, options in variants:
        inputs = frames[-net.cfg.num_input_frames :]  # (T_in, H, W): the frames this model takes
        run_model(net, inputs, **options)  # warm-up: oneDNN picks its kernels on the first call
        seconds = _timed(lambda net=net, inputs=inputs, options=options: run_model(net, inputs, **options), repeats)
        speedup = extrap_s / seconds
        rows += [
            {"name": f"{label}, {N_LEADS} leads, {size}x{size}", "value": seconds, "unit": "s"},
            {
                "name": f"speed-up over extrapolation: {label}",
                "value": speedup,
                "unit": "x",
                "goal": f">= {GOAL_SPEEDUP:g}",
                "ok": bool(speedup >= GOAL_SPEEDUP),
            },
        ]
    tile = 256 if not quick else 64
    for label, options in (("whole domain", {}), (f"tiles of {tile}", {"tile_size": tile})):
        rows.append(
            {
                "name": f"peak memory of one default-config forecast, {label} (RSS above model + input)",
                "value": _peak_memory(cfg, frames, **options),
                "unit": "MiB",
            }
        )
    (out_dir / "predict.json").write_text(
        json.dumps({"model_config": cfg.model_dump(mode="json"), "threads": THREADS, "rows": rows}, indent=2)
    )
    return rows
