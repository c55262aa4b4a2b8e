"""Write an ensemble evaluation as ``ensemble.json``, ``ensemble.md`` and ``ensemble.png``.

The picture: CRPS, spread/skill and ROC area by lead, the reliability diagrams at +30 min (or
the nearest lead) for each threshold, and the rank histograms at +30 and +60 min.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from nowcast.atomic import atomic_write
from nowcast.verify.ensemble_evaluate import EnsembleEvaluation
from nowcast.verify.report import _difference, _fmt, _json_safe

RELIABILITY_LEAD_MIN = 30.0
RANK_LEADS_MIN = (30.0, 60.0)


def _lead_index(result: EnsembleEvaluation, minutes: float) -> int:
    return int(np.argmin(np.abs(np.asarray(result.lead_minutes) - minutes)))


def _thresholds(result: EnsembleEvaluation) -> list[str]:
    scores = next(iter(result.methods.values()))
    return [key.split("@", 1)[1] for key in scores if key.startswith("reliability@")]


def markdown(result: EnsembleEvaluation) -> str:
    """Tables by lead (CRPS, spread/skill, reliability gaps, ROC areas), speed, and the first
    method's CRPS against the others with bootstrap intervals."""
    methods = list(result.methods)
    labels = _thresholds(result)
    lines = [
        "# Ensemble verification",
        "",
        f"{result.n_starts} forecasts of {result.n_members} members from {result.first_init_time} to "
        f"{result.last_init_time} ({result.n_skipped_gap} starts skipped at gaps); {result.num_input_frames} "
        f"input frames, {result.time_step_s / 60:g} min steps, {result.pixel_size_m:g} m pixels. CRPS in mm/h "
        "(lower is better); spread/skill 1 = as spread as the errors; reliability gap = largest |observed "
        "frequency - forecast probability| over the bins holding >= 1 % of the pixels.",
        "",
        "Seconds per ensemble forecast: "
        + ", ".join(f"{m} {s:.1f}" for m, s in result.seconds_per_forecast.items())
        + " (wall time, on whatever else the machine was doing).",
    ]
    scores = ["CRPS", "spread_skill", *(f"reliability_gap@{t}" for t in labels), *(f"ROC_area@{t}" for t in labels)]
    for score in scores:
        lines += [
            "",
            f"## {score}",
            "",
            "| lead (min) | " + " | ".join(methods) + " |",
            "|---:|" + "---:|" * len(methods),
        ]
        for k, lead in enumerate(result.lead_minutes):
            lines.append(f"| {lead:g} | " + " | ".join(_fmt(result.methods[m][score][k]) for m in methods) + " |")
    reference = methods[0]
    for other, entry in result.comparisons.items():
        lines += [
            "",
            f"## {reference} against {other}",
            "",
            f"{reference} minus {other}, {entry['level']:.0%} bootstrap interval over the starts (blocks of "
            f"{entry['block']}; {entry['independent_windows']:.1f} windows that share no frame) and, in parentheses, "
            f"in how many starts {reference} alone was better. CRPS and Brier: below zero is better.",
            "",
            "| lead (min) | CRPS | " + " | ".join(f"Brier@{t}" for t in labels) + " |",
            "|---:|---:|" + "---:|" * len(labels),
        ]
        for k, lead in enumerate(result.lead_minutes):
            row = [_difference(entry["CRPS"], k, 4), *(_difference(entry[f"Brier@{t}"], k, 4) for t in labels)]
            lines.append(f"| {lead:g} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot(result: EnsembleEvaluation, path: str | Path) -> Path:
    """The ensemble picture (see the module docstring)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = _thresholds(result)
    leads = result.lead_minutes
    colours = {method: f"C{i}" for i, method in enumerate(result.methods)}
    fig = Figure(figsize=(16, 8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 4).ravel()
    by_lead = [("CRPS", "CRPS (mm/h)"), ("spread_skill", "spread/skill"), *((f"ROC_area@{labels[0]}", None),)]
    for ax, (score, title) in zip(axes, by_lead):
        for method, values in result.methods.items():
            ax.plot(
                leads, [math.nan if v is None else v for v in values[score]], marker="o", ms=3, color=colours[method]
            )
        ax.set_title(title or score)
        ax.set_xlabel("lead time (min)")
        ax.grid(alpha=0.3)
    for t in labels[1:]:
        for method, values in result.methods.items():
            axes[2].plot(leads, values[f"ROC_area@{t}"], ls="--", color=colours[method])
    axes[2].set_title("ROC area (solid " + ", dashed ".join(f"{t} mm/h" for t in labels) + ")")
    axes[1].axhline(1, color="black", lw=0.8)
    axes[1].axhspan(0.8, 1.2, color="grey", alpha=0.15)
    k = _lead_index(result, RELIABILITY_LEAD_MIN)
    for ax, t in zip(axes[3:5], labels):
        ax.plot([0, 1], [0, 1], color="black", lw=0.8)
        for method, values in result.methods.items():
            diagram = values[f"reliability@{t}"]
            ax.plot(diagram["probability"][k], diagram["frequency"][k], marker="o", ms=3, color=colours[method])
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="forecast probability", ylabel="observed frequency")
        ax.set_title(f"reliability, >= {t} mm/h, +{leads[k]:g} min")
        ax.grid(alpha=0.3)
    for ax, minutes in zip(axes[5:7], RANK_LEADS_MIN):
        k = _lead_index(result, minutes)
        width = 0.8 / len(result.methods)
        for i, (method, values) in enumerate(result.methods.items()):
            histogram = values["rank_histogram"][k]
            ax.bar(np.arange(len(histogram)) + i * width, histogram, width=width, color=colours[method])
        ax.axhline(1 / (result.n_members + 1), color="black", lw=0.8)
        ax.set_title(f"rank histogram, +{leads[k]:g} min")
        ax.set_xlabel("rank of the observation")
    axes[7].axis("off")
    for method, colour in colours.items():
        axes[7].plot([], [], color=colour, lw=3, label=method)
    axes[7].legend(loc="center", fontsize="large")
    fig.suptitle(f"{result.n_starts} ensemble forecasts of {result.n_members} members, {result.store}")
    return _atomic_write(Path(path), lambda p: fig.savefig(p, format="png", dpi=90))


def _atomic_write(path: Path, write) -> Path:
    """``write(tmp)`` through ``atomic_write``: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, suffix=path.suffix) as tmp:
        write(tmp)
    return path


def write_ensemble_reports(result: EnsembleEvaluation, out_dir: str | Path) -> dict[str, Path]:
    """``ensemble.json``, ``ensemble.md`` and ``ensemble.png`` in ``out_dir``."""
    out = Path(out_dir)
    text = json.dumps(_json_safe(result.to_dict()), indent=2, allow_nan=False)
    return {
        "json": _atomic_write(out / "ensemble.json", lambda p: p.write_text(text + "\n")),
        "markdown": _atomic_write(out / "ensemble.md", lambda p: p.write_text(markdown(result))),
        "png": plot(result, out / "ensemble.png"),
    }
