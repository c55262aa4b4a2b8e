"""Write an evaluation as JSON (everything), Markdown (the headline scores) and a PNG of scores by lead.

Plots use matplotlib's object API on an Agg canvas: no pyplot state, no display needed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from nowcast.atomic import atomic_write
from nowcast.verify.evaluate import EvaluationResult

TABLE_SCORES = ("CSI@1", "CSI@5", "FSS@1", "MAE")  # the compact Markdown summary
PLOT_SCORES = ("CSI@0.5", "CSI@1", "CSI@5", "CSI@10", "POD@1", "FAR@1", "FSS@1", "MAE", "bias")
PLOT_DIFFERENCES = ("CSI@1", "MAE")  # the first method minus the others, with their intervals
HIGHER_IS_BETTER = {"CSI", "POD", "FSS"}


def _json_safe(value: Any) -> Any:
    """NaN/inf become null so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(result: EvaluationResult, path: str | Path) -> Path:
    """All scores, per method and lead, as strict JSON (undefined scores are ``null``).

    Args:
        result: what ``evaluate`` returned.
        path: the file to write.

    Returns:
        The path written.
    """
    text = json.dumps(_json_safe(result.to_dict()), indent=2, allow_nan=False)
    with atomic_write(path) as tmp:
        tmp.write_text(text + "\n")
    return Path(path)


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _difference(entry: dict, k: int, decimals: int) -> str:
    difference, low, high = entry["difference"][k], entry["low"][k], entry["high"][k]
    if difference is None or not math.isfinite(difference):
        return "n/a"
    interval = "" if low is None or not math.isfinite(low) else f" [{low:+.{decimals}f}, {high:+.{decimals}f}]"
    return f"{difference:+.{decimals}f}{interval} ({entry['better_starts'][k]}/{entry['scored_starts'][k]})"


def comparison_markdown(result: EvaluationResult, scores: tuple[str, ...] = TABLE_SCORES) -> list[str]:
    """One table per compared method: the first method's differences from it, with intervals."""
    if not result.comparisons:
        return []
    reference = next(iter(result.methods))
    lines = []
    for other, entry in result.comparisons.items():
        shown = [score for score in scores if score in entry]
        lines += [
            "",
            f"## {reference} against {other}",
            "",
            f"{reference} minus {other}, with a {entry['level']:.0%} bootstrap interval over the starts "
            f"(blocks of {entry['block']} consecutive starts, as neighbours share observed frames; "
            f"the starts amount to {entry['independent_windows']:.1f} windows that share none) and, in "
            f"parentheses, in how "
            f"many starts {reference} alone scored better. MAE: below zero is better.",
        ]
        if entry["independent_windows"] < 5:
            lines += [
                "",
                "Fewer than 5 windows that share no frame: the intervals show the spread within this "
                "period, not between events, and are too narrow for a verdict.",
            ]
        lines += ["", "| lead (min) | " + " | ".join(shown) + " |", "|---:|" + "---:|" * len(shown)]
        for k, lead in enumerate(result.lead_minutes):
            row = [_difference(entry[score], k, 4 if score == "MAE" else 3) for score in shown]
            lines.append(f"| {lead:g} | " + " | ".join(row) + " |")
    return lines


def markdown(result: EvaluationResult, scores: tuple[str, ...] = TABLE_SCORES) -> str:
    """One table per score: lead-time rows, method columns; then the first method against the others."""
    methods = list(result.methods)
    lines = [
        "# Verification",
        "",
        f"{result.n_starts} forecasts from {result.first_init_time} to {result.last_init_time} "
        f"({result.n_skipped_gap} starts skipped: window crosses missing frames); "
        f"{result.num_input_frames} input frames, {result.time_step_s / 60:g} min steps, "
        f"{result.pixel_size_m:g} m pixels. Thresholds in mm/h; MAE in mm/h.",
    ]
    for score in scores:
        lines += [
            "",
            f"## {score}",
            "",
            "| lead (min) | " + " | ".join(methods) + " |",
            "|---:|" + "---:|" * len(methods),
        ]
        missing = [math.nan] * len(result.lead_minutes)
        for k, lead in enumerate(result.lead_minutes):
            row = [_fmt(result.methods[m].get(score, missing)[k]) for m in methods]
            lines.append(f"| {lead:g} | " + " | ".join(row) + " |")
    lines += comparison_markdown(result, scores)
    return "\n".join(lines) + "\n"


def write_markdown(result: EvaluationResult, path: str | Path, scores: tuple[str, ...] = TABLE_SCORES) -> Path:
    """The compact Markdown summary (see ``markdown``).

    Args:
        result: what ``evaluate`` returned.
        path: the file to write.
        scores: which scores get a table.

    Returns:
        The path written.
    """
    text = markdown(result, scores)
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def plot_scores(result: EvaluationResult, path: str | Path, scores: tuple[str, ...] = PLOT_SCORES) -> Path:
    """A grid of score-against-lead plots, one line per method, plus mean intensity and heavy-rain fraction.

    Two panels show forecast (solid) against observed (dashed) mean rain rate and fraction
    of pixels above 5 mm/h: a forecast that blurs with lead time loses its heavy rain there. The
    last ones show the first method minus each other one, shaded over the bootstrap interval.

    Args:
        result: what ``evaluate`` returned.
        path: the PNG to write.
        scores: which scores get a panel.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # forecast-against-observed panels: title -> (forecast key, observed key)
    paired = {
        "mean rain rate (mm/h)": ("mean_forecast", "mean_obs"),
        "fraction > 5 mm/h": ("frac_forecast_gt5", "frac_obs_gt5"),
    }
    reference = next(iter(result.methods))
    differences = {f"{reference} minus others: {score}": score for score in PLOT_DIFFERENCES if result.comparisons}
    panels = list(scores) + list(paired) + list(differences)
    ncols = 4
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(4 * ncols, 3 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    leads = result.lead_minutes
    missing = [math.nan] * len(leads)
    colours = {method: f"C{i}" for i, method in enumerate(result.methods)}
    for ax, panel in zip(axes, panels):
        if panel in differences:
            _plot_differences(ax, result, differences[panel], colours)
            ax.set_title(panel)
            continue
        for method, values in result.methods.items():
            key = paired[panel][0] if panel in paired else panel
            ax.plot(leads, values.get(key, missing), marker="o", ms=3, color=colours[method], label=method)
        if panel in paired:
            # observed values: one black line when all methods were scored on the same pixels
            observed: dict[str, tuple[int, str, list[float]]] = {}
            for i, (method, values) in enumerate(result.methods.items()):
                series = values.get(paired[panel][1], missing)
                observed.setdefault(repr(series), (i, method, series))
            for i, method, series in observed.values():
                colour, label = ("black", "observed") if len(observed) == 1 else (f"C{i}", f"observed ({method})")
                ax.plot(leads, series, ls="--", color=colour, label=label)
            ax.legend(fontsize="x-small")
        ax.set_title(panel)
        ax.set_xlabel("lead time (min)")
        ax.grid(alpha=0.3)
        if panel.split("@")[0] in HIGHER_IS_BETTER:
            ax.set_ylim(0, 1)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small")
    fig.suptitle(f"{result.n_starts} forecasts, {result.first_init_time} to {result.last_init_time}")
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)


def _plot_differences(ax: Any, result: EvaluationResult, score: str, colours: dict[str, str]) -> None:
    """One line per compared method, shaded over its interval, and the zero line."""
    leads = result.lead_minutes
    for other, entry in result.comparisons.items():
        values = {
            key: [math.nan if x is None else x for x in entry[score][key]] for key in ("difference", "low", "high")
        }
        ax.plot(leads, values["difference"], marker="o", ms=3, color=colours[other], label=f"vs {other}")
        ax.fill_between(leads, values["low"], values["high"], color=colours[other], alpha=0.2)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("lead time (min)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")


def write_reports(result: EvaluationResult, out_dir: str | Path) -> dict[str, Path]:
    """``scores.json``, ``scores.md`` and ``scores.png`` in ``out_dir``.

    Args:
        result: what ``evaluate`` returned.
        out_dir: the folder to write into (created if needed).

    Returns:
        Format name -> path written.
    """
    out = Path(out_dir)
    return {
        "json": write_json(result, out / "scores.json"),
        "markdown": write_markdown(result, out / "scores.md"),
        "png": plot_scores(result, out / "scores.png"),
    }
