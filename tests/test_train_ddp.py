"""Real DDP on 2 gloo processes over a real mock store: same weights as one process, partition-local
reads, and a run stopped and resumed through `nowcast train --nproc 2` equal to an uninterrupted one."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from nowcast.checkpoint import load_checkpoint
from nowcast.model import build_model
from nowcast.store import StoreReader, write_mock_store
from nowcast.train.data import build_windows, plan_epoch, val_streams
from nowcast.train.loop import train, train_step
from nowcast.train.state import lr_lambda

pytestmark = pytest.mark.slow


class RecordingReader(StoreReader):
    """The real store reader, noting every read (start, stop) in a file per rank."""

    def __init__(self, path, log_path):
        super().__init__(path)
        self.log_path = str(log_path)

    def read(self, start, stop, ys=slice(None), xs=slice(None)):
        with open(self.log_path, "a") as f:
            f.write(f"{start} {stop}\n")
        return super().read(start, stop, ys, xs)


def fixed_batch():
    g = torch.Generator().manual_seed(1)
    rain = torch.rand(4, 5, 1, 32, 32, generator=g) * 20
    rain[rain < 8] = 0
    rain[:, :, :, :4] = float("nan")
    return rain[:, :3], rain[:, 3:]


def steps_on_fixed_data(model, cfg, x, y, n=3):
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    for _ in range(n):
        context = torch.tensor([[300.0, 1000.0]]).expand(len(x), 2)  # time step (s), pixel size (m)
        train_step(model, optimizer, scheduler, x, y, context, cfg, torch.device("cpu"))


def _rank(rank, world, port, cfg, store, out):
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(cfg.run.seed)
    model = build_model(cfg.model)
    x, y = fixed_batch()
    half = slice(2 * rank, 2 * rank + 2)  # each rank takes its half of the global batch of 4
    steps_on_fixed_data(DistributedDataParallel(model), cfg, x[half], y[half])
    if rank == 0:
        torch.save(model.state_dict(), out / "ddp.pt")
    train(cfg, readers=[RecordingReader(store, out / f"reads{rank}.txt")])  # the real loop, 2 workers per rank


def test_ddp_matches_one_process_and_ranks_read_only_their_chunks(tiny_config, tmp_path):
    store = tmp_path / "mock.zarr"
    write_mock_store(str(store), n_times=64, shape=(48, 48), chunk_time=8, missing=(20,))
    cfg = tiny_config(store, tmp_path, optim={"batch_size": 4, "num_workers": 2}, run={"val_every": 100})
    train_w, val_w = build_windows([StoreReader(str(store))], cfg)
    plan = plan_epoch(train_w.units([8]), cfg.run.seed, 0, 2, 2, 2)
    cfg = tiny_config(
        store, tmp_path, optim={"batch_size": 4, "num_workers": 2, "max_steps": plan.steps}, run={"val_every": 100}
    )  # one epoch (one assignment of chunks to ranks), validation at its end
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(2, port, cfg, str(store), tmp_path), nprocs=2, join=True)

    torch.manual_seed(cfg.run.seed)
    model = build_model(cfg.model)
    steps_on_fixed_data(model, cfg, *fixed_batch())  # one process, the whole batch
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(ddp[key], value, rtol=1e-5, atol=1e-6)

    read = [{start // 8 for start, _ in np.loadtxt(tmp_path / f"reads{r}.txt", dtype=int, ndmin=2)} for r in (0, 1)]
    val_units = val_w.units([8])
    owned = [
        set(np.concatenate(plan.streams[r]).tolist()) | set(np.concatenate(val_streams(val_units, r, 2, 2)).tolist())
        for r in (0, 1)
    ]
    assert read[0] and read[1] and not read[0] & read[1]  # disjoint
    assert read[0] <= owned[0] and read[1] <= owned[1]  # each rank only its own chunks
    assert owned[0] | owned[1] == set(train_w.units([8]).tolist()) | set(val_units.tolist())  # together: all


def test_stop_and_resume_through_torchrun(tmp_path):
    store = tmp_path / "mock.zarr"
    write_mock_store(str(store), n_times=64, shape=(48, 48), chunk_time=8, missing=(20,))
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"data: {{stores: ['{store}'], crop_size: 32, val_fraction: 0.2, chunks_in_memory: 1}}\n"
        "model: {num_input_frames: 3, num_output_frames: 2, stem_channels: 4, hidden_channels: [4, 8],"
        " kernel_sizes: [3, 3], downsample: [2]}\n"
        "optim: {warmup_steps: 2, max_steps: 6, batch_size: 4, num_workers: 0}\n"
        "run: {val_every: 100, ckpt_every: 100}\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def nowcast(*args):
        cmd = [
            sys.executable,
            "-c",
            "from nowcast.cli import main; main()",
            "train",
            "--config",
            str(config),
            "--nproc",
            "2",
            *args,
        ]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    nowcast(f"run.out_dir={tmp_path / 'whole'}")
    nowcast(f"run.out_dir={tmp_path / 'parts'}", "--stop-at", "3")
    nowcast(f"run.out_dir={tmp_path / 'parts'}", "--resume")
    a, b = (load_checkpoint(tmp_path / d / "default" / "last.pt") for d in ("whole", "parts"))
    assert a["step"] == b["step"] == 6
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)
