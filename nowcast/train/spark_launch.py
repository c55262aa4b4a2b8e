"""Training launched by Spark: the same DDP run as torchrun's, one rank per Spark task.

    nowcast train --config configs/train/default.yaml --engine spark --num-processes 2        # local[2]
    nowcast train --config configs/train/default.yaml --engine spark \
        --master spark://HOST:7077 --num-processes 8 [--resume] [--stop-at N]

``pyspark.ml.torch.distributor.TorchDistributor`` (not local mode) starts a barrier stage of
``num_processes`` tasks; each task runs torchrun for one process, the ranks meet at rank 0's
task, and every rank runs ``nowcast.train.loop.train`` exactly as under torchrun: the same
partition-local readers, the same seed, so the same weights. Backend gloo on CPU, nccl on GPUs
(``run.device=cuda``, or ``auto`` with ``spark.task.resource.gpu.amount`` set); each CPU rank
uses ``spark.task.cpus`` threads.

What the executors need is what ingest's need (README, "Running on a cluster"): the same
environment (``requirements.lock``), the stores at a path or URL every task can read, and
``run.out_dir`` on a shared file system or in an object store (``s3://...``), since rank 0
may run on any executor and ``--resume`` reads ``last.pt`` on every rank.

The Spark session is the ingest engine's (Java and master checked first, workers on this
interpreter); the module is only imported by ``nowcast train --engine spark``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from nowcast import objstore
from nowcast.errors import ConfigError, NowcastError
from nowcast.train.config import TrainConfig

log = logging.getLogger(__name__)


def default_master(num_processes: int) -> str:
    return f"local[{num_processes}]"


def check_run_dir(cfg: TrainConfig, resume: bool) -> None:
    """Refuse before Spark starts what every rank would refuse after it started."""
    last = (
        objstore.join(cfg.run.out_dir, cfg.run.name, "last.pt")
        if objstore.is_url(cfg.run.out_dir)
        else str(Path(cfg.run.out_dir) / cfg.run.name / "last.pt")
    )
    found = objstore.exists(last) if objstore.is_url(last) else Path(last).exists()
    if found and not resume:
        raise ConfigError(
            f"run.name: {os.path.dirname(last)} already holds a run; pass --resume to continue it, "
            "or choose another run.name"
        )
    if resume and not found:
        raise ConfigError(f"--resume: there is no {last} to continue")


def train_on_spark(
    cfg: TrainConfig,
    num_processes: int,
    master: str | None = None,
    resume: bool = False,
    stop_at: int | None = None,
    spark_conf: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Train with ``num_processes`` DDP ranks as Spark tasks; returns rank 0's ``train`` result.

    Args:
        cfg: the resolved config (the ranks receive it as data, not as a file path).
        num_processes: DDP ranks, one Spark task each; the cluster needs that many free task slots.
        master: Spark master URL (default ``local[num_processes]``).
        resume, stop_at: as for ``nowcast train``.
        spark_conf: extra ``spark.*`` settings for the session (GPU resources, executor memory).

    Raises:
        ConfigError: a bad config, or a run folder that does not fit ``resume``.
        NowcastError: training failed on the cluster (the message carries the rank's error).
    """
    from nowcast.ingest.config import EngineConfig, SparkConfig
    from nowcast.ingest.engines.spark import open_spark

    if cfg.optim.batch_size % num_processes:
        raise ConfigError(
            f"optim.batch_size {cfg.optim.batch_size} must be divisible by the number of processes ({num_processes})"
        )
    check_run_dir(cfg, resume)
    # a failed rank fails the barrier stage; Spark's retries would only restart training from step 0
    conf = {"spark.app.name": "nowcast-train", "spark.task.maxFailures": "1", **(spark_conf or {})}
    engine = EngineConfig(name="spark", spark=SparkConfig(master=master or default_master(num_processes), conf=conf))
    with open_spark(engine) as spark_engine:
        from pyspark.ml.torch.distributor import TorchDistributor

        sc = spark_engine.sc
        gpu_per_task = float(sc.getConf().get("spark.task.resource.gpu.amount", "0"))
        use_gpu = cfg.run.device == "cuda" or (cfg.run.device == "auto" and gpu_per_task > 0)
        threads = int(sc.getConf().get("spark.task.cpus", "1"))
        log.info(
            "training on Spark (%s): %d ranks, %s, %d thread(s) per rank",
            sc.master,
            num_processes,
            "nccl on GPUs" if use_gpu else "gloo on CPU",
            threads,
        )
        distributor = TorchDistributor(num_processes=num_processes, local_mode=False, use_gpu=use_gpu)
        try:
            result = distributor.run(spark_rank, cfg.model_dump(mode="json"), resume, stop_at, threads)
        except Exception as e:  # noqa: BLE001 - Spark wraps the rank's error in its own; unwrap it
            raise rank_error(e) from None
    if not isinstance(result, dict):
        raise NowcastError(f"training on Spark returned {type(result).__name__}, not rank 0's result")
    return result


def spark_rank(config: dict[str, Any], resume: bool, stop_at: int | None, threads: int) -> dict[str, Any]:
    """One rank, in the process torchrun starts inside a Spark task (RANK, WORLD_SIZE, ... are set)."""
    import torch

    from nowcast.config import validate
    from nowcast.logs import setup_logging
    from nowcast.train.remote import run_training

    setup_logging("INFO")
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the cores Spark gave this task, not the machine's
    torch.set_num_threads(threads)
    return run_training(validate(TrainConfig, config, "nowcast train --engine spark"), resume, stop_at)


_RANK_ERROR = re.compile(r"nowcast\.errors\.(\w+): (.+)")


def rank_error(error: Exception) -> NowcastError:
    """The rank's own nowcast error when Spark's message carries one, else the tail of Spark's."""
    from nowcast import errors

    text = str(error)
    found = _RANK_ERROR.findall(text)
    if found:
        name, message = found[-1]
        cls = getattr(errors, name, NowcastError)
        return (
            cls(message.strip()) if isinstance(cls, type) and issubclass(cls, NowcastError) else NowcastError(message)
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    tail = " | ".join(lines[-6:])[-1500:]
    return NowcastError(f"training on Spark failed: {type(error).__name__}: {tail}")
