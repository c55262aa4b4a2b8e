"""Verification: scores per lead time (``metrics``), baselines (``baselines``), the loop over a
store (``evaluate``) and report writers (``report``). Imports numpy, scipy and pysteps; never
torch, ``nowcast.train`` or ``nowcast.ingest``: a model enters only as a forecaster callable.
"""

from nowcast.verify.baselines import BASELINES, get_baseline, make_forecaster
from nowcast.verify.evaluate import EvaluationResult, evaluate, select_starts
from nowcast.verify.metrics import ScoreAccumulator

__all__ = [
    "BASELINES",
    "EvaluationResult",
    "ScoreAccumulator",
    "evaluate",
    "get_baseline",
    "make_forecaster",
    "select_starts",
]
