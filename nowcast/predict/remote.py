"""Forecasts to and checkpoints from an object store (``--out s3://bucket/f.nc``, ``--checkpoint s3://...``).

The forecast is written as it is locally (``predict_to_file``), in a temporary folder, then
uploaded. A NetCDF forecast (and its PNG and GIF) is one PUT each, so a reader sees the old
forecast or the new one, never half of one. A Zarr forecast is many objects: its metadata
(``zarr.json``) goes last, so a reader never opens it before its arrays are there.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from nowcast import objstore
from nowcast.predict.config import PredictConfig
from nowcast.predict.inputs import Window
from nowcast.predict.loading import LoadedModel, load_model, resolve_checkpoint
from nowcast.predict.run import predict_to_file


def predict_to(loaded: LoadedModel, window: Window, cfg: PredictConfig, out: str, history: str = "") -> dict[str, Any]:
    """``predict_to_file`` to a local path or an object-store URL; returns the same dict, with URLs."""
    if not objstore.is_url(out):
        return predict_to_file(loaded, window, cfg, out, history=history)
    name = out.rstrip("/").rsplit("/", 1)[-1]
    folder = out.rstrip("/")[: -len(name)]
    with tempfile.TemporaryDirectory(prefix="nowcast-forecast-") as tmp:
        result = predict_to_file(loaded, window, cfg, Path(tmp) / name, history=history)
        paths = {}
        for kind, path in result["paths"].items():
            url = folder + Path(path).name
            if Path(path).is_dir():  # Zarr: arrays first, the group metadata last
                objstore.upload_folder(path, url, last=("zarr.json",))
            else:
                objstore.upload(path, url)
            paths[kind] = url
    return {**result, "paths": paths}


def load_model_from(checkpoint: str | Path | None) -> LoadedModel:
    """``load_model`` of a checkpoint path, URL (copied to a temporary file first), or the shipped model."""
    if not objstore.is_url(checkpoint):
        return load_model(resolve_checkpoint(checkpoint))
    with tempfile.TemporaryDirectory(prefix="nowcast-checkpoint-") as tmp:
        local = objstore.download(str(checkpoint), Path(tmp) / str(checkpoint).rsplit("/", 1)[-1])
        loaded = load_model(local)
    return dataclasses.replace(loaded, path=str(checkpoint))  # the forecast records where it came from
