"""ConvLSTM encoder-forecaster (Shi et al. 2015; the encoder-forecaster layout of Shi et al. 2017).

The encoder runs stacked ConvLSTMs over the input frames, with strided convs between layers,
so deeper layers see larger scales. The forecaster mirrors it: its layer ``i`` starts from the
final state of encoder layer ``i`` and runs top-down (deepest first), with transposed convs
between layers, the top layer taking no input at all. Every parameter is used in every
forward pass, so DDP needs no ``find_unused_parameters``.

Input: rain (B, T_in, 1, H, W) in mm/h with NaN for no data; H and W divisible by
``model.multiple``. Output: (B, T_out, 1, H, W) mm/h >= 0. The network sees two channels per
frame: the transformed rain (NaN -> 0) and a mask that is 1 where there is data.
"""

from __future__ import annotations

import torch
from torch import nn

from nowcast.model.config import ModelConfig
from nowcast.model.transform import rain_to_z, z_to_rain

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (B, C, H, W)


class ConvLSTMCell(nn.Module):
    """ConvLSTM cell whose four gates come from ONE convolution over concat(x, h).

    One conv with 4 * hidden output channels does the work of the textbook's eight (four on x,
    four on h): fewer kernel launches and a larger, better-vectorised GEMM. ``in_channels=0``
    makes a cell without input (the forecaster's top layer), driven by its state alone.
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int):
        super().__init__()
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.conv = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2)
        with torch.no_grad():  # forget gate starts open, so early gradients flow through time
            self.conv.bias[hidden_channels:2 * hidden_channels].fill_(1.0)

    def init_state(self, like: torch.Tensor) -> State:
        """Zero state matching ``like`` (B, *, H, W) in batch, size, dtype and device."""
        b, _, h, w = like.shape
        zeros = like.new_zeros(b, self.hidden_channels, h, w)
        return zeros, zeros

    def forward(self, x: torch.Tensor | None, state: State) -> State:
        h, c = state  # (B, Ch, H, W) each
        gates = self.conv(h if x is None else torch.cat([x, h], dim=1))  # (B, 4*Ch, H, W)
        n = self.hidden_channels
        ifo = torch.sigmoid(gates[:, :3 * n])  # input, forget, output gates in one call
        i, f, o = ifo[:, :n], ifo[:, n:2 * n], ifo[:, 2 * n:]
        c = f * c + i * torch.tanh(gates[:, 3 * n:])  # (B, Ch, H, W)
        h = o * torch.tanh(c)  # (B, Ch, H, W)
        return h, c


def _per_frame(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2-D layer to every frame at once: (B, T, C, H, W) -> (B, T, C', H', W')."""
    return layer(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def _unroll(cell: ConvLSTMCell, x: torch.Tensor | None, state: State, steps: int) -> tuple[torch.Tensor, State]:
    """Run a cell over time; x is (B, T, C, H, W) or None. Returns all h (B, T, Ch, H, W) and the last state."""
    outputs = []
    for t in range(steps):
        state = cell(None if x is None else x[:, t], state)
        outputs.append(state[0])
    return torch.stack(outputs, dim=1), state


def _down(channels_in: int, channels_out: int, stride: int) -> nn.Module:
    kernel = 3 if stride == 1 else 2 * stride - 1  # covers the stride with overlap; H -> H / stride
    return nn.Sequential(nn.Conv2d(channels_in, channels_out, kernel, stride, padding=kernel // 2),
                         nn.LeakyReLU(0.2, inplace=True))


def _up(channels_in: int, channels_out: int, stride: int) -> nn.Module:
    if stride == 1:
        return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))
    kernel, padding = (2 * stride, stride // 2) if stride % 2 == 0 else (stride + 2, 1)  # H -> H * stride exactly
    return nn.Sequential(nn.ConvTranspose2d(channels_in, channels_out, kernel, stride, padding),
                         nn.LeakyReLU(0.2, inplace=True))


class EncoderForecaster(nn.Module):
    """Sequence-to-sequence ConvLSTM nowcaster: ``num_input_frames`` in, ``num_output_frames`` out."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        hidden, n = cfg.hidden_channels, len(cfg.hidden_channels)
        strides = [cfg.stem_stride, *cfg.downsample]  # stride in front of layer i
        self.stem = _down(2, cfg.stem_channels, cfg.stem_stride)
        self.down = nn.ModuleList(_down(hidden[i - 1], hidden[i - 1], strides[i]) for i in range(1, n))
        self.encoder = nn.ModuleList(
            ConvLSTMCell(cfg.stem_channels if i == 0 else hidden[i - 1], hidden[i], cfg.kernel_sizes[i]) for i in range(n))
        self.forecaster = nn.ModuleList(
            ConvLSTMCell(0 if i == n - 1 else hidden[i], hidden[i], cfg.kernel_sizes[i]) for i in range(n))
        self.up = nn.ModuleList(_up(hidden[i], hidden[i - 1], strides[i]) for i in range(1, n))
        self.head = nn.Sequential(_up(hidden[0], cfg.stem_channels, strides[0]), nn.Conv2d(cfg.stem_channels, 1, 1))

    @property
    def multiple(self) -> int:
        """Input height and width must be divisible by this."""
        return self.cfg.multiple

    def forward(self, x: torch.Tensor, transformed: bool = False) -> torch.Tensor:
        """Forecast rain.

        Args:
            x: (B, num_input_frames, 1, H, W) rain in mm/h, NaN where there is no data.
            transformed: return the raw network output in z space (see ``transform.py``),
                which is what the training loss compares; False gives mm/h.

        Returns:
            (B, num_output_frames, 1, H, W): mm/h >= 0 (float32), or z when ``transformed``.
        """
        cfg = self.cfg
        if x.ndim != 5 or x.shape[2] != 1 or x.shape[1] != cfg.num_input_frames:
            raise ValueError(f"expected input (B, {cfg.num_input_frames}, 1, H, W), got {tuple(x.shape)}")
        if x.shape[-2] % cfg.multiple or x.shape[-1] % cfg.multiple:
            raise ValueError(f"input height and width {tuple(x.shape[-2:])} must be divisible by {cfg.multiple}")
        has_data = torch.isfinite(x)  # (B, T_in, 1, H, W)
        z = rain_to_z(torch.where(has_data, x, 0.0), cfg.dry_threshold_mmh, cfg.max_rain_mmh)  # (B, T_in, 1, H, W)
        frames = torch.cat([z, has_data.to(z.dtype)], dim=2)  # (B, T_in, 2, H, W)

        h = _per_frame(self.stem, frames)  # (B, T_in, C_stem, H/s, W/s)
        states = []
        for i, cell in enumerate(self.encoder):
            if i > 0:
                h = _per_frame(self.down[i - 1], h)  # (B, T_in, C_{i-1}, H_i, W_i)
            h, state = _unroll(cell, h, cell.init_state(h[:, 0]), cfg.num_input_frames)  # (B, T_in, C_i, H_i, W_i)
            states.append(state)

        h = None  # the top forecaster layer has no input, only the encoder's state
        for i in reversed(range(len(self.forecaster))):
            h, _ = _unroll(self.forecaster[i], h, states[i], cfg.num_output_frames)  # (B, T_out, C_i, H_i, W_i)
            if i > 0:
                h = _per_frame(self.up[i - 1], h)  # (B, T_out, C_{i-1}, H_{i-1}, W_{i-1})
        out = _per_frame(self.head, h)  # (B, T_out, 1, H, W) in z space
        if transformed:
            return out
        return z_to_rain(out.float(), cfg.dry_threshold_mmh, cfg.max_rain_mmh)  # (B, T_out, 1, H, W) mm/h

    def forward_transformed(self, x: torch.Tensor) -> torch.Tensor:
        """The raw output in z space: ``forward(x, transformed=True)``."""
        return self.forward(x, transformed=True)


def build_model(cfg: ModelConfig) -> EncoderForecaster:
    """Build the model described by ``cfg`` (weights from torch's default init, seed it first)."""
    return EncoderForecaster(cfg)
