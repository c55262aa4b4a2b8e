"""Checkpoints: written atomically by training, read safely by training and predict.

A checkpoint is a dict saved with ``torch.save`` and loaded with ``weights_only=True`` only, so
opening a file never runs code from it::

    format     "nowcast-checkpoint"          version   1
    model      state_dict of the unwrapped model (no "module." / "_orig_mod." prefixes)
    optimizer  optimizer.state_dict()         scheduler scheduler.state_dict()
    step, epoch
    config     the resolved train config as plain JSON-like data: "model", "data", ... plus the
               data facts predict must match: "pixel_size_m", "time_step_s", "crs"
    rng        RNG states as tensors and lists (torch, cuda, numpy, python)
    metrics    last validation scores (plain floats / lists)
    best       best validation score so far (for best.pt across resumes)

``model_from_checkpoint`` rebuilds the model from the file alone.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from nowcast.atomic import atomic_write
from nowcast.errors import CheckpointError
from nowcast.model import Model, ModelConfig, build_model

FORMAT = "nowcast-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "model", "step", "config")
_PREFIXES = ("module.", "_orig_mod.")


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip DDP / torch.compile prefixes so the keys match the plain model."""
    cleaned = {}
    for key, value in state.items():
        while key.startswith(_PREFIXES):
            key = key.split(".", 1)[1]
        cleaned[key] = value
    return cleaned


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (``nowcast.atomic``): a crash leaves the previous file."""
    path = Path(path)
    payload = {"format": FORMAT, "version": VERSION, **payload}
    payload["model"] = clean_state_dict(payload["model"])
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)
    return path


def link_checkpoint(src: Path, dst: Path) -> None:
    """Make ``dst`` the same file as ``src`` (hard link, else copy), atomically replacing ``dst``."""
    with atomic_write(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: the file is missing, damaged, not a nowcast checkpoint, or holds
            objects that would need code to unpickle.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path} holds Python objects that would run code when loaded; refused "
            "(a nowcast checkpoint holds only tensors and plain containers)"
        ) from None
    except Exception as e:  # truncated file, damaged zip, not a torch file at all
        raise CheckpointError(
            f"{path} is damaged or not a torch checkpoint: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a nowcast checkpoint (no format={FORMAT!r} entry)")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {ckpt.get('version')!r}; this nowcast reads {VERSION}")
    missing = [key for key in REQUIRED if key not in ckpt]
    if missing or not isinstance(ckpt["config"], dict) or "model" not in ckpt["config"]:
        raise CheckpointError(f"{path} is incomplete: missing {missing or ['config.model']}")
    ckpt["path"] = str(path)
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any] | str | Path) -> tuple[Model, ModelConfig]:
    """Rebuild the model and load its weights from a checkpoint (dict or path), in eval mode.

    Raises:
        CheckpointError: the model config or the weights do not fit this version of the model.
    """
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    where = ckpt.get("path", "checkpoint")
    try:
        cfg = ModelConfig.from_saved(ckpt["config"]["model"])
    except ValidationError as e:
        raise CheckpointError(f"{where}: model config is not valid for this nowcast version: {e}") from None
    model = build_model(cfg)
    try:
        model.load_state_dict(clean_state_dict(ckpt["model"]))
    except RuntimeError as e:
        raise CheckpointError(
            f"{where}: weights do not match the model config (model.advection "
            f"{cfg.advection}); a checkpoint from an earlier nowcast version whose model "
            f"layout differs must be retrained with this one: {str(e)[:500]}"
        ) from None
    return model.eval(), cfg


def rng_state() -> dict[str, Any]:
    """Every RNG state as tensors and lists, so ``weights_only`` loading accepts it."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` saved."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
