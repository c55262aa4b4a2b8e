"""Training samples from the store: an index of valid windows and partition-local loading.

A window is ``num_input_frames + num_output_frames`` consecutive times, all valid: it never
crosses a missing time, nor the border between the training and validation blocks.

Partitioning. The unit of data is one time chunk of one store (``store.chunk_time`` frames),
called a *unit* here. Each epoch the units that hold window starts are shuffled with
``(seed, epoch)`` and dealt round-robin to ranks; each rank deals its units again to its
DataLoader workers (*streams*). A window belongs to the unit of its first frame; its last frames
may lie in the next chunk, so a worker reads each unit it owns plus the ``length - 1`` frames
after it (read-only overlap; those frames are owned, and read as their own unit, elsewhere).
A worker holds ``chunks_in_memory`` units at a time, shuffles their windows together, and cuts
random crops in memory: one read per unit, never a read per sample.

Every rank can compute the whole plan alone, so all ranks agree without communication on the
number of steps per epoch (the minimum over ranks of their full batches): DDP never hangs.
Random choices derive from ``(seed, epoch, rank, stream)`` and the DataLoader takes batches
from its workers round-robin, so a resumed run can skip the batches already taken without
reading them and continue with exactly the batches it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from nowcast.store import StoreReader
from nowcast.timeaxis import whole_windows
from nowcast.train.config import DataConfig, TrainConfig

UNIT_SHIFT = 32  # unit id = store index << 32 | time chunk index


@dataclass(frozen=True)
class Windows:
    """Sample windows: store index and first time index of each."""

    store: np.ndarray  # (N,) int64
    start: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.start)

    def units(self, chunk_times: list[int]) -> np.ndarray:
        """(N,) unit id of every window: the time chunk of its first frame."""
        chunk = self.start // np.asarray(chunk_times, dtype=np.int64)[self.store]
        return (self.store << UNIT_SHIFT) | chunk


def validation_times(reader: StoreReader, data: DataConfig) -> np.ndarray:
    """(n_times,) bool: True for times in the validation blocks (contiguous, never sampled at random)."""
    mask = np.zeros(reader.n_times, bool)
    if data.val_ranges:
        for start, end in data.val_ranges:
            mask |= (reader.times >= np.datetime64(start, "s")) & (reader.times < np.datetime64(end, "s"))
        return mask
    valid = np.flatnonzero(reader.valid)
    n_val = int(round(len(valid) * data.val_fraction))
    if n_val:
        mask[valid[len(valid) - n_val] :] = True  # the last val_fraction of the valid times
    return mask


def wet_fraction(reader: StoreReader, threshold_mmh: float, chunks: list[int]) -> np.ndarray:
    """(n_times,) fraction of data pixels >= threshold, filled for the given time chunks only."""
    frac = np.zeros(reader.n_times, np.float64)
    for chunk in chunks:
        lo, hi = chunk * reader.chunk_time, min((chunk + 1) * reader.chunk_time, reader.n_times)
        rain = reader.read(lo, hi)  # (t, ny, nx)
        n_data = np.isfinite(rain).sum(axis=(1, 2))
        frac[lo:hi] = (rain >= threshold_mmh).sum(axis=(1, 2)) / np.maximum(n_data, 1)
    return frac


def build_windows(
    readers: list[StoreReader], cfg: TrainConfig, wet: list[np.ndarray] | None = None
) -> tuple[Windows, Windows]:
    """The training and validation windows of all stores.

    Args:
        readers: the stores.
        cfg: the run config (window length, validation split, rain filter).
        wet: per store, ``wet_fraction`` of every time; needed when ``data.min_rain_fraction > 0``.

    Returns:
        (train, val) windows; validation keeps every ``val_stride``-th window.
    """
    length, data = cfg.window_length, cfg.data
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"train": [], "val": []}
    for i, reader in enumerate(readers):
        val = validation_times(reader, data)
        train = np.flatnonzero(whole_windows(reader.valid & ~val, length))
        if data.min_rain_fraction > 0:
            assert wet is not None, "min_rain_fraction needs the wet fraction of every time"
            csum = np.concatenate([[0.0], np.cumsum(wet[i])])
            train = train[(csum[train + length] - csum[train]) / length >= data.min_rain_fraction]
        val_starts = np.flatnonzero(whole_windows(reader.valid & val, length))[:: data.val_stride]
        for name, starts in (("train", train), ("val", val_starts)):
            parts[name].append((np.full(len(starts), i, np.int64), starts.astype(np.int64)))
    join = lambda p: Windows(np.concatenate([s for s, _ in p]), np.concatenate([t for _, t in p]))  # noqa: E731
    return join(parts["train"]), join(parts["val"])


@dataclass(frozen=True)
class EpochPlan:
    """Which units each rank's streams read this epoch, and how many steps every rank takes."""

    streams: list[list[np.ndarray]]  # [rank][stream] -> unit ids in reading order
    batches: list[list[int]]  # [rank][stream] -> full batches the stream yields
    steps: int  # batches each rank takes this epoch (the same on every rank)


def plan_epoch(
    units: np.ndarray, seed: int, epoch: int, world_size: int, num_streams: int, batch_size: int
) -> EpochPlan:
    """Shuffle the units with (seed, epoch) and deal them to ranks, then to streams.

    Args:
        units: (N,) unit id of every training window (``Windows.units``).
        batch_size: per rank.
    """
    ids, counts = np.unique(units, return_counts=True)
    order = np.random.default_rng([seed, epoch]).permutation(len(ids))
    streams, batches = [], []
    for rank in range(world_size):
        mine = order[rank::world_size]
        streams.append([ids[mine[s::num_streams]] for s in range(num_streams)])
        batches.append([int(counts[mine[s::num_streams]].sum()) // batch_size for s in range(num_streams)])
    return EpochPlan(streams, batches, min(sum(b) for b in batches))


def resume_position(batches: list[int], taken: int) -> tuple[list[int], int]:
    """After ``taken`` round-robin batches: batches consumed per stream, and the stream that is next."""
    used, stream = [0] * len(batches), 0
    for _ in range(taken):
        while used[stream] >= batches[stream]:
            stream = (stream + 1) % len(batches)
        used[stream] += 1
        stream = (stream + 1) % len(batches)
    while sum(used) < sum(batches) and used[stream] >= batches[stream]:
        stream = (stream + 1) % len(batches)
    return used, stream


def _augment(window: np.ndarray, flip_y: bool, flip_x: bool, k: int) -> np.ndarray:
    if flip_y:
        window = window[:, ::-1]
    if flip_x:
        window = window[:, :, ::-1]
    if k:
        window = np.rot90(window, k, axes=(1, 2))
    return np.ascontiguousarray(window)


class WindowDataset(IterableDataset):
    """Yields ``(x, y, context)``: (T_in, 1, h, w) and (T_out, 1, h, w) float32 mm/h with NaN for no
    data, and (2,) the store's time step (s) and pixel size (m), which models may condition on.

    Each DataLoader worker serves one stream (``streams[(first_stream + worker_id) % n]``), so
    the loader needs exactly ``len(streams)`` workers (or none, with one stream). Stores are
    opened lazily in the worker that reads them.

    Args:
        readers: the stores (pickled to workers without open handles).
        windows: all windows of this split; only those in this rank's units are read.
        streams: unit ids per stream, in reading order (from ``plan_epoch`` or ``val_streams``).
        cfg: the run config.
        batch_size: per rank; training streams yield whole batches only.
        key: (seed, epoch, rank), the seed of every random choice.
        train: random crops, augmentation and shuffling; else centred crops in time order.
        skip: training batches already taken per stream (resume); None = none.
        first_stream: the stream worker 0 serves (resume keeps the round-robin order).
    """

    def __init__(
        self,
        readers: list[StoreReader],
        windows: Windows,
        streams: list[np.ndarray],
        cfg: TrainConfig,
        batch_size: int,
        key: tuple[int, int, int],
        train: bool = True,
        skip: list[int] | None = None,
        first_stream: int = 0,
    ):
        super().__init__()
        self.readers, self.windows, self.streams, self.cfg = readers, windows, streams, cfg
        self.units = windows.units([r.chunk_time for r in readers])
        self.batch_size, self.key, self.train = batch_size, key, train
        self.skip = skip or [0] * len(streams)
        self.first_stream = first_stream

    def _crop_size(self, store: int) -> tuple[int, int]:
        size = self.cfg.data.crop_size if self.train else self.cfg.data.val_crop_size
        if size is not None:
            return size, size
        m = self.cfg.model.multiple
        ny, nx = self.readers[store].grid.shape
        return ny // m * m, nx // m * m

    def _samples(self, stream: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Window index, group and augmentation (y0, x0, flip_y, flip_x, k) of every sample of a stream."""
        rng = np.random.default_rng([*self.key, stream])
        units, per_group = self.streams[stream], self.cfg.data.chunks_in_memory
        orders, groups = [], []
        for g in range(0, len(units), per_group):
            members = np.flatnonzero(np.isin(self.units, units[g : g + per_group]))  # time order
            orders.append(rng.permutation(members) if self.train else members)
            groups.append(np.full(len(members), g))
        order = np.concatenate(orders or [np.zeros(0, np.int64)])
        group = np.concatenate(groups or [np.zeros(0, np.int64)])
        store = self.windows.store[order]
        shapes = np.array([r.grid.shape for r in self.readers])[store]  # (n, 2)
        crops = np.array([self._crop_size(s) for s in range(len(self.readers))])[store]  # (n, 2)
        if np.any(shapes < crops):
            raise ValueError(f"crop {crops.max(0).tolist()} is larger than a store's domain {shapes.min(0).tolist()}")
        if self.train:
            corner = rng.integers(0, shapes - crops + 1)  # (n, 2)
            flips = rng.integers(0, 2, (len(order), 2)) * self.cfg.data.flips
            turns = rng.integers(0, 4, len(order)) * self.cfg.data.rot90
            keep = slice(self.skip[stream] * self.batch_size, len(order) // self.batch_size * self.batch_size)
        else:
            corner = (shapes - crops) // 2
            flips, turns, keep = np.zeros((len(order), 2), int), np.zeros(len(order), int), slice(None)
        aug = np.column_stack([corner, crops, flips, turns])  # (n, 7): y0, x0, h, w, flip_y, flip_x, k
        return order[keep], group[keep], aug[keep]

    def __iter__(self):
        info = get_worker_info()
        worker, n_workers = (0, 1) if info is None else (info.id, info.num_workers)
        if n_workers != len(self.streams):
            raise RuntimeError(f"the dataset has {len(self.streams)} streams but the loader {n_workers} workers")
        order, group, aug = self._samples((self.first_stream + worker) % n_workers)
        length, n_in = self.cfg.window_length, self.cfg.model.num_input_frames
        context = [torch.tensor([r.layout.time_step_s, r.grid.pixel_size], dtype=torch.float32) for r in self.readers]
        for g in np.unique(group):  # groups come in reading order
            members = np.flatnonzero(group == g)
            blocks = {}  # unit -> (first time index, frames): one read per unit
            for unit in np.unique(self.units[order[members]]):
                starts = self.windows.start[order[members]][self.units[order[members]] == unit]
                store = int(unit >> UNIT_SHIFT)
                lo, hi = int(starts.min()), int(starts.max()) + length
                blocks[unit] = lo, self.readers[store].read(lo, hi)  # (hi - lo, ny, nx)
            for i in members:
                w = order[i]
                lo, frames = blocks[self.units[w]]
                y0, x0, h, wd, flip_y, flip_x, k = aug[i]
                t0 = self.windows.start[w] - lo
                window = _augment(frames[t0 : t0 + length, y0 : y0 + h, x0 : x0 + wd], flip_y, flip_x, k)  # (L, h, w)
                window = torch.from_numpy(window)[:, None]  # (L, 1, h, w)
                yield window[:n_in], window[n_in:], context[self.windows.store[w]]


def val_streams(units: np.ndarray, rank: int, world_size: int, num_streams: int) -> list[np.ndarray]:
    """Validation units of this rank (fixed, in time order), dealt to its streams."""
    mine = np.unique(units)[rank::world_size]
    return [mine[s::num_streams] for s in range(num_streams)]


def make_loader(dataset: WindowDataset, batch_size: int, num_workers: int, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over ``dataset`` with one worker per stream (``num_workers`` 0 = in-process)."""
    # Workers read whole chunks ahead (4 batches each) so a slow read hides behind training steps.
    prefetch = 4 if num_workers else None
    return DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory, prefetch_factor=prefetch
    )
