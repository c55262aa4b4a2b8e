"""Load a checkpoint for forecasting and check it fits the input's pixel size and time step.

The model is rebuilt from the checkpoint alone (``nowcast.checkpoint``, ``weights_only=True``):
a file that is not a nowcast checkpoint, or one that would run code when unpickled, is refused.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nowcast.checkpoint import load_checkpoint, model_from_checkpoint
from nowcast.errors import CheckpointError
from nowcast.model import Model, ModelConfig, build_model
from nowcast.regrid import SAME_SIZE_RTOL

log = logging.getLogger(__name__)


def default_checkpoint() -> Path:
    """Where the shipped model lives (``nowcast/assets/model.pt``), whether or not it is there."""
    return Path(__file__).resolve().parents[1] / "assets" / "model.pt"


def resolve_checkpoint(path: str | Path | None) -> Path:
    """The checkpoint to use: ``path``, else the shipped model.

    Raises:
        CheckpointError: no path given and no model shipped with this installation.
    """
    if path is not None:
        return Path(path)
    shipped = default_checkpoint()
    if not shipped.is_file():
        raise CheckpointError(
            f"no --checkpoint given and no shipped model at {shipped}; pass --checkpoint "
            "runs/<name>/best.pt (train one with `nowcast train`)"
        )
    return shipped


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready to forecast, with what the output records about it."""

    model: Model
    cfg: ModelConfig
    path: str
    step: int
    config: dict[str, Any]  # the checkpoint's resolved config (model, data facts, ...)
    description: str = ""  # what made the forecast, in words (default: from the model's name)

    @property
    def title(self) -> str:
        if self.description:
            return self.description
        if self.cfg.name == "sprog" and not getattr(self.model, "correcting", True):
            return "S-PROG (nowcast's torch implementation)"
        return {"convlstm": "ConvLSTM encoder-forecaster", "sprog": "S-PROG with a learned correction"}[self.cfg.name]

    @property
    def pixel_size_m(self) -> float | None:
        value = self.config.get("pixel_size_m")
        return None if value is None else float(value)

    @property
    def time_step_s(self) -> int | None:
        value = self.config.get("time_step_s")
        return None if value is None else int(value)


def load_model(path: str | Path) -> LoadedModel:
    """Load a checkpoint safely and rebuild its model in eval mode.

    Args:
        path: a checkpoint written by ``nowcast train``.

    Returns:
        The model and its facts.

    Raises:
        CheckpointError: missing, damaged, not ours, or not loadable without running code.
    """
    ckpt = load_checkpoint(path)
    model, cfg = model_from_checkpoint(ckpt)
    log.info(
        "model from %s (step %s): %d input frames, %d leads, size divisor %d",
        path,
        ckpt.get("step"),
        cfg.num_input_frames,
        cfg.num_output_frames,
        cfg.multiple,
    )
    return LoadedModel(model, cfg, str(path), int(ckpt.get("step", 0)), dict(ckpt["config"]))


METHODS = ("model", "sprog")  # what `predict --method` / `evaluate --method` run


def sprog_model(num_input_frames: int = 4, num_output_frames: int = 12) -> LoadedModel:
    """nowcast's own S-PROG (torch, nothing learned): the S-PROG corrector with no correction.

    Its last layer starts at zero, so the untrained corrector forecasts exactly S-PROG; it runs at
    any pixel size and time step, and to any lead.
    """
    cfg = ModelConfig(name="sprog", num_input_frames=num_input_frames, num_output_frames=num_output_frames)
    model = build_model(cfg).eval()
    return LoadedModel(model, cfg, "sprog", 0, {"model": cfg.model_dump()}, "S-PROG (nowcast's torch implementation)")


def load_method(method: str, checkpoint: str | Path | None, leads: int | None = None) -> LoadedModel:
    """The forecaster ``method`` names: ``model`` (``checkpoint``, default the shipped one) or ``sprog``.

    Raises:
        CheckpointError: an unknown method, a checkpoint given with ``sprog``, or what ``load_model`` raises.
    """
    if method == "model":
        return load_model(resolve_checkpoint(checkpoint))
    if method == "sprog":
        if checkpoint is not None:
            raise CheckpointError("--method sprog uses no checkpoint; drop --checkpoint or use --method model")
        return sprog_model(num_output_frames=max(12, leads or 0))
    raise CheckpointError(f"unknown method {method!r}; available: {', '.join(METHODS)}")


def check_data_facts(
    loaded: LoadedModel,
    pixel_size_m: float,
    time_step_s: int,
    crs: str | None = None,
    source: str = "input",
    input_time_step_s: int | None = None,
) -> None:
    """Stop when the input's pixel size or time step differs from what the model was trained on.

    A different time step is accepted when the user states it (``input_time_step_s``): the model
    then steps at the input's pace. Motion comes from the input frames, so it scales with the
    step; what the network learned per step (growth, decay, blur) does not, hence the warning.

    Args:
        loaded: the model.
        pixel_size_m: the input's pixel size.
        time_step_s: the input's time step.
        crs: the input's CRS (a different one is only logged: the network is convolutional, so
            the grid's projection does not matter as long as its pixel size and step do).
        source: the input, for the message.
        input_time_step_s: the time step the user says the input has, to run the model at it.

    A ``sprog`` model runs at any pixel size and time step: S-PROG is estimated from the input
    itself and its correction is told the lead time in minutes and the pixel size.

    Raises:
        CheckpointError: naming both values of what differs.
    """
    if loaded.cfg.name == "sprog":
        log.info("%s runs on %s at %g m and %d s steps", loaded.path, source, pixel_size_m, int(time_step_s))
        return
    problems = []
    if loaded.pixel_size_m is not None and not math.isclose(loaded.pixel_size_m, pixel_size_m, rel_tol=SAME_SIZE_RTOL):
        problems.append(f"pixel_size_m: checkpoint {loaded.pixel_size_m:g} m, input {pixel_size_m:g} m")
    step = int(time_step_s)
    if input_time_step_s is not None and input_time_step_s != step:
        raise CheckpointError(
            f"{source} has a time step of {step} s, not the {input_time_step_s} s given as the input's time step"
        )
    if loaded.time_step_s is not None and loaded.time_step_s != step:
        if input_time_step_s is None:
            problems.append(
                f"time_step_s: checkpoint {loaded.time_step_s} s, input {step} s (to run this model at "
                f"the input's step anyway, pass --input-time-step {step})"
            )
        else:
            log.warning(
                "%s was trained at %d s steps and now runs at %s's %d s: each lead is %d s; the skill "
                "it learned per step is only approximately right at this one",
                loaded.path,
                loaded.time_step_s,
                source,
                step,
                step,
            )
    if problems:
        fix = (
            f"ingest the input again with align.pixel_size_m: {loaded.pixel_size_m:g} (any pixel size or CRS is "
            "resampled), pass the folder of raw files as --input (regridded on the fly), or use a checkpoint "
            "trained at this resolution"
            if problems[0].startswith("pixel_size_m")
            else "use a checkpoint trained at this time step"
        )
        raise CheckpointError(f"{loaded.path} does not match {source}: " + "; ".join(problems) + ". To fix: " + fix)
    if loaded.pixel_size_m is None or loaded.time_step_s is None:
        log.warning("%s records no pixel_size_m/time_step_s; cannot check it fits %s", loaded.path, source)
    trained_crs = loaded.config.get("crs")
    if crs is not None and trained_crs and str(trained_crs).strip() != crs.strip():
        log.info(
            "%s was trained on CRS %r, the input has %r: fine for a convolutional model at the same pixel size",
            loaded.path,
            trained_crs,
            crs,
        )
