"""Hyperparameter search: each trial a training run of a set budget, scored on the validation block.

Read ``run.py`` first (the search, resumable), then ``config.py`` (the YAML), ``samplers.py``
(grid, random, TPE) and ``trial.py`` (what runs on a worker). Trials run in parallel on ingest's
engines: a Dask LocalCluster by default, a Dask or Spark cluster by address.
"""

from nowcast.tune.config import Param, SearchConfig, TuneConfig

__all__ = ["Param", "SearchConfig", "TuneConfig", "run_tune"]


def run_tune(*args, **kwargs):
    """``nowcast.tune.run.run_tune``, imported on first use (it imports torch and the engines)."""
    from nowcast.tune.run import run_tune as _run_tune

    return _run_tune(*args, **kwargs)
