"""Fine-tuning: run.init_from starts a run from another run's weights, and only from the same model
(its settings without weights, motion and heavy tail, may change)."""

import pytest
import torch

from nowcast.checkpoint import load_checkpoint
from nowcast.config import validate
from nowcast.errors import ConfigError
from nowcast.store import write_mock_store
from nowcast.train.config import TrainConfig
from nowcast.train.loop import train


def config(store, out_dir, name, max_steps, lr=3e-3, **run):
    return validate(
        TrainConfig,
        {
            "data": {
                "stores": [str(store)],
                "crop_size": 32,
                "val_fraction": 0.2,
                "val_stride": 2,
                "chunks_in_memory": 1,
            },
            "model": {
                "num_input_frames": 3,
                "num_output_frames": 2,
                "stem_channels": 4,
                "hidden_channels": [4, 8],
                "kernel_sizes": [3, 3],
                "downsample": [2],
                **run.pop("model", {}),
            },
            "optim": {"lr": lr, "warmup_steps": 1, "max_steps": max_steps, "batch_size": 2, "num_workers": 0},
            "run": {"out_dir": str(out_dir), "name": name, "val_every": 100, "ckpt_every": 100, **run},
        },
        "test",
    )


@pytest.mark.slow  # five short training runs
def test_init_from_loads_the_weights_then_trains_from_step_zero(tmp_path):
    store = tmp_path / "mock.zarr"
    write_mock_store(str(store), n_times=40, shape=(32, 32), chunk_time=8, missing=())
    train(config(store, tmp_path, "pre", 3))
    pre = load_checkpoint(tmp_path / "pre" / "last.pt")

    # zero steps of training would be ideal; one step at a tiny rate shows the start point instead
    train(config(store, tmp_path, "tune", 1, lr=1e-9, init_from=str(tmp_path / "pre" / "last.pt")))
    after = load_checkpoint(tmp_path / "tune" / "last.pt")
    assert after["step"] == 1  # a fresh schedule, not the pre-training's step count
    for key, value in pre["model"].items():
        torch.testing.assert_close(after["model"][key], value, rtol=0, atol=1e-6)

    train(config(store, tmp_path, "scratch", 1, lr=1e-9))  # the same run without init_from
    other = load_checkpoint(tmp_path / "scratch" / "last.pt")
    assert any(not torch.allclose(other["model"][k], v, atol=1e-6) for k, v in pre["model"].items())

    wrong = config(
        store, tmp_path, "wrong", 1, init_from=str(tmp_path / "pre" / "last.pt"), model={"hidden_channels": [4, 4]}
    )
    with pytest.raises(ConfigError, match="run.init_from"):
        train(wrong)

    # the motion has no weights: fine-tuning may estimate it otherwise, and the checkpoint records the new one
    other_motion = {"motion": {"solver": 1, "min_level_px": 4, "window_sigma": 5.0}, "heavy_tail_mmh": None}
    train(
        config(store, tmp_path, "motion", 1, lr=1e-9, init_from=str(tmp_path / "pre" / "last.pt"), model=other_motion)
    )
    tuned = load_checkpoint(tmp_path / "motion" / "last.pt")
    saved = tuned["config"]["model"]
    assert saved["motion"]["window_sigma"] == 5.0 and saved["heavy_tail_mmh"] is None
    for key, value in pre["model"].items():
        torch.testing.assert_close(tuned["model"][key], value, rtol=0, atol=1e-6)
