"""TuneConfig: a search over train config keys, loaded from configs/tune/*.yaml.

train_config: configs/train/debug.yaml     # what every trial starts from
fixed: {data.stores: [runs/mock.zarr]}     # train keys set the same in every trial
budget_steps: 30                           # each trial trains this many steps (optim.max_steps)
metric: csi_1mm_mean                       # scored on the validation block at the last step
search:
  sampler: random                          # grid, random, or tpe (Optuna's TPE)
  n_trials: 8
  space:
    optim.lr: {low: 1.0e-4, high: 1.0e-2, log: true}    # a float range
    model.stem_channels: {low: 4, high: 16, step: 4}     # an int range (int bounds)
    model.hidden_channels: {choices: [[4, 8], [8, 16]]}  # any values
engine: {name: dask, n_workers: 2}         # where trials run (ingest's engines)
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from nowcast.config import Section
from nowcast.ingest.config import EngineConfig

# metric -> direction: CSI is better higher, losses and errors lower
METRICS: dict[str, Literal["minimize", "maximize"]] = {
    "csi_1mm_mean": "maximize",
    "val_loss": "minimize",
    "mae_mmh_mean": "minimize",
}


class Param(Section):
    """One searched key: ``choices``, or a range ``low``..``high`` (int when both bounds are ints)."""

    choices: list[Any] | None = Field(None, min_length=1)
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False  # sample the range evenly in log space
    step: int | float | None = Field(None, gt=0)  # values low, low + step, ... (grid needs it for floats)

    @model_validator(mode="after")
    def _check(self) -> Param:
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.step is not None or self.log:
                raise ValueError("give either choices, or low/high (with log or step), not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give choices, or both low and high")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("log needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("log and step do not go together")
        if self.is_int and self.step is not None and not isinstance(self.step, int):
            raise ValueError("an int range needs an int step")
        return self

    @property
    def is_int(self) -> bool:
        return self.choices is None and all(isinstance(v, int) for v in (self.low, self.high))

    @property
    def bounds(self) -> tuple[Any, Any]:
        """(low, high) of a range (ints for an int range)."""
        assert self.low is not None and self.high is not None, "bounds of a choices parameter"
        return self.low, self.high

    def grid_values(self) -> list[Any] | None:
        """Every value for a grid search, or None for a float range without a step."""
        if self.choices is not None:
            return list(self.choices)
        low, high = self.bounds
        if self.is_int:
            return list(range(low, high + 1, int(self.step or 1)))
        if self.step is None:
            return None
        n = int(math.floor((high - low) / self.step + 1e-9))
        return [round(low + i * self.step, 12) for i in range(n + 1)]

    def edge_values(self) -> list[Any]:
        """The values a config check tries: every choice, or both ends of the range."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]


class SearchConfig(Section):
    sampler: Literal["grid", "random", "tpe"] = "random"
    n_trials: int | None = Field(8, ge=1)  # grid: None runs the whole grid
    seed: int = 0  # the same seed gives the same trials
    space: dict[str, Param] = Field(min_length=1)
    # tpe: trials asked at a time, each batch learning from the ones before (default: engine.n_workers)
    parallel_trials: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> SearchConfig:
        if self.sampler == "grid":
            bad = [key for key, param in self.space.items() if param.grid_values() is None]
            if bad:
                raise ValueError(f"grid search needs choices, an int range or a step for: {', '.join(bad)}")
        elif self.n_trials is None:
            raise ValueError(f"n_trials is needed for the {self.sampler} sampler")
        return self


class TuneConfig(Section):
    train_config: str  # the train YAML every trial starts from
    fixed: dict[str, Any] = {}  # dotted train keys set in every trial, e.g. {data.stores: [x.zarr]}
    budget_steps: int = Field(ge=1)  # optim.max_steps of every trial
    metric: Literal["csi_1mm_mean", "val_loss", "mae_mmh_mean"] = "csi_1mm_mean"
    search: SearchConfig
    out_dir: str = "runs/tune"
    name: str = "default"  # results in out_dir/name
    trials_dir: str | None = None  # trial run folders (default out_dir/name/trials); may be s3://...
    engine: EngineConfig = EngineConfig()
    threads_per_trial: int | None = Field(None, ge=1)  # default: this machine's cores / engine.n_workers

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        return METRICS[self.metric]
