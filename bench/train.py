"""Training benchmarks, each measured side by side in one run.

1. loader: samples/s training from the store through the partition-local loader, vs the same
   model fed from batches already in memory (goal: ratio >= 0.95, the loader keeps up).
2. cell: forward + backward over a sequence from a zero state, our ConvLSTMCell.unroll vs the
   common 8-convolution ConvLSTM of the same size stepped in a loop, both at one torch thread,
   timed as process CPU time (goal: ours >= 1.3x faster). A second speed-up row gives ours the
   zero state as tensors, so the share of the skipped first hidden convolution is visible.
3. scaling: 2 DDP processes (gloo, one thread each) vs 1: efficiency = throughput_2 / (2 x throughput_1).
"""

from __future__ import annotations

import itertools
import os
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.multiprocessing as mp
from torch import nn

from nowcast.config import validate
from nowcast.model import ConvLSTMCell, build_model
from nowcast.store import StoreReader, write_mock_store
from nowcast.train.config import TrainConfig
from nowcast.train.data import WindowDataset, build_windows, make_loader, plan_epoch
from nowcast.train.loop import train_step
from nowcast.train.state import lr_lambda


class ReferenceConvLSTMCell(nn.Module):
    """ConvLSTM written the common way: one convolution per gate for x and one for h (8 convs)."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int):
        super().__init__()
        conv = lambda c: nn.Conv2d(c, hidden_channels, kernel_size, padding=kernel_size // 2)  # noqa: E731
        self.wx = nn.ModuleList(conv(in_channels) for _ in range(4))
        self.wh = nn.ModuleList(conv(hidden_channels) for _ in range(4))

    def forward(self, x, state):
        h, c = state
        i, f, o, g = (wx(x) + wh(h) for wx, wh in zip(self.wx, self.wh))
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


def _config(store: Path, quick: bool, workers: int, **optim) -> TrainConfig:
    return validate(
        TrainConfig,
        {
            "data": {"stores": [str(store)], "crop_size": 64, "val_fraction": 0.1, "chunks_in_memory": 2},
            "model": {
                "num_input_frames": 6,
                "num_output_frames": 6,
                "stem_channels": 8,
                "hidden_channels": [16, 32] if quick else [32, 64],
                "kernel_sizes": [3, 3],
                "downsample": [2],
            },
            "optim": {"batch_size": 4, "num_workers": workers, "max_steps": 1000, "warmup_steps": 10, **optim},
            "run": {"seed": 0},
        },
        "bench",
    )


def _samples_per_s(model, cfg, batches) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    batches = iter(batches)
    x, y, context = next(batches)  # warm-up step (and loader start-up) not timed
    train_step(model, optimizer, scheduler, x, y, context, cfg, torch.device("cpu"))
    t0, n = time.perf_counter(), 0
    for x, y, context in batches:
        train_step(model, optimizer, scheduler, x, y, context, cfg, torch.device("cpu"))
        n += len(x)
    return n / (time.perf_counter() - t0)


def bench_loader(out_dir: Path, quick: bool) -> list[dict]:
    """Store loader (2 workers) vs the same batches from memory, same model, seed and batch size.

    The trainer runs at one torch thread in both, so the loader workers (one thread each) do not
    fight the trainer for its thread; the runs alternate (store, memory, store, memory, ...) so
    load drift on a shared machine hits both, and the ratio is the median of the rounds'.
    """
    store = out_dir / "train-bench-store.zarr"
    write_mock_store(str(store), n_times=96 if quick else 240, shape=(128, 128), chunk_time=12, missing=(30,))
    cfg = _config(store, quick, workers=2)
    reader = StoreReader(str(store))
    train_w, _ = build_windows([reader], cfg)
    plan = plan_epoch(train_w.units([reader.chunk_time]), 0, 0, 1, 2, cfg.optim.batch_size)
    steps, rounds = min(plan.steps, 12 if quick else 24), 2 if quick else 3

    def from_store() -> Iterator:
        dataset = WindowDataset([reader], train_w, plan.streams[0], cfg, cfg.optim.batch_size, (0, 0, 0))
        return itertools.islice(make_loader(dataset, cfg.optim.batch_size, 2), steps)

    in_memory = [(x.clone(), y.clone(), c.clone()) for x, y, c in from_store()]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rates: dict[str, list[float]] = {"store": [], "memory": []}
    try:
        for _ in range(rounds):
            for name, batches in (("store", from_store()), ("memory", iter(in_memory))):
                torch.manual_seed(0)
                rates[name].append(_samples_per_s(build_model(cfg.model), cfg, batches))
    finally:
        torch.set_num_threads(threads)
    ratio = statistics.median(s / m for s, m in zip(rates["store"], rates["memory"]))
    return [
        {
            "name": "loader samples/s (store, 2 workers; trainer 1 thread)",
            "value": statistics.median(rates["store"]),
            "unit": "samples/s",
        },
        {
            "name": "loader samples/s (in memory; trainer 1 thread)",
            "value": statistics.median(rates["memory"]),
            "unit": "samples/s",
        },
        {
            "name": f"store loader / in memory (median of {rounds} alternating rounds)",
            "value": ratio,
            "unit": "x",
            "goal": ">= 0.95",
            "ok": ratio >= 0.95,
        },
    ]


def _cpu_seconds(fn) -> float:
    """CPU time of this process for ``fn()``: at one thread it is the work done, whatever else
    the machine runs at the time (wall time on a shared machine mostly measures the neighbours)."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def _ours(cell: ConvLSTMCell, x: torch.Tensor, zero_state: bool):
    state = None if zero_state else cell.init_state(x[:, 0])  # None: the model's encoder path
    return lambda: cell.unroll(x, state, x.shape[1])[0].square().mean().backward()


def _reference(cell: ReferenceConvLSTMCell, x: torch.Tensor, hidden: int):
    def step():
        b, t, _, h, w = x.shape
        state = (x.new_zeros(b, hidden, h, w), x.new_zeros(b, hidden, h, w))
        outputs = []
        for i in range(t):
            state = cell(x[:, i], state)
            outputs.append(state[0])
        torch.stack(outputs, dim=1).square().mean().backward()

    return step


def bench_cell(quick: bool) -> list[dict]:
    """Forward + backward over a sequence from a zero state, both at one torch thread, same input;
    runs interleaved (A B C A B C ...) after a warm-up of each, median of the repeats."""
    c_in, hidden, size = (16, 32, 32) if quick else (32, 64, 64)
    repeats = 7 if quick else 9
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.randn(4, 6, c_in, size, size)
        torch.manual_seed(0)
        ours = ConvLSTMCell(c_in, hidden, 3)
        reference = ReferenceConvLSTMCell(c_in, hidden, 3)
        runs = {
            "ours": _ours(ours, x, zero_state=True),
            "ours, explicit zero state": _ours(ours, x, zero_state=False),
            "reference": _reference(reference, x, hidden),
        }
        times = {name: [] for name in runs}
        for r in range(repeats + 1):
            for name, fn in runs.items():
                seconds = _cpu_seconds(fn)
                if r:  # the first round is warm-up
                    times[name].append(seconds)
    finally:
        torch.set_num_threads(threads)
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    speedup = ms["reference"] / ms["ours"]
    explicit = ms["reference"] / ms["ours, explicit zero state"]
    shape = f"({c_in}->{hidden}, {size}x{size}, B4 T6, 1 thread, CPU time)"
    return [
        {"name": f"ConvLSTM layer fwd+bwd, ours {shape}", "value": ms["ours"], "unit": "ms"},
        {"name": "ConvLSTM layer fwd+bwd, reference (8 convs per step)", "value": ms["reference"], "unit": "ms"},
        {
            "name": "ConvLSTM speed-up over reference",
            "value": speedup,
            "unit": "x",
            "goal": ">= 1.3",
            "ok": speedup >= 1.3,
        },
        {"name": "ConvLSTM speed-up, ours given the zero state as tensors", "value": explicit, "unit": "x"},
    ]


def _scaling_rank(rank: int, world: int, port: int, steps: int, result: mp.Queue) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    cfg = _config(Path("unused"), True, workers=0)
    torch.manual_seed(0)
    model = DistributedDataParallel(build_model(cfg.model))
    x = torch.rand(2, 6, 1, 64, 64) * 10  # per-rank batch of 2: weak scaling
    y = torch.rand(2, 6, 1, 64, 64) * 10
    rate = _samples_per_s(model, cfg, [(x, y)] * (steps + 1))
    result.put(rate)
    dist.destroy_process_group()


def bench_scaling(quick: bool) -> list[dict]:
    rates = {}
    ctx = mp.get_context("spawn")
    for world in (1, 2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        queue = ctx.Queue()
        mp.start_processes(
            _scaling_rank, args=(world, port, 4 if quick else 15, queue), nprocs=world, start_method="spawn", join=True
        )
        rates[world] = sum(queue.get() for _ in range(world))
    efficiency = rates[2] / (2 * rates[1])
    return [
        {"name": "DDP samples/s, 1 process (1 thread)", "value": rates[1], "unit": "samples/s"},
        {"name": "DDP samples/s, 2 processes (1 thread each)", "value": rates[2], "unit": "samples/s"},
        {
            "name": "scaling efficiency 2 vs 1 process",
            "value": efficiency,
            "unit": "",
            "goal": ">= 0.8 (2 free cores)",
            "ok": efficiency >= 0.8,
        },
    ]


def run(quick: bool, out_dir: Path) -> list[dict]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return bench_cell(quick) + bench_loader(out_dir, quick) + bench_scaling(quick)
