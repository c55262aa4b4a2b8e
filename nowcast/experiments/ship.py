"""Write the shipped model file (``nowcast/assets/model.pt``): what forecasting needs, nothing more.

Either a training run's checkpoint, stripped of optimizer and RNG state, or the S-PROG corrector
with its correction at zero (``--untrained``: nowcast's torch S-PROG exactly), which is what
leave-one-network-out chose when no trained correction beat it (see the model card).

    python -m nowcast.experiments.ship --untrained --leads 24
    python -m nowcast.experiments.ship --checkpoint runs/sprog-corrector/last.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nowcast.checkpoint import FORMAT, VERSION, load_checkpoint, save_checkpoint
from nowcast.model import build_model
from nowcast.model.config import ModelConfig
from nowcast.predict.loading import default_checkpoint

KEPT = ("model", "step", "config", "metrics")  # what forecasting and the model card read


def untrained_sprog(num_input_frames: int, num_output_frames: int) -> dict:
    """The S-PROG corrector as built: its last layer is zero, so it forecasts S-PROG exactly."""
    cfg = ModelConfig(name="sprog", num_input_frames=num_input_frames, num_output_frames=num_output_frames)
    model = build_model(cfg)
    config = {"model": cfg.model_dump(mode="json"), "trained_on": [], "note": "correction at zero: S-PROG"}
    return {"format": FORMAT, "version": VERSION, "model": model.state_dict(), "step": 0, "config": config}


def from_run(path: Path) -> dict:
    """A training checkpoint without what only resuming needs."""
    ckpt = load_checkpoint(path)
    return {"format": FORMAT, "version": VERSION, **{key: ckpt[key] for key in KEPT if key in ckpt}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a checkpoint written by `nowcast train`")
    source.add_argument("--untrained", action="store_true", help="the S-PROG corrector with no correction")
    parser.add_argument("--inputs", type=int, default=4, help="input frames (--untrained)")
    parser.add_argument("--leads", type=int, default=24, help="lead times it forecasts (--untrained)")
    parser.add_argument("--out", type=Path, default=default_checkpoint())
    args = parser.parse_args(argv)
    payload = untrained_sprog(args.inputs, args.leads) if args.untrained else from_run(args.checkpoint)
    path = save_checkpoint(args.out, payload)
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
