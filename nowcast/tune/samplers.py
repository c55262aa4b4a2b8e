"""Which parameters each trial gets: grid, random, or Optuna's TPE.

Grid and random trials are a pure function of (search config, trial number), so a re-run plans
exactly the trials an uninterrupted run would have, and skips those already finished. TPE learns
from finished trials: each batch is asked of a study rebuilt from every result so far, with the
sampler seeded by ``seed`` and the number of results, so a re-run asks what the first run would
have asked next.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any, Literal

import numpy as np

from nowcast.tune.config import Param, SearchConfig

SAMPLERS = ("grid", "random", "tpe")


def grid(search: SearchConfig) -> list[dict[str, Any]]:
    """Every combination, the first key varying slowest; the first ``n_trials`` when it is set."""
    keys = list(search.space)
    combos = itertools.product(*(search.space[key].grid_values() or [] for key in keys))
    trials = [dict(zip(keys, values)) for values in combos]
    return trials[: search.n_trials] if search.n_trials else trials


def sample(param: Param, rng: np.random.Generator) -> Any:
    """One value of ``param``, uniform over its choices or range (in log space with ``log``)."""
    if param.choices is not None:
        return param.choices[int(rng.integers(len(param.choices)))]
    low, high = param.bounds
    if param.is_int:
        if param.log:
            value = math.exp(rng.uniform(math.log(low), math.log(high + 1)))
            return int(min(high, max(low, math.floor(value))))
        step = int(param.step or 1)
        return int(low + step * rng.integers((high - low) // step + 1))
    if param.log:
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    if param.step:
        return float(round(low + param.step * rng.integers(int((high - low) / param.step) + 1), 12))
    return float(rng.uniform(low, high))


def random_trial(search: SearchConfig, number: int) -> dict[str, Any]:
    """Trial ``number``'s parameters: its own random stream, independent of the other trials."""
    rng = np.random.default_rng([search.seed, number])
    return {key: sample(param, rng) for key, param in search.space.items()}


def planned(search: SearchConfig) -> list[dict[str, Any]]:
    """All trials of a grid or random search, by number."""
    if search.sampler == "grid":
        return grid(search)
    if search.sampler == "random":
        return [random_trial(search, n) for n in range(search.n_trials or 0)]
    raise ValueError(f"{search.sampler} trials are asked as results come in, not planned")


def _distributions(search: SearchConfig) -> dict[str, Any]:
    """Optuna distributions; choices become categorical over their JSON text (lists are allowed)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for key, p in search.space.items():
        if p.choices is not None:
            out[key] = CategoricalDistribution([json.dumps(c) for c in p.choices])
        elif p.is_int:
            out[key] = IntDistribution(*p.bounds, log=p.log, step=int(p.step or 1))
        else:
            out[key] = FloatDistribution(*p.bounds, log=p.log, step=p.step)
    return out


def tpe_batch(
    search: SearchConfig, direction: Literal["minimize", "maximize"], finished: list[dict[str, Any]], n: int
) -> list[dict[str, Any]]:
    """Ask TPE for ``n`` trials, given the finished results (dicts with params, state, score)."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = _distributions(search)
    # constant_liar: the trials of one batch run at once, so each ask counts the earlier ones as pending
    sampler = optuna.samplers.TPESampler(seed=search.seed + len(finished), constant_liar=True)
    study = optuna.create_study(direction=direction, sampler=sampler)
    for result in finished:
        params = {
            k: json.dumps(v) if search.space[k].choices is not None else v
            for k, v in result["params"].items()
            if k in dists
        }
        if len(params) != len(dists):
            continue  # a trial of another search space: nothing to learn from
        ok = result["state"] == "complete"
        study.add_trial(
            create_trial(
                params=params,
                distributions=dists,
                value=result["score"] if ok else None,
                state=TrialState.COMPLETE if ok else TrialState.FAIL,
            )
        )
    asked = []
    for _ in range(n):
        trial = study.ask(dists)
        asked.append({k: json.loads(v) if search.space[k].choices is not None else v for k, v in trial.params.items()})
    return asked
