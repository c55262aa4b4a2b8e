"""Forecast issue: load a checkpoint, read the latest frames, run the model, write the forecast.

Read in this order: ``inputs`` (the ``Frames``/``Window`` a forecast starts from, from a store;
``raw_input`` does the same from raw files), ``loading`` (checkpoint in, data facts checked),
``forecast`` (padding, tiling, no-data rule), ``run`` (one issue, end to end), ``writer`` (CF
NetCDF / Zarr, atomic) and ``plot`` (PNG panel, GIF). Imports model, store and config; never
``nowcast.ingest`` (raw files are read by a reader function handed in by the command line).
"""

from nowcast.predict.config import PredictConfig
from nowcast.predict.forecast import model_forecaster, run_model
from nowcast.predict.inputs import Frames, Window, select_window, store_window
from nowcast.predict.loading import LoadedModel, check_data_facts, load_method, load_model, resolve_checkpoint
from nowcast.predict.run import Forecast, make_forecast, predict_to_file

__all__ = [
    "Forecast",
    "Frames",
    "LoadedModel",
    "PredictConfig",
    "Window",
    "check_data_facts",
    "load_method",
    "load_model",
    "make_forecast",
    "model_forecaster",
    "predict_to_file",
    "resolve_checkpoint",
    "run_model",
    "select_window",
    "store_window",
]
