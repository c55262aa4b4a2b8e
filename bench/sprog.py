"""S-PROG latency: nowcast's torch S-PROG against pySTEPS' own, same input, same run.

One forecast of 12 leads on a 700x700 domain (quick: 128x128) from four frames, on 2 threads,
motion included on both sides (nowcast: its torch Lucas-Kanade; pySTEPS: its dense Lucas-Kanade,
as the ``sprog`` baseline of ``nowcast evaluate`` runs it). Goal: the torch S-PROG >= 3x faster.
The shipped model (an S-PROG corrector: S-PROG plus a small CNN) is timed beside them against
pySTEPS' extrapolation, goal: no slower (>= 1x).
"""

from __future__ import annotations

from pathlib import Path

from bench.predict import N_LEADS, THREADS, _timed, moving_rain

GOAL_SPROG = 3.0
GOAL_SHIPPED = 1.0


def run(quick: bool, out_dir: Path) -> list[dict]:
    import torch

    from nowcast.model import build_model
    from nowcast.predict.forecast import run_model
    from nowcast.predict.loading import default_checkpoint, load_model, sprog_model
    from nowcast.verify.baselines import extrapolation, sprog

    torch.set_num_threads(THREADS)
    size = 128 if quick else 700
    repeats = 1 if quick else 3
    frames = moving_rain(size, 4)
    ours = sprog_model(num_output_frames=N_LEADS).model

    def torch_sprog():
        return run_model(ours, frames)

    def pysteps_sprog():
        return sprog(frames, N_LEADS)

    def pysteps_extrapolation():
        return extrapolation(frames, N_LEADS)

    rows = []
    timed = {}
    for label, fn in (
        ("pySTEPS S-PROG (LK motion + S-PROG)", pysteps_sprog),
        ("nowcast S-PROG (torch, motion included)", torch_sprog),
        ("pySTEPS extrapolation (LK + semi-Lagrangian)", pysteps_extrapolation),
    ):
        fn()  # warm-up: imports, oneDNN kernel choice
        timed[label] = _timed(fn, repeats)
        rows.append({"name": f"{label}, {N_LEADS} leads, {size}x{size}", "value": timed[label], "unit": "s"})
    speedup = timed["pySTEPS S-PROG (LK motion + S-PROG)"] / timed["nowcast S-PROG (torch, motion included)"]
    rows.append(
        {
            "name": "speed-up of nowcast's S-PROG over pySTEPS' S-PROG",
            "value": speedup,
            "unit": "x",
            "goal": f">= {GOAL_SPROG:g}",
            "ok": bool(speedup >= GOAL_SPROG),
        }
    )
    if default_checkpoint().is_file():
        shipped = load_model(default_checkpoint())
        # the same 12 leads as the baseline (the file may make more): same weights, fewer leads
        cfg = shipped.cfg.model_copy(update={"num_output_frames": N_LEADS})
        model = build_model(cfg).eval()
        model.load_state_dict(shipped.model.state_dict())
        inputs = frames[-cfg.num_input_frames :]
        run_model(model, inputs)
        seconds = _timed(lambda: run_model(model, inputs), repeats)
        ratio = timed["pySTEPS extrapolation (LK + semi-Lagrangian)"] / seconds
        rows += [
            {"name": f"shipped model ({shipped.title}), {N_LEADS} leads, {size}x{size}", "value": seconds, "unit": "s"},
            {
                "name": "shipped model: speed relative to pySTEPS extrapolation",
                "value": ratio,
                "unit": "x",
                "goal": f">= {GOAL_SHIPPED:g}",
                "ok": bool(ratio >= GOAL_SHIPPED),
            },
        ]
    return rows
