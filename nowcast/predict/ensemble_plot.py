"""Probability maps of an ensemble: one row per threshold, the last observation then a few leads.

Same conventions as ``plot.py``: matplotlib's object API on an Agg canvas, grey = no data,
written under a temporary name and renamed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from nowcast.predict.plot import _draw, _extent_km, _save, precip_colormap

log = logging.getLogger(__name__)

MAX_LEADS = 4


def _leads_shown(n_leads: int) -> list[int]:
    """Up to ``MAX_LEADS`` lead indices, evenly spaced, ending with the last (12 leads: +15, +30, +45, +60 min)."""
    count = min(MAX_LEADS, n_leads)
    return sorted({max(0, round(n_leads * (i + 1) / count) - 1) for i in range(count)})


def plot_probabilities(result: Any, path: str | Path) -> Path:
    """PNG of exceedance probabilities (rows: thresholds; columns: the last frame, then leads).

    Args:
        result: a ``nowcast.predict.ensemble.EnsembleForecast``.
        path: the PNG to write.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    forecast = result.forecast
    leads = _leads_shown(len(forecast.rain))
    rows, cols = len(result.thresholds), len(leads) + 1
    fig = Figure(figsize=(3.0 * cols + 1, 2.8 * rows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    extent = _extent_km(forecast)
    cmap, norm = precip_colormap()
    observed = forecast.window.frames.rain[-1]
    probability_image = rain_image = None
    for row, threshold in enumerate(result.thresholds):
        rain_image = _draw(axes[row, 0], observed, extent, f"observed {str(forecast.init_time)[:16]}", cmap, norm)
        for col, k in enumerate(leads, start=1):
            ax = axes[row, col]
            probability_image = ax.imshow(
                np.ma.masked_invalid(result.probabilities[row, k]),
                cmap="magma_r",
                vmin=0,
                vmax=1,
                extent=extent,
                origin="upper",
                interpolation="nearest",
            )
            ax.set_title(f"P(>= {threshold:g} mm/h) +{forecast.lead_minutes[k]:g} min", fontsize=9)
            ax.tick_params(labelsize=7)
    fig.colorbar(rain_image, ax=list(axes[:, 0]), label="rain rate (mm/h)", extend="max", shrink=0.8, format="%g")  # type: ignore[arg-type]
    fig.colorbar(probability_image, ax=list(axes[:, 1:].ravel()), label="probability", shrink=0.8)  # type: ignore[arg-type]
    fig.suptitle(
        f"{len(result.members)} members from {str(forecast.init_time)[:16]} UTC around {result.centre}; x, y in km"
    )
    out = _save(Path(path), ".png", lambda p: fig.savefig(p, format="png", dpi=80))
    log.info("probability maps: %s", out)
    return out
