"""Training: dataset over the store, partition-local sampling, DDP, loss, checkpoints, metrics.

Read ``loop.py`` first; ``data.py`` explains how samples are partitioned over ranks.
Only this package imports ``torch.distributed`` (in ``distributed.py``).
"""

from nowcast.train.config import DataConfig, LossConfig, OptimConfig, RunConfig, TrainConfig

__all__ = ["DataConfig", "LossConfig", "OptimConfig", "RunConfig", "TrainConfig", "train"]


def train(*args, **kwargs):
    """``nowcast.train.loop.train``, imported on first use (torch is heavy)."""
    from nowcast.train.loop import train as _train

    return _train(*args, **kwargs)
