"""One trial, on an engine's worker: a training run of the budget, scored on the validation block.

A trial never raises: whatever goes wrong (a config the parameters make invalid, too little data
for a batch size, a crash in training) comes back as a failed result with its error, so one bad
corner of the search space never stops the others. A trial whose run folder already holds
``last.pt`` (the tune run was interrupted while it trained) resumes from it.
"""

from __future__ import annotations

import copy
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nowcast import objstore

MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class TrialJob:
    number: int
    params: dict[str, Any]


def set_key(tree: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of the nested dict ``tree`` with ``a.b.c`` set to ``value`` (sections made as needed);
    a mapping value is merged into the section it names (``data: {stores: [...]}`` keeps ``data``'s
    other keys)."""
    tree = copy.deepcopy(tree)
    node = tree
    *parents, last = dotted.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        for key, item in value.items():
            node[last] = set_key(node[last], key, item)
    else:
        node[last] = copy.deepcopy(value)
    return tree


def trial_name(number: int) -> str:
    return f"trial-{number:04d}"


def trial_config(base: dict[str, Any], params: dict[str, Any], budget_steps: int, trials_dir: str, number: int):
    """The train config (a plain dict) of trial ``number``: base, then its parameters, then the budget."""
    tree = base
    for key, value in params.items():
        tree = set_key(tree, key, value)
    tree = set_key(tree, "optim.max_steps", budget_steps)
    tree = set_key(tree, "run.out_dir", trials_dir)
    return set_key(tree, "run.name", trial_name(number))


class TrialRunner:
    """Picklable trial body for the engines: ``TrialJob -> result dict`` (see ``run.RESULT_KEYS``)."""

    def __init__(self, base: dict[str, Any], metric: str, budget_steps: int, trials_dir: str, threads: int):
        self.base = base
        self.metric = metric
        self.budget_steps = budget_steps
        self.trials_dir = trials_dir
        self.threads = threads

    def __call__(self, job: TrialJob) -> dict[str, Any]:
        start = time.perf_counter()
        run_dir = objstore.join(self.trials_dir, trial_name(job.number))
        result: dict[str, Any] = {
            "number": job.number,
            "params": job.params,
            "state": "failed",
            "score": None,
            "step": 0,
            "run_dir": run_dir,
            "host": socket.gethostname(),
            "error": "",
        }
        try:
            result.update(self._train(job, run_dir))
        except Exception as e:  # noqa: BLE001 - recorded with the trial, never fatal to the search
            text = str(e).strip() or type(e).__name__
            result["error"] = f"{type(e).__name__}: {text}"[:MAX_ERROR_CHARS]
        result["seconds"] = round(time.perf_counter() - start, 3)
        return result

    def _train(self, job: TrialJob, run_dir: str) -> dict[str, Any]:
        import torch

        from nowcast.config import validate
        from nowcast.errors import NowcastError
        from nowcast.train.config import TrainConfig
        from nowcast.train.remote import run_training

        os.environ["OMP_NUM_THREADS"] = str(self.threads)  # trials share the worker's machine
        torch.set_num_threads(self.threads)
        tree = trial_config(self.base, job.params, self.budget_steps, self.trials_dir, job.number)
        cfg = validate(TrainConfig, tree, f"trial {job.number} ({job.params})")
        last = objstore.join(run_dir, "last.pt")
        resume = objstore.exists(last) if objstore.is_url(last) else Path(last).exists()
        out = run_training(cfg, resume=resume)
        metrics = out.get("metrics") or {}
        score = metrics.get(self.metric)
        if score is None:
            raise NowcastError(
                f"no validation {self.metric} after {out.get('step')} steps: the run has no validation "
                "windows (data.val_fraction, data.val_ranges)"
            )
        if not math.isfinite(score):
            raise NowcastError(f"validation {self.metric} is {score} after {out.get('step')} steps")
        return {
            "state": "complete",
            "score": float(score),
            "step": int(out["step"]),
            **{k: float(metrics[k]) for k in ("val_loss", "csi_1mm_mean", "mae_mmh_mean") if k in metrics},
        }
