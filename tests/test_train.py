"""Training pieces on a real mock store: windows, splits, the epoch plan, loss, checkpoints, resume."""

import os
import pickle

import numpy as np
import pytest
import torch

from nowcast.checkpoint import load_checkpoint, model_from_checkpoint
from nowcast.errors import CheckpointError, ConfigError
from nowcast.model.transform import rain_to_z
from nowcast.timeaxis import whole_windows
from nowcast.train.data import build_windows, plan_epoch, resume_position
from nowcast.train.loop import is_better, score_counts, scores, train
from nowcast.train.loss import LOSSES, LossConfig, get_loss, hko_weights, make_loss
from nowcast.verify.metrics import ScoreAccumulator


def test_windows_never_cross_an_invalid_time_or_the_validation_border(train_store, tiny_config, tmp_path):
    from nowcast.store import StoreReader

    reader = StoreReader(str(train_store))
    cfg = tiny_config(train_store, tmp_path)
    train_w, val_w = build_windows([reader], cfg)
    length = cfg.window_length
    val_start = np.flatnonzero(reader.valid)[-int(round(reader.valid.sum() * 0.2))]
    expected = [s for s in range(64 - length + 1) if reader.valid[s : s + length].all() and s + length <= val_start]
    assert train_w.start.tolist() == expected  # every valid window, and no other
    assert all(s >= val_start for s in val_w.start) and len(val_w) > 0
    whole = whole_windows(np.array([True, True, False, True, True, True]), 2)
    assert np.flatnonzero(whole).tolist() == [0, 3, 4] and len(whole) == 5
    assert whole_windows(np.ones(2, bool), 3).size == 0


def test_validation_ranges_are_whole_blocks(train_store, tiny_config, tmp_path):
    from nowcast.store import StoreReader

    reader = StoreReader(str(train_store))
    cfg = tiny_config(
        train_store, tmp_path, data={"val_ranges": [["2024-06-01T01:00", "2024-06-01T02:00"]], "val_stride": 1}
    )
    train_w, val_w = build_windows([reader], cfg)
    lo, hi = 12, 24  # 5-minute steps from 00:00
    assert all(lo <= s and s + cfg.window_length <= hi for s in val_w.start)
    assert all(s + cfg.window_length <= lo or s >= hi for s in train_w.start)


def test_epoch_plan_deals_disjoint_units_and_equal_steps():
    units = np.repeat(np.arange(20), np.arange(20) % 5 + 1)  # 20 units, uneven windows per unit
    plan = plan_epoch(units, seed=3, epoch=0, world_size=3, num_streams=2, batch_size=2)
    per_rank = [set(np.concatenate(streams).tolist()) for streams in plan.streams]
    assert set.union(*per_rank) == set(range(20))
    assert sum(len(s) for s in per_rank) == 20  # disjoint
    assert plan.steps == min(sum(b) for b in plan.batches) > 0
    again = plan_epoch(units, seed=3, epoch=1, world_size=3, num_streams=2, batch_size=2)
    assert [s.tolist() for s in again.streams[0]] != [s.tolist() for s in plan.streams[0]]  # reshuffled by epoch
    assert resume_position([3, 1, 2], 4) == ([2, 1, 1], 2)
    assert resume_position([3, 1, 2], 5) == ([2, 1, 2], 0)


def test_losses_mask_no_data_and_weight_heavy_rain(train_store, tiny_config, tmp_path):
    cfg = tiny_config(train_store, tmp_path)
    z_scale = cfg.model.dry_threshold_mmh, cfg.model.max_rain_mmh
    target = torch.tensor([0.0, 1.0, 3.0, 40.0, float("nan")]).view(1, 5, 1, 1, 1)
    assert hko_weights(torch.nan_to_num(target), cfg.loss).flatten().tolist() == [1, 1, 2, 30, 1]
    pred = torch.zeros_like(target)
    for name in LOSSES:
        value = get_loss(name)(pred, target, cfg.loss, *z_scale)
        assert torch.isfinite(value) and value > 0
    heavy_miss = make_loss(cfg.loss, *z_scale)(pred, target)
    pred_heavy = pred.clone()
    pred_heavy[0, 3] = 2.6  # ~ 40 mm/h in z space
    assert make_loss(cfg.loss, *z_scale)(pred_heavy, target) < heavy_miss / 3
    with pytest.raises(ConfigError, match="available: balanced_mse_mae, mae, mse, soft_csi"):
        get_loss("ssim")


def test_validation_scores_are_the_ones_evaluate_reports():
    """Training picks best.pt by CSI@1 and reports MAE exactly as `nowcast evaluate` computes them."""
    counts = score_counts(
        torch.tensor([2.0, 0, 2, 0]).view(1, 4, 1, 1, 1), torch.tensor([0.0, 1, 3, 40]).view(1, 4, 1, 1, 1), 1.0
    )
    csi = scores(counts.numpy())["csi_1mm"]  # false alarm, no event (1 is not above 1), hit, miss
    assert csi[0] == 0 and np.isnan(csi[1]) and csi[2:] == [1.0, 0.0]
    rng = np.random.default_rng(0)
    pred = rng.gamma(0.5, 2.0, (3, 4, 1, 16, 16)).astype(np.float32)  # (B, T, 1, H, W) mm/h
    target = rng.gamma(0.5, 2.0, pred.shape).astype(np.float32)
    target[:, :, :, :2] = np.nan
    pred[:, 3] = 0.0  # a lead with nothing forecast
    target[:, 3] = 0.0  # ... nor observed: CSI undefined
    counts = score_counts(torch.from_numpy(pred), torch.from_numpy(target), 1.0)
    accumulator = ScoreAccumulator(4, 1000.0)
    for p, t in zip(pred[:, :, 0], target[:, :, 0]):
        accumulator.add(p, t)
    expected = accumulator.result()
    got = scores(counts.numpy())
    np.testing.assert_allclose(got["csi_1mm"], expected["CSI@1"])  # NaN where evaluate has NaN
    np.testing.assert_allclose(got["mae_mmh"], expected["MAE"], rtol=1e-6)
    assert is_better(0.1, float("nan")) and is_better(float("nan"), float("nan")) and not is_better(float("nan"), 0.1)


def test_lead_weights_scale_each_leads_share_of_the_loss(train_store, tiny_config, tmp_path):
    target = torch.tensor([3.0, 3.0]).view(1, 2, 1, 1, 1)  # the tiny model's two output frames
    model = tiny_config(train_store, tmp_path).model
    wrong_second = torch.zeros_like(target)
    wrong_second[0, 0] = rain_to_z(target[0, 0], model.dry_threshold_mmh, model.max_rain_mmh)  # right at lead 1 only
    for name in LOSSES:
        loss = get_loss(name)
        z_scale = model.dry_threshold_mmh, model.max_rain_mmh
        plain = loss(wrong_second, target, tiny_config(train_store, tmp_path).loss, *z_scale)
        ignored = loss(
            wrong_second, target, tiny_config(train_store, tmp_path, loss={"lead_weights": [1.0, 0.0]}).loss, *z_scale
        )
        doubled = loss(
            wrong_second, target, tiny_config(train_store, tmp_path, loss={"lead_weights": [1.0, 2.0]}).loss, *z_scale
        )
        assert plain > 0.1 and ignored < 0.05 * plain  # soft_csi: a soft step is never exactly right
        torch.testing.assert_close(doubled - ignored, 2 * (plain - ignored))
    with pytest.raises(ConfigError, match="loss.lead_weights has 3 weights, the model 2 output frames"):
        tiny_config(train_store, tmp_path, loss={"lead_weights": [1.0, 1.0, 1.0]})


def test_bad_config_values_stop_with_the_key_named(train_store, tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="data.crop_size 30 must be divisible by model.multiple 4"):
        tiny_config(train_store, tmp_path, data={"crop_size": 30})
    with pytest.raises(ConfigError, match="data.stores: no nowcast store"):
        train(tiny_config(tmp_path / "nope.zarr", tmp_path))
    with pytest.raises(ConfigError, match="min_rain_fraction"):
        train(tiny_config(train_store, tmp_path, data={"min_rain_fraction": 1.0}))
    with pytest.raises(ConfigError, match="optim.batch_size: Input should be greater"):
        tiny_config(train_store, tmp_path, optim={"batch_size": 0})


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_checkpoints_are_checked_and_rebuild_the_model(train_store, tiny_config, tmp_path):
    result = train(tiny_config(train_store, tmp_path, optim={"max_steps": 3}))
    run_dir = tmp_path / "t"
    assert {p.name for p in run_dir.iterdir()} >= {
        "last.pt",
        "best.pt",
        "config.yaml",
        "metrics.csv",
        "step_00000003.pt",
    }
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["step"] == 3 and ckpt["config"]["pixel_size_m"] == 1000.0 and ckpt["config"]["time_step_s"] == 300
    assert set(ckpt["metrics"]) >= {"csi_1mm", "mae_mmh", "val_loss"} and len(result["metrics"]["csi_1mm"]) == 2
    model, cfg = model_from_checkpoint(run_dir / "last.pt")
    assert model(torch.zeros(1, 3, 1, 16, 16)).shape == (1, 2, 1, 16, 16)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny_config(train_store, tmp_path))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    bad = tmp_path / "evil.pt"
    torch.save({"format": "nowcast-checkpoint", "x": Evil()}, bad)
    with pytest.raises(CheckpointError, match="evil.pt holds Python objects"):
        load_checkpoint(bad)
    (tmp_path / "cut.pt").write_bytes((run_dir / "last.pt").read_bytes()[:500])
    with pytest.raises(CheckpointError, match="cut.pt is damaged"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a nowcast checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="plain.pkl"):
        load_checkpoint(tmp_path / "plain.pkl")


@pytest.mark.slow
def test_stop_and_resume_equals_an_uninterrupted_run(train_store, tiny_config, tmp_path):
    """Two loader workers, stopping mid-epoch: the resumed run must see the same batches."""
    sections = {
        "optim": {"max_steps": 12, "batch_size": 4, "num_workers": 2},
        "run": {"val_every": 4, "ckpt_every": 100},
    }
    whole = tiny_config(train_store, tmp_path / "whole", **sections)
    train(whole)
    parts = tiny_config(train_store, tmp_path / "parts", **sections)
    assert train(parts, stop_at=5)["step"] == 5
    assert train(parts, resume=True)["step"] == 12
    a, b = (load_checkpoint(p / "t" / "last.pt") for p in (tmp_path / "whole", tmp_path / "parts"))
    assert a["epoch"] >= 1  # the runs crossed an epoch boundary
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)
    assert a["metrics"] == b["metrics"]


def test_soft_csi_ranks_forecasts_as_csi_does():
    """The soft CSI loss is lowest for the forecast whose wet area matches, whatever its intensities."""
    cfg = LossConfig(name="soft_csi")
    target = torch.zeros(1, 1, 1, 8, 8)
    target[..., 2:6, 2:6] = 3.0
    right_place_wrong_rate = torch.where(target > 0, 1.32, 0.0)  # z of 2 mm/h where 3 fell
    wrong_place = torch.roll(torch.where(target > 0, 1.5, 0.0), shifts=3, dims=-1)  # z of 3 mm/h, shifted
    loss = make_loss(cfg, 0.1, 300.0)
    assert loss(right_place_wrong_rate, target) < 0.5 * loss(wrong_place, target)
    assert loss(torch.zeros_like(target), torch.zeros_like(target)) < 1e-6  # dry and forecast dry: nothing to lose
