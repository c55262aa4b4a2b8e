"""What a search leaves behind: results.csv and results.md sorted by score, scores.png, best.yaml."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from nowcast.config import dump_config, validate
from nowcast.train.config import TrainConfig
from nowcast.tune.config import TuneConfig
from nowcast.tune.trial import set_key

SCORES = ("csi_1mm_mean", "val_loss", "mae_mmh_mean")


def ranked(results: list[dict[str, Any]], direction: str) -> list[dict[str, Any]]:
    """Complete trials best first, then failed ones by number."""
    sign = -1 if direction == "maximize" else 1
    complete = sorted((r for r in results if r["state"] == "complete"), key=lambda r: (sign * r["score"], r["number"]))
    failed = sorted((r for r in results if r["state"] != "complete"), key=lambda r: r["number"])
    return complete + failed


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _first_line(text: str | None, limit: int = 200) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0][:limit] if lines else ""


def _rows(results: list[dict[str, Any]], cfg: TuneConfig) -> tuple[list[str], list[list[str]]]:
    keys = list(cfg.search.space)
    header = ["rank", "trial", "state", cfg.metric, *keys, *(s for s in SCORES if s != cfg.metric)]
    header += ["steps", "seconds", "error"]
    rows = []
    for i, r in enumerate(ranked(results, cfg.direction)):
        rank = str(i + 1) if r["state"] == "complete" else ""
        rows.append(
            [rank, str(r["number"]), r["state"], _cell(r.get("score"))]
            + [_cell(r["params"].get(k)) for k in keys]
            + [_cell(r.get(s)) for s in SCORES if s != cfg.metric]
            + [str(r.get("step", "")), _cell(r.get("seconds")), _first_line(r.get("error"))]
        )
    return header, rows


def best_config(
    results: list[dict[str, Any]], cfg: TuneConfig, base: dict[str, Any]
) -> tuple[dict, TrainConfig] | None:
    """The best complete trial and its train config (base + its parameters, the base's own schedule)."""
    complete = [r for r in ranked(results, cfg.direction) if r["state"] == "complete"]
    if not complete:
        return None
    best = complete[0]
    tree = base
    for key, value in best["params"].items():
        tree = set_key(tree, key, value)
    return best, validate(TrainConfig, tree, f"best trial {best['number']}")


def write_reports(
    results: list[dict[str, Any]], cfg: TuneConfig, base: dict[str, Any], folder: Path
) -> dict[str, Path]:
    """Write every report into ``folder``; returns their paths by kind."""
    header, rows = _rows(results, cfg)
    paths = {"csv": folder / "results.csv", "markdown": folder / "results.md", "plot": folder / "scores.png"}
    with paths["csv"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    n_ok = sum(r["state"] == "complete" for r in results)
    lines = [
        f"# {cfg.name}: {len(results)} trials ({n_ok} complete, {len(results) - n_ok} failed), "
        f"{cfg.search.sampler} search, {cfg.budget_steps} steps each, {cfg.metric} ({cfg.direction})",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    paths["markdown"].write_text("\n".join(lines) + "\n")
    plot_scores(results, cfg, paths["plot"])
    found = best_config(results, cfg, base)
    if found is not None:
        best, train_cfg = found
        params = ", ".join(f"{k}={json.dumps(v)}" for k, v in best["params"].items())
        paths["best"] = folder / "best.yaml"
        paths["best"].write_text(
            f"# best of {len(results)} trials of tune run {cfg.name!r}: trial {best['number']}, "
            f"{cfg.metric} {best['score']:.4g} after {cfg.budget_steps} steps\n# {params}\n"
            f"# the train config's own schedule (optim.max_steps) is kept; the search trained {cfg.budget_steps}\n"
            + dump_config(train_cfg)
        )
    return paths


def plot_scores(results: list[dict[str, Any]], cfg: TuneConfig, path: Path) -> None:
    """Score by trial (failed trials marked at the bottom) and score against each searched key."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, NullFormatter

    keys = list(cfg.search.space)[:5]
    fig, axes = plt.subplots(1, 1 + len(keys), figsize=(4 * (1 + len(keys)), 3.4), squeeze=False)
    ax = axes[0, 0]
    ok = sorted((r for r in results if r["state"] == "complete"), key=lambda r: r["number"])
    failed = [r for r in results if r["state"] != "complete"]
    scores = [r["score"] for r in ok]
    floor = min(scores) if scores else 0.0
    ax.plot([r["number"] for r in ok], scores, "o", color="tab:blue", label="complete")
    if ok:
        pick = max if cfg.direction == "maximize" else min
        best = [pick(scores[: i + 1]) for i in range(len(scores))]
        ax.step([r["number"] for r in ok], best, where="post", color="tab:green", label="best so far")
    if failed:
        ax.plot([r["number"] for r in failed], [floor] * len(failed), "x", color="tab:red", label="failed")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(cfg.metric)
    ax.legend(fontsize=8)
    for ax, key in zip(axes[0, 1:], keys):
        param = cfg.search.space[key]
        if param.choices is not None:
            labels = [json.dumps(c) for c in param.choices]
            xs = [labels.index(json.dumps(r["params"][key])) for r in ok]
            ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=7)
        else:
            xs = [r["params"][key] for r in ok]
            if param.log:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short log axis overlap
        ax.plot(xs, scores, "o", color="tab:blue")
        ax.set_xlabel(key)
    for ax in axes[0]:
        ax.grid(alpha=0.3)
    fig.suptitle(f"{cfg.name}: {cfg.search.sampler} search, {cfg.budget_steps} steps per trial")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
