"""Launch training on several processes through torchrun (a subprocess with a list argv, no shell)."""

from __future__ import annotations

import os
import subprocess
import sys


def torchrun_argv(
    config: str,
    nproc: int,
    overrides: list[str],
    resume: bool = False,
    stop_at: int | None = None,
    nnodes: str | None = None,
    node_rank: int | None = None,
    rdzv_endpoint: str | None = None,
    rdzv_id: str | None = None,
) -> list[str]:
    """The torchrun command that runs ``python -m nowcast.train`` on ``nproc`` processes per node."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc)]
    if nnodes or rdzv_endpoint:  # several machines: rendezvous at rdzv_endpoint
        argv += [
            "--nnodes",
            str(nnodes or 1),
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            str(rdzv_endpoint),
            "--rdzv-id",
            rdzv_id or "nowcast",
        ]
        argv += ["--node-rank", str(node_rank)] if node_rank is not None else []
    else:
        argv += ["--standalone"]  # one machine: torchrun picks a free port
    argv += ["-m", "nowcast.train", "--config", str(config)]
    argv += ["--resume"] if resume else []
    argv += ["--stop-at", str(stop_at)] if stop_at is not None else []
    return argv + list(overrides)


def launch(argv: list[str], nproc: int) -> int:
    """Run torchrun; CPU threads are shared out between the processes. Returns its exit status."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return subprocess.run(argv, env=env, check=False).returncode
