"""The ConvLSTM encoder-forecaster: shapes, gradients, NaN input, any size, and that it can learn."""

import subprocess
import sys

import pytest
import torch

from nowcast.config import validate
from nowcast.errors import ConfigError
from nowcast.model import ConvLSTMCell, ModelConfig, build_model, rain_to_z, z_to_rain

TINY = ModelConfig(
    num_input_frames=3,
    num_output_frames=2,
    stem_channels=4,
    hidden_channels=[4, 8],
    kernel_sizes=[3, 3],
    downsample=[2],
)


def rain(b, t, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, t, 1, h, w, generator=g) * 20
    x[x < 5] = 0  # dry pixels
    return x


def test_shapes_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = build_model(TINY)
    x = rain(2, 3, 16, 16)
    out = model(x)
    assert out.shape == (2, 2, 1, 16, 16) and out.dtype == torch.float32
    model(x, transformed=True).pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} gets no gradient (DDP would fail)"


def test_nan_input_is_no_data_and_output_is_non_negative():
    torch.manual_seed(0)
    model = build_model(TINY)
    x = rain(2, 3, 16, 16)
    x[0, :, :, :5] = float("nan")  # a strip outside radar range
    x[1] = float("nan")  # nothing at all
    out = model(x)
    assert torch.isfinite(out).all() and (out >= 0).all()
    assert (out[out > 0] >= TINY.dry_threshold_mmh).all()  # below the dry threshold is exactly 0
    clean = x.clone()
    clean[0, :, :, :5] = 1000.0  # values under NaN must not matter...
    z = model(x, transformed=True)
    assert not torch.equal(model(clean, transformed=True)[0], z[0])  # ...but real values do
    nan_again = clean.clone()
    nan_again[0, :, :, :5] = float("nan")
    assert torch.equal(model(nan_again, transformed=True), z)


def test_trained_on_crops_runs_on_a_larger_domain():
    model = build_model(TINY)
    assert model.multiple == 4
    assert model(rain(1, 3, 16, 16)).shape[-2:] == (16, 16)
    assert model(rain(1, 3, 48, 36)).shape[-2:] == (48, 36)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(rain(1, 3, 18, 16))


def test_transform_round_trip():
    r = torch.tensor([0.0, 0.05, 0.1, 1.0, 10.0, 100.0, 1000.0])
    z = rain_to_z(r, 0.1, 300.0)
    assert z[0] == 0 and z[1] == 0 and torch.all(z[2:].diff() >= 0)
    back = z_to_rain(z, 0.1, 300.0)
    assert torch.allclose(back, torch.tensor([0, 0, 0.1, 1, 10, 100, 300.0]), rtol=1e-4)
    assert z_to_rain(torch.tensor([-5.0]), 0.1, 300.0).item() == 0


def test_cell_without_input_runs_on_its_state():
    cell = ConvLSTMCell(0, 4, 3)
    h, c = cell(None, cell.init_state(torch.ones(1, 4, 8, 8)))
    assert h.shape == c.shape == (1, 4, 8, 8)
    assert sum(p.numel() for p in cell.parameters()) == (4 * 9 * 4 * 4) + 16  # one conv, no unused weights


@pytest.mark.slow  # the longest test (~20-40 s a case on a laptop CPU)
@pytest.mark.parametrize("advection", [False, True])
def test_tiny_model_overfits_a_short_sequence(advection):
    """A moving, growing blob on 32x32: the loss must fall by a large factor in 200 steps.

    Growth is what the advection model has to learn: extrapolation alone moves the blob right
    but keeps its first intensity.
    """
    torch.manual_seed(0)
    cfg = ModelConfig(
        num_input_frames=4,
        num_output_frames=2,
        stem_channels=8,
        hidden_channels=[8, 8],
        kernel_sizes=[3, 3],
        downsample=[2],
        advection=advection,
    )
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    frames = torch.stack([(4 + 2 * t) * torch.exp(-((yy - 16) ** 2 + (xx - 8 - 2 * t) ** 2) / 18) for t in range(6)])
    seq = frames[:, None][None]  # (1, 6, 1, 32, 32)
    x, y = seq[:, :4], rain_to_z(seq[:, 4:], cfg.dry_threshold_mmh, cfg.max_rain_mmh)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(200):
        loss = (model(x, transformed=True) - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, losses[::40]


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="kernel_sizes"):
        validate(ModelConfig, {"hidden_channels": [8, 8], "kernel_sizes": [3]})
    with pytest.raises(ConfigError, match="downsample"):
        validate(ModelConfig, {"hidden_channels": [8, 8], "kernel_sizes": [3, 3], "downsample": []})
    with pytest.raises(ConfigError, match="hidden_chanels: unknown key"):
        validate(ModelConfig, {"hidden_chanels": [8]})


def test_model_package_imports_torch_only():
    code = (
        "import sys, nowcast.model; bad = [m for m in sys.modules if m.split('.')[0] in "
        "('zarr', 'xarray', 'dask', 'pyspark', 'yaml') or m.startswith(('nowcast.store', 'nowcast.train', "
        "'nowcast.ingest', 'torch.distributed.run'))]; print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_state_dict_saved_before_the_split_gate_code_loads_and_gives_the_same_results():
    """Weights saved by the one-conv-over-concat(x, h) cell (tests/data, written by that code) must
    load strictly and give the same forecast and gradients: runs being trained keep working."""
    from pathlib import Path

    saved = torch.load(Path(__file__).parent / "data" / "convlstm_state_before_split_gates.pt", weights_only=True)
    model = build_model(ModelConfig.from_saved(saved["config"]))
    model.load_state_dict(saved["state_dict"], strict=True)
    assert {n: p.shape for n, p in model.named_parameters()} == {n: g.shape for n, g in saved["grads"].items()}
    z = model(saved["input"], transformed=True)
    torch.testing.assert_close(z, saved["output_z"], rtol=1e-5, atol=1e-6)
    z.square().mean().backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, saved["grads"][name], rtol=1e-4, atol=1e-6, msg=name)


def test_cell_steps_and_unroll_match_the_textbook_update():
    """Against sigmoid/tanh gates from one conv over concat(x, h), step by step, for values and
    gradients, from a zero state (skipped hidden conv) and from a given state."""
    torch.manual_seed(0)
    cell = ConvLSTMCell(3, 4, 3).double()
    x = torch.randn(2, 4, 3, 6, 6, dtype=torch.double, requires_grad=True)
    start = tuple(torch.randn(2, 4, 6, 6, dtype=torch.double, requires_grad=True) for _ in range(2))

    def textbook(state):
        h, c, outs = *state, []
        for t in range(x.shape[1]):
            i, f, o, g = cell.conv(torch.cat([x[:, t], h], 1)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, 1), c

    zeros = cell.init_state(x[:, 0])
    for ours, state in ((cell.unroll(x, None, 4), zeros), (cell.unroll(x, start, 4), start)):
        hs, c = textbook(state)
        torch.testing.assert_close(ours[0], hs)
        torch.testing.assert_close(ours[1][1], c)
        inputs = (x, *cell.parameters(), *(start if state is start else ()))
        loss = lambda out, c_last: (out * torch.linspace(0, 1, 6, dtype=torch.double)).sum() + c_last.pow(2).sum()  # noqa: E731
        for a, b in zip(
            torch.autograd.grad(loss(ours[0], ours[1][1]), inputs), torch.autograd.grad(loss(hs, c), inputs)
        ):
            torch.testing.assert_close(a, b)
    h, c = cell(x[:, 0], start)  # one step through forward()
    torch.testing.assert_close(h, textbook(start)[0][:, 0])
    assert torch.autograd.gradcheck(
        lambda g, c: _gate_update(g, c),
        (
            torch.randn(1, 16, 2, 2, dtype=torch.double, requires_grad=True),
            torch.randn(1, 4, 2, 2, dtype=torch.double, requires_grad=True),
        ),
    )


def _gate_update(gates, c):
    from nowcast.model.convlstm import _GateUpdate

    return _GateUpdate.apply(gates, c, 4)
