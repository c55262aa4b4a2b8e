"""Ensemble speed: nowcast's torch STEPS members against pySTEPS' STEPS, same input, same run.

20 members of 12 leads on a 700x700 domain (quick: 4 members, 128x128) from four frames of
``predict.moving_rain``, motion included on both sides, 2 threads each: torch's intra-op
threads for nowcast (the shipped model's forecast as the control, as ``predict --members``),
``num_workers=2`` and 2 BLAS/OpenMP threads for pySTEPS (as ``nowcast evaluate --members``
runs it, ``verify.ensemble_baselines.steps``). Each side runs in its own fresh process, so its
peak memory is its own: peak RSS (``getrusage``) of the process, and above what it held
before the forecast (imports, input and model loaded, a small warm-up run done).
Goal: nowcast's ensemble >= 2x faster (wall time). The CPU time of each side is given beside
it: on a machine shared with other work, two threads wait for each other and the wall times
say more about the neighbours than about the code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.predict import N_LEADS, ROOT, THREADS, moving_rain

GOAL_SPEEDUP = 2.0

# runs in a fresh interpreter: argv = side ("nowcast" or "steps"), frames .npy, members, leads, threads
_SCRIPT = """
import json, resource, sys, time
import numpy as np, psutil, torch
side, frames, members, leads, threads = sys.argv[1], np.load(sys.argv[2]), *map(int, sys.argv[3:])
torch.set_num_threads(threads)
if side == "nowcast":
    from nowcast.predict.ensemble import run_ensemble
    from nowcast.predict.loading import default_checkpoint, load_model
    model = load_model(default_checkpoint()).model
    def forecast(x, n):
        return np.concatenate(list(run_ensemble(model, x, leads, n, 0)))
else:
    from nowcast.verify.ensemble_baselines import steps
    def forecast(x, n):
        return steps(x, leads, n, seed=0, num_workers=threads)
forecast(frames[:, :64, :64], 2)  # imports, kernels: not the forecast's time or memory
before = psutil.Process().memory_info().rss
cpu = psutil.Process().cpu_times()
started = time.perf_counter()
out = forecast(frames, members)
seconds = time.perf_counter() - started
cpu_seconds = sum(psutil.Process().cpu_times()[:2]) - sum(cpu[:2])
assert out.shape == (members, leads, *frames.shape[1:]), out.shape
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "before": before, "peak": peak}))
"""


def _one_side(side: str, frames_path: Path, members: int) -> dict:
    threads = str(THREADS)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, side, str(frames_path), str(members), str(N_LEADS), threads],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool, out_dir: Path) -> list[dict]:
    size = 128 if quick else 700
    members = 4 if quick else 20
    frames = moving_rain(size, 4)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.npy"
        np.save(path, frames)
        sides = {
            "pySTEPS STEPS": _one_side("steps", path, members),
            "nowcast ensemble (torch)": _one_side("nowcast", path, members),
        }
    rows = []
    for label, result in sides.items():
        what = f"{label}, {members} members, {N_LEADS} leads, {size}x{size}, {THREADS} threads"
        rows += [
            {"name": what, "value": result["seconds"], "unit": "s"},
            {"name": f"CPU time (user + system, all threads): {label}", "value": result["cpu_seconds"], "unit": "s"},
            {"name": f"peak RSS of the process: {label}", "value": result["peak"] / 2**20, "unit": "MiB"},
            {
                "name": f"peak RSS above imports + input: {label}",
                "value": (result["peak"] - result["before"]) / 2**20,
                "unit": "MiB",
            },
        ]
    speedup = sides["pySTEPS STEPS"]["seconds"] / sides["nowcast ensemble (torch)"]["seconds"]
    rows.append(
        {
            "name": "speed-up of nowcast's ensemble over pySTEPS STEPS",
            "value": speedup,
            "unit": "x",
            "goal": f">= {GOAL_SPEEDUP:g}",
            "ok": bool(speedup >= GOAL_SPEEDUP),
        }
    )
    (out_dir / "ensemble.json").write_text(json.dumps({"threads": THREADS, "members": members, "rows": rows}, indent=2))
    return rows
