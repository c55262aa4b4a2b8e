"""Leave-one-network-out: judge a training config by radar networks it never saw.

For each network of ``configs/lono/networks.yaml``: train the config on the stores of all the
other networks (``nowcast train``), then score the checkpoint on every window of the left-out
network's stores (``nowcast evaluate``, with the baselines and their paired bootstrap intervals),
up to one hour ahead at that network's own time step. ``table`` gathers the folds into one
Markdown table: the numbers the model card quotes.

Why: a choice made on one event per network overfits it; a network the model never saw is what
every user outside the training data gets.

    python -m nowcast.experiments.lono --config configs/train/sprog-corrector.yaml
    python -m nowcast.experiments.lono --config ... --holdout knmi --stage evaluate
    python -m nowcast.experiments.lono --config ... --stage table
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from nowcast.store import StoreReader

NETWORKS_FILE = Path("configs/lono/networks.yaml")
HORIZON_S = 3600  # score up to one hour ahead: the leads every network has
# headline scores and leads (minutes); FBI: forecast wet area / observed (frequency bias), the collapse check
TABLE = (("CSI@1", (5, 15, 30, 60)), ("CSI@5", (30,)), ("MAE", (5, 30, 60)), ("FBI@1", (30, 60)), ("FBI@5", (30,)))


def load_networks(path: Path = NETWORKS_FILE) -> dict[str, list[str]]:
    """Network name -> its stores (a network may hold several products, e.g. two BOM radars)."""
    networks = yaml.safe_load(path.read_text())["networks"]
    return {name: list(stores) for name, stores in networks.items()}


def _nowcast(*args: str) -> None:
    command = [sys.executable, "-m", "nowcast", *args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def run_dir(out_root: Path, holdout: str) -> Path:
    return out_root / f"without-{holdout}"


def train(
    config: Path, networks: dict[str, list[str]], holdout: str, out_root: Path, extra: list[str], also: list[str]
) -> Path:
    """Train ``config`` on every network but ``holdout`` (and the stores ``also``); the run's folder."""
    stores = [store for name, group in networks.items() if name != holdout for store in group] + also
    _nowcast(
        "train",
        "--config",
        str(config),
        f"data.stores=[{','.join(stores)}]",
        f"run.out_dir={out_root}",
        f"run.name=without-{holdout}",
        *extra,
    )
    return run_dir(out_root, holdout)


def leads_within(store: str, horizon_s: int = HORIZON_S, most: int = 12) -> int:
    """Leads up to ``horizon_s`` at the store's own time step (at most ``most``)."""
    return min(most, math.ceil(horizon_s / StoreReader(store).layout.time_step_s))


def evaluate(checkpoint: Path, stores: list[str], out: Path, baselines: str) -> None:
    """Score ``checkpoint`` on every window of each store, into ``out/<store name>``."""
    for store in stores:
        _nowcast(
            "evaluate",
            "--store",
            store,
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out / Path(store).stem),
            *[arg for name in baselines.split(",") for arg in ("--baseline", name.strip() or "none")],
            "--leads",
            str(leads_within(store)),
        )


def _with_frequency_bias(scores: dict) -> dict:
    """Adds FBI@t = POD / (1 - FAR) = (hits + false alarms) / (hits + misses) for every threshold."""
    out = dict(scores)
    for name in scores:
        if name.startswith("POD@") and "FAR@" + name[4:] in scores:
            pod, far = scores[name], scores["FAR@" + name[4:]]
            out["FBI@" + name[4:]] = [
                None if p is None or f is None or f >= 1 else p / (1 - f) for p, f in zip(pod, far)
            ]
    return out


def _at_minutes(scores: list, lead_minutes: list[float], minutes: int) -> Any:
    """The score at the lead nearest ``minutes`` (None past the last lead or half a step or more off)."""
    if not lead_minutes:
        return None
    k = min(range(len(lead_minutes)), key=lambda i: abs(lead_minutes[i] - minutes))
    step = lead_minutes[0]
    return scores[k] if abs(lead_minutes[k] - minutes) < step / 2 else None


def fold_results(out_root: Path, networks: dict[str, list[str]]) -> Iterator[tuple[str, str, dict]]:
    """(left-out network, store name, evaluate's scores.json) of every fold scored so far."""
    for holdout, stores in networks.items():
        for store in stores:
            path = run_dir(out_root, holdout) / "evaluate" / Path(store).stem / "scores.json"
            if path.is_file():
                yield holdout, Path(store).stem, json.loads(path.read_text())


def table(out_root: Path, networks: dict[str, list[str]]) -> str:
    """One Markdown table: per left-out store and method, the headline scores by lead."""
    columns = [(score, minutes) for score, leads in TABLE for minutes in leads]
    header = "| left out | store | starts | method | " + " | ".join(f"{s} +{m}" for s, m in columns) + " |"
    lines = [header, "|" + "---|" * (4 + len(columns))]
    for holdout, store, result in fold_results(out_root, networks):
        for method, scores in result["methods"].items():
            scores = _with_frequency_bias(scores)
            cells = []
            for score, minutes in columns:
                value = _at_minutes(scores.get(score, []), result["lead_minutes"], minutes)
                cells.append("-" if value is None else f"{value:.3f}")
            name = "**model**" if method == "model" else method
            row = [holdout, store, str(result["n_starts"]), name, *cells]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def differences(out_root: Path, networks: dict[str, list[str]], against: str = "sprog") -> str:
    """Model minus ``against`` at +30 and +60 min per left-out store, with evaluate's bootstrap intervals."""
    columns = [("CSI@1", 30), ("CSI@1", 60), ("CSI@5", 30), ("MAE", 30), ("MAE", 60)]
    lines = [
        f"| left out | store | {' | '.join(f'{s} +{m}' for s, m in columns)} |",
        "|" + "---|" * (2 + len(columns)),
    ]
    for holdout, store, result in fold_results(out_root, networks):
        entry = result["comparisons"].get(against)
        if entry is None:
            continue
        cells = []
        for score, minutes in columns:
            k = _at_minutes(list(range(len(result["lead_minutes"]))), result["lead_minutes"], minutes)
            if k is None or entry[score]["difference"][k] is None:
                cells.append("-")
                continue
            e = entry[score]
            interval = "" if e["low"][k] is None else f" [{e['low'][k]:+.4f}, {e['high'][k]:+.4f}]"
            cells.append(f"{e['difference'][k]:+.4f}{interval} ({e['better_starts'][k]}/{e['scored_starts'][k]})")
        lines.append(f"| {holdout} | {store} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="the train config judged (required to train)")
    parser.add_argument("--out", type=Path, default=Path("runs/lono"), help="folder of the folds")
    parser.add_argument("--holdout", action="append", help="network(s) to leave out (default: each in turn)")
    parser.add_argument("--stage", choices=["all", "train", "evaluate", "table"], default="all")
    parser.add_argument("--checkpoint", default="last.pt", help="which checkpoint of each fold is scored")
    parser.add_argument("--baselines", default="persistence,extrapolation,sprog", help="comma-separated, or none")
    parser.add_argument("--networks", type=Path, default=NETWORKS_FILE)
    parser.add_argument("--also", action="append", default=[], help="a store every fold trains on (e.g. synthetic)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the train config")
    args = parser.parse_args(argv)
    networks = load_networks(args.networks)
    holdouts = args.holdout or list(networks)
    unknown = sorted(set(holdouts) - set(networks))
    if unknown:
        parser.error(f"unknown network {unknown[0]!r}; {args.networks} lists {', '.join(networks)}")
    for holdout in holdouts if args.stage != "table" else []:
        if args.stage in ("all", "train"):
            if args.config is None:
                parser.error("--config is required to train")
            train(args.config, networks, holdout, args.out, args.overrides, args.also)
        if args.stage in ("all", "evaluate"):
            folder = run_dir(args.out, holdout)
            evaluate(folder / args.checkpoint, networks[holdout], folder / "evaluate", args.baselines)
    text = table(args.out, networks) + "\n\nModel minus pySTEPS' S-PROG:\n\n" + differences(args.out, networks)
    (args.out / "lono.md").parent.mkdir(parents=True, exist_ok=True)
    (args.out / "lono.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
