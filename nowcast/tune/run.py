"""The search: plan trials on the driver, run them on an engine's workers, record each as it ends.

    nowcast tune --config configs/tune/debug.yaml                              # Dask LocalCluster
    nowcast tune --config configs/tune/X.yaml --engine spark --master spark://HOST:7077
    nowcast tune --config configs/tune/X.yaml --engine dask --scheduler tcp://HEAD:8786

1. the base train config (train_config + fixed) and every searched key are checked before any
   trial runs: a key the train config does not have, or a value it refuses, names the key;
2. trials are planned (grid, random) or asked of TPE in batches (``samplers.py``);
3. each trial is one training run of ``budget_steps`` on a worker (``trial.py``); its result is
   appended to ``trials.jsonl`` on the driver the moment it comes back;
4. reports are rewritten: results.csv/.md, scores.png, best.yaml (``report.py``).

A re-run with the same config resumes: finished trials are skipped (failed ones too, unless
``--retry-failed``), a trial interrupted while training continues from its ``last.pt``, and a
larger ``n_trials`` adds trials. The engines are ingest's (``nowcast.ingest.engines``): one
function mapped over many items on Dask or Spark, every item back once with its result or error.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nowcast import objstore
from nowcast.config import dump_config, read_yaml, validate
from nowcast.errors import ConfigError
from nowcast.train.config import TrainConfig
from nowcast.tune.config import TuneConfig
from nowcast.tune.report import best_config, write_reports
from nowcast.tune.samplers import planned, tpe_batch
from nowcast.tune.trial import TrialJob, TrialRunner, set_key

log = logging.getLogger(__name__)
RESULTS = "trials.jsonl"
SETTINGS = "tune.yaml"


@dataclass
class TuneSummary:
    out_dir: Path
    results: list[dict[str, Any]]
    ran: int  # trials run by this call
    paths: dict[str, Path]

    @property
    def n_complete(self) -> int:
        return sum(r["state"] == "complete" for r in self.results)

    @property
    def n_failed(self) -> int:
        return len(self.results) - self.n_complete


def base_train_config(cfg: TuneConfig, source: str) -> dict[str, Any]:
    """train_config + fixed, checked, as plain data; every searched value is checked against it.

    Raises:
        ConfigError: the base config is invalid, or a searched key or value is (names the key).
    """
    tree = read_yaml(cfg.train_config)
    for key, value in cfg.fixed.items():
        tree = set_key(tree, key, value)
    where = f"{cfg.train_config} with {source}: fixed"
    base = validate(TrainConfig, tree, where).model_dump(mode="json")
    for key, param in cfg.search.space.items():
        for value in param.edge_values():
            try:
                validate(TrainConfig, set_key(base, key, value), "trial")
            except ConfigError as e:
                detail = str(e).split("\n", 1)[-1].strip()
                raise ConfigError(
                    f"{source}: search.space.{key} = {value!r} is not a valid train config: {detail}"
                ) from None
    return base


def read_results(folder: Path) -> dict[int, dict[str, Any]]:
    """Finished trials by number (a later line for the same number wins: a retried trial)."""
    results: dict[int, dict[str, Any]] = {}
    path = folder / RESULTS
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill: that trial runs again
            results[int(result["number"])] = result
    return results


def _append(folder: Path, result: dict[str, Any]) -> None:
    with (folder / RESULTS).open("a") as f:
        f.write(json.dumps(result) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _settings(cfg: TuneConfig, base: dict[str, Any]) -> str:
    """What makes two runs the same search: not where or how parallel they run, nor how many
    trials (trial n's parameters do not depend on n_trials, so a larger n_trials extends a search)."""
    search = cfg.search.model_dump(mode="json", exclude={"parallel_trials", "n_trials"})
    return json.dumps({"base": base, "budget_steps": cfg.budget_steps, "metric": cfg.metric, "search": search})


def _check_same_search(folder: Path, cfg: TuneConfig, base: dict[str, Any]) -> None:
    saved = folder / SETTINGS
    settings = _settings(cfg, base)
    fingerprint = folder / ".search.json"
    if fingerprint.exists() and fingerprint.read_text() != settings:
        raise ConfigError(
            f"{folder} holds the trials of another search (its {SETTINGS} differs in the train config, "
            "budget, metric or search space); choose another name, or delete that folder to start over"
        )
    fingerprint.write_text(settings)
    saved.write_text(dump_config(cfg))


@contextmanager
def _engine(cfg: TuneConfig):
    """Ingest's engine; Dask workers made non-daemonic so a trial's DataLoader may start workers."""
    import dask
    import distributed  # noqa: F401 - loads its config defaults first: leaving the set() below must not drop them

    from nowcast.ingest.engines import open_engine

    with dask.config.set({"distributed.worker.daemon": False}), open_engine(cfg.engine) as engine:
        yield engine


def run_tune(cfg: TuneConfig, source: str = "tune config", retry_failed: bool = False) -> TuneSummary:
    """Run (or resume) the search ``cfg`` describes; see the module docstring.

    Args:
        cfg: the resolved tune config.
        source: where it came from, for error messages.
        retry_failed: run failed trials again (with the same parameters).

    Raises:
        ConfigError: a bad base config or search space, or an out_dir holding another search.
    """
    folder = Path(cfg.out_dir) / cfg.name
    base = base_train_config(cfg, source)
    folder.mkdir(parents=True, exist_ok=True)
    _check_same_search(folder, cfg, base)
    trials_dir = cfg.trials_dir or str(folder / "trials")
    if not objstore.is_url(trials_dir):  # workers resolve relative paths against their own folders
        trials_dir = os.path.abspath(trials_dir)
    threads = cfg.threads_per_trial or max(1, (os.cpu_count() or 1) // cfg.engine.n_workers)
    runner = TrialRunner(base, cfg.metric, cfg.budget_steps, trials_dir, threads)
    results = read_results(folder)
    done = {n for n, r in results.items() if r["state"] == "complete" or not retry_failed}
    jobs: list[TrialJob] = []
    if cfg.search.sampler != "tpe":
        plan = planned(cfg.search)
        jobs = [TrialJob(n, params) for n, params in enumerate(plan) if n not in done]
    else:
        jobs = [TrialJob(n, r["params"]) for n, r in sorted(results.items()) if n not in done]
    n_target = len(planned(cfg.search)) if cfg.search.sampler != "tpe" else (cfg.search.n_trials or 0)
    log.info(
        "tune %s: %d trials finished earlier, %d to run (%s search, %d steps each, %d thread(s) per trial)",
        folder,
        len(done),
        max(0, n_target - len(done)),
        cfg.search.sampler,
        cfg.budget_steps,
        threads,
    )
    ran = 0
    if jobs or (cfg.search.sampler == "tpe" and len(done) < n_target):
        with _engine(cfg) as engine:
            ran += _run_jobs(engine, runner, jobs, folder, results)
            if cfg.search.sampler == "tpe":
                ran += _run_tpe(engine, runner, cfg, folder, results)
    paths = write_reports(list(results.values()), cfg, base, folder)
    found = best_config(list(results.values()), cfg, base)
    if found is not None:
        best, _ = found
        log.info("best: trial %d, %s %.4g (%s)", best["number"], cfg.metric, best["score"], best["params"])
    return TuneSummary(folder, sorted(results.values(), key=lambda r: r["number"]), ran, paths)


def _run_tpe(engine, runner: TrialRunner, cfg: TuneConfig, folder: Path, results: dict[int, dict]) -> int:
    """Ask TPE for batches of trials until n_trials have finished."""
    batch = cfg.search.parallel_trials or cfg.engine.n_workers
    target = cfg.search.n_trials or 0  # required for tpe by SearchConfig
    ran = 0
    while len(results) < target:
        n = min(batch, target - len(results))
        history = [results[k] for k in sorted(results)]
        first = max(results, default=-1) + 1
        jobs = [TrialJob(first + i, p) for i, p in enumerate(tpe_batch(cfg.search, cfg.direction, history, n))]
        ran += _run_jobs(engine, runner, jobs, folder, results)
    return ran


def _run_jobs(engine, runner: TrialRunner, jobs: list[TrialJob], folder: Path, results: dict[int, dict]) -> int:
    for job, outcome in engine.map_unordered(runner, jobs):
        if isinstance(outcome, Exception):  # the worker itself failed (killed, lost), not the training
            outcome = {
                "number": job.number,
                "params": job.params,
                "state": "failed",
                "score": None,
                "step": 0,
                "error": f"the worker running the trial failed: {type(outcome).__name__}: {outcome}"[:2000],
            }
        results[job.number] = outcome
        _append(folder, outcome)
        if outcome["state"] == "complete":
            log.info(
                "trial %d: %s %.4g in %.1f s (%s)",
                job.number,
                runner.metric,
                outcome["score"],
                outcome.get("seconds", 0.0),
                job.params,
            )
        else:
            log.warning("trial %d failed (%s): %s", job.number, job.params, outcome["error"].splitlines()[0])
    return len(jobs)
