"""Draw docs/synth-regimes.png: every weather regime of the synthetic archive, three scans each.

    python docs/synth_regimes.py   # from the repository root; a few seconds

Each row is one config of configs/synth/regimes/ (128 x 128 km, seed 1) at +0, +1 and +2 hours.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from nowcast.config import load_config
from nowcast.synth import SynthConfig, generate_fields

REGIMES = ("mixed", "convective_showers", "fast_motion", "lines", "stratiform", "dry")
SCANS = (0, 12, 24)
LEVELS_MMH = [0.1, 0.5, 1, 2, 5, 10, 20, 50, 300]
COLOURS = ["#c6dbef", "#6baed6", "#2171b5", "#41ab5d", "#fed976", "#fd8d3c", "#e31a1c", "#800026"]


def main(out: str = "docs/synth-regimes.png") -> None:
    cmap = ListedColormap(COLOURS)
    cmap.set_under("white")
    cmap.set_bad("#d9d9d9")  # no data
    norm = BoundaryNorm(LEVELS_MMH, cmap.N)
    fig = Figure(figsize=(1.5 * len(REGIMES) + 1.0, 1.5 * len(SCANS) + 0.3), layout="constrained")
    axes = fig.subplots(len(SCANS), len(REGIMES))
    for col, name in enumerate(REGIMES):
        config = load_config(SynthConfig, Path("configs/synth/regimes") / f"{name}.yaml")
        config = config.model_copy(update={"n_scans": max(SCANS) + 1})
        rain = [field for _, field in generate_fields(config)]
        for row, scan in enumerate(SCANS):
            ax = axes[row, col]
            image = ax.imshow(np.where(rain[scan] == 0, -1.0, rain[scan]), cmap=cmap, norm=norm)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name.replace("_", "\n"), fontsize=8)
            if col == 0:
                ax.set_ylabel(f"+{scan * config.time_step_minutes / 60:.0f} h", fontsize=8)
    bar = fig.colorbar(image, ax=axes, shrink=0.8, ticks=LEVELS_MMH[:-1], extend="min")
    bar.set_label("rain rate (mm/h); grey: no data", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main(*sys.argv[1:])
