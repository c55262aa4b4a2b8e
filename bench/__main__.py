"""Run every benchmark and print one table; results also go to bench-output/results.json.

Usage: python -m bench [--quick] [name ...]   (names: the modules listed in BENCHMARKS)
Each benchmark module has ``run(quick: bool, out_dir: Path) -> list[dict]``, one dict per
measurement with keys ``name``, ``value``, ``unit`` and optionally ``goal`` and ``ok``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
from pathlib import Path

from rich.console import Console
from rich.table import Table

BENCHMARKS = ["ingest", "spark", "train", "predict", "sprog", "ensemble", "scaleout", "watch"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", default=BENCHMARKS, help=f"any of {BENCHMARKS}")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument("--out", default="bench-output", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    console = Console()
    for name in args.names:
        if name not in BENCHMARKS:
            parser.error(f"unknown benchmark {name!r}; available: {', '.join(BENCHMARKS)}")
        module = importlib.import_module(f"bench.{name}")
        console.rule(f"benchmark: {name}")
        for row in module.run(quick=args.quick, out_dir=args.out):
            rows.append({"benchmark": name, **row})
            console.print(row)
    table = Table("benchmark", "measurement", "value", "unit", "goal", "ok")
    for row in rows:
        value = row["value"]
        table.add_row(
            row["benchmark"],
            row["name"],
            f"{value:.4g}" if isinstance(value, float) else str(value),
            row.get("unit", ""),
            str(row.get("goal", "")),
            {True: "yes", False: "NO"}.get(row.get("ok"), ""),
        )
    console.print(table)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
