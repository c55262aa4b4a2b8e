"""Pictures of a forecast: a PNG panel (last observed frames, then leads) and an animated GIF.

One discrete precipitation scale for every picture (levels 0.1 ... 100 mm/h, like pysteps'
default intensity map): dry below 0.1 mm/h is white, no data is grey. Matplotlib's object API
on an Agg canvas: no pyplot state, no display.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from nowcast.atomic import atomic_write
from nowcast.errors import output_error

log = logging.getLogger(__name__)

LEVELS_MMH = (0.1, 0.5, 1, 2, 5, 10, 20, 50, 100)
COLOURS = ("#9ec9f0", "#3d8fd9", "#1a5fb4", "#33a02c", "#b5d334", "#ffd92f", "#ff7f00", "#e31a1c", "#9e0168")
NO_DATA = "#b0b0b0"
MAX_PANEL_LEADS = 9


def precip_colormap() -> tuple[Any, Any]:
    """(cmap, norm): a ListedColormap and BoundaryNorm over ``LEVELS_MMH``; NaN grey, dry white."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    cmap = ListedColormap(COLOURS[:-1], name="nowcast_precip").with_extremes(
        over=COLOURS[-1], under="white", bad=NO_DATA
    )
    return cmap, BoundaryNorm(LEVELS_MMH, cmap.N)


def _observed_title(time: np.datetime64, valid: bool) -> str:
    return f"{'observed' if valid else 'MISSING'} {str(time)[:16]}"


def _panels(forecast: Any, n_obs: int = 3) -> list[tuple[str, np.ndarray]]:
    """(title, field) for the last observed frames and up to MAX_PANEL_LEADS evenly spread leads."""
    frames = forecast.window.frames
    panels = [
        (_observed_title(t, ok), rain)
        for t, rain, ok in zip(frames.times[-n_obs:], frames.rain[-n_obs:], frames.valid[-n_obs:])
    ]
    n = len(forecast.rain)
    picks = np.unique(np.linspace(0, n - 1, min(n, MAX_PANEL_LEADS)).round().astype(int))
    for k in picks:
        title = f"+{forecast.lead_minutes[k]:g} min, {str(forecast.valid_times[k])[:16]}"
        panels.append((title, forecast.rain[k]))
    return panels


def _draw(ax, field: np.ndarray, extent_km: tuple[float, ...], title: str, cmap, norm):
    image = ax.imshow(
        np.ma.masked_invalid(field), cmap=cmap, norm=norm, extent=extent_km, origin="upper", interpolation="nearest"
    )
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return image


def _extent_km(forecast: Any) -> tuple[float, ...]:
    return tuple(v / 1000 for v in forecast.grid.extent)


def _save(path: Path, suffix: str, save) -> Path:
    """``save(tmp)`` through ``atomic_write`` (the temporary name keeps the format's extension)."""
    try:
        with atomic_write(path, suffix=suffix) as tmp:
            save(tmp)
    except OSError as e:
        raise output_error(path, e) from e
    return path


def plot_panel(forecast: Any, path: str | Path) -> Path:
    """PNG grid of the last observed frames and the forecast leads, with a mm/h colour bar.

    Args:
        forecast: a ``nowcast.predict.run.Forecast``.
        path: the PNG to write.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cmap, norm = precip_colormap()
    panels = _panels(forecast)
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(3.2 * ncols + 1, 3.0 * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    extent = _extent_km(forecast)
    image = None
    for ax, (title, field) in zip(axes, panels):
        image = _draw(ax, field, extent, title, cmap, norm)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    assert image is not None  # a forecast has at least one panel
    fig.colorbar(
        image, ax=list(axes), label="rain rate (mm/h)", ticks=LEVELS_MMH, extend="max", shrink=0.8, format="%g"
    )
    method = forecast.description if forecast.method == "model" else f"{forecast.method} (fallback)"
    fig.suptitle(f"nowcast from {str(forecast.init_time)[:16]} UTC: {method}; x, y in km; grey = no data")
    return _save(Path(path), ".png", lambda p: fig.savefig(p, format="png", dpi=90))


def plot_animation(forecast: Any, path: str | Path, fps: int = 2) -> Path:
    """Animated GIF: every input frame, then every lead, titled with its valid time.

    Args:
        forecast: a ``nowcast.predict.run.Forecast``.
        path: the GIF to write.
        fps: frames per second.

    Returns:
        The path written.
    """
    from matplotlib.animation import FuncAnimation, PillowWriter
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cmap, norm = precip_colormap()
    frames = forecast.window.frames
    sequence = [(_observed_title(t, ok), rain) for t, rain, ok in zip(frames.times, frames.rain, frames.valid)]
    sequence += [
        (f"forecast +{lead:g} min, {str(t)[:16]}", rain)
        for lead, t, rain in zip(forecast.lead_minutes, forecast.valid_times, forecast.rain)
    ]
    fig = Figure(figsize=(5.5, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = _draw(ax, sequence[0][1], _extent_km(forecast), sequence[0][0], cmap, norm)
    fig.colorbar(image, ax=ax, label="rain rate (mm/h)", ticks=LEVELS_MMH, extend="max", format="%g")

    def update(i: int):
        title, field = sequence[i]
        image.set_data(np.ma.masked_invalid(field))
        ax.set_title(title, fontsize=9)
        return (image,)

    animation = FuncAnimation(fig, update, frames=len(sequence), blit=False)
    return _save(Path(path), ".gif", lambda p: animation.save(p, writer=PillowWriter(fps=fps), dpi=80))


def plot_forecast(forecast: Any, out: str | Path) -> dict[str, Path]:
    """The PNG panel and the GIF beside the forecast file ``out`` (same name, .png and .gif).

    Returns:
        {"png": path, "gif": path}.
    """
    out = Path(out)
    paths = {
        "png": plot_panel(forecast, out.with_suffix(".png")),
        "gif": plot_animation(forecast, out.with_suffix(".gif")),
    }
    log.info("pictures: %s, %s", paths["png"], paths["gif"])
    return paths
