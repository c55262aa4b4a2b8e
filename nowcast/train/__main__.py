"""Entry point for torchrun: ``torchrun --nproc-per-node N -m nowcast.train --config X.yaml [key=value ...]``."""

from __future__ import annotations

import argparse
import sys

from nowcast.config import load_config
from nowcast.errors import NowcastError
from nowcast.logs import setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nowcast.train")
    parser.add_argument("--config", required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--stop-at", type=int, default=None, help="stop (with a checkpoint) at this step")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("overrides", nargs="*", help="key=value")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    from nowcast.train.config import TrainConfig
    from nowcast.train.remote import run_training  # loop.train, with run.out_dir allowed to be s3://...

    try:
        run_training(load_config(TrainConfig, args.config, args.overrides), resume=args.resume, stop_at=args.stop_at)
    except NowcastError as e:
        import logging

        logging.getLogger("nowcast").error(str(e))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
