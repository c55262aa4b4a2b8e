"""ConvLSTM encoder-forecaster (Shi et al. 2015; the encoder-forecaster layout of Shi et al. 2017).

The encoder runs stacked ConvLSTMs over the input frames, with strided convs between layers,
so deeper layers see larger scales. The forecaster mirrors it: its layer ``i`` starts from the
final state of encoder layer ``i`` and runs top-down (deepest first), with transposed convs
between layers, the top layer taking no input at all. Every parameter is used in every
forward pass, so DDP needs no ``find_unused_parameters``.

Input: rain (B, T_in, 1, H, W) in mm/h with NaN for no data; H and W divisible by
``model.multiple``. Output: (B, T_out, 1, H, W) mm/h >= 0. The network sees two channels per
frame: the transformed rain (NaN -> 0) and a mask that is 1 where there is data.

With ``advection`` (the default), the last frame is first moved along the optical flow of the
inputs (``motion.py``) to every lead; the forecaster's bottom layer takes those frames as
input, and its output at that layer's resolution sets a smooth correction: an offset in log
rain and how much of each small scale to smooth away, from a last conv that starts near zero. An
untrained model is therefore the extrapolation, and training teaches it growth, decay
and which scales lose predictability, rather than motion from scratch, which is what a
plain ConvLSTM spends most of its data on and blurs when it fails.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from nowcast.model.blur import gaussian_blurs
from nowcast.model.config import ModelConfig
from nowcast.model.motion import advect, estimate_motion
from nowcast.model.tail import keep_heavy_tail
from nowcast.model.transform import rain_to_z, z_to_rain

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (B, C, H, W)


class _GateUpdate(torch.autograd.Function):
    """The LSTM update from gate pre-activations, with a hand-written backward.

    Autograd would keep and revisit a dozen full-size temporaries per step (slices, sigmoid,
    tanh, products); this keeps four and writes the gate gradient in place, which matters on
    CPU where these element-wise passes are a sizeable share of a step. ``c`` None is a zero state.
    """

    @staticmethod
    def forward(ctx, gates: torch.Tensor, c: torch.Tensor | None, n: int) -> State:
        ctx.set_materialize_grads(False)
        ifo = torch.sigmoid(gates[:, : 3 * n])  # (B, 3n, H, W): input, forget, output gates
        g = torch.tanh(gates[:, 3 * n :])  # (B, n, H, W) candidate
        i, f, o = ifo.chunk(3, 1)
        c_new = torch.mul(i, g)
        if c is not None:
            c_new.addcmul_(f, c)
        tanh_c = torch.tanh(c_new)
        ctx.n, ctx.channels_last = n, gates.stride(1) == 1 and gates.shape[1] > 1
        ctx.save_for_backward(ifo, g, c, tanh_c)
        return torch.mul(o, tanh_c), c_new

    @staticmethod
    @once_differentiable
    def backward(ctx, dh: torch.Tensor | None, dc_new: torch.Tensor | None):
        ifo, g, c, tanh_c = ctx.saved_tensors
        i, f, o = ifo.chunk(3, 1)
        fmt = torch.channels_last if ctx.channels_last else torch.contiguous_format  # as the gates came
        dgates = torch.empty(
            ifo.shape[0], 4 * ctx.n, *ifo.shape[2:], dtype=ifo.dtype, device=ifo.device, memory_format=fmt
        )  # (B, 4n, H, W)
        di, df, do, dg = dgates.chunk(4, 1)
        if dh is None:
            dc = dc_new.clone() if dc_new is not None else torch.zeros_like(tanh_c)
            do.zero_()
        else:
            dc = torch.mul(tanh_c, tanh_c).neg_().add_(1).mul_(o).mul_(dh)  # dL/dc through h
            if dc_new is not None:
                dc.add_(dc_new)
            torch.mul(dh, tanh_c, out=do)
        torch.mul(dc, g, out=di)
        if c is None:
            df.zero_()
        else:
            torch.mul(dc, c, out=df)
        dgates[:, : 3 * ctx.n].mul_(ifo - ifo * ifo)  # sigmoid' = s (1 - s)
        torch.mul(dc, i, out=dg).mul_(torch.mul(g, g).neg_().add_(1))  # tanh' = 1 - t^2
        dc_prev = dc.mul_(f) if c is not None and ctx.needs_input_grad[1] else None
        return dgates, dc_prev, None


class ConvLSTMCell(nn.Module):
    """ConvLSTM cell whose four gates come from ONE convolution over concat(x, h).

    One conv with 4 * hidden output channels does the work of the textbook's eight (four on x,
    four on h). Measured on CPU (bench/train.py), this beats both the eight-conv cell and
    splitting the weight into an input half run on all frames at once plus a hidden half per
    step: oneDNN's cost here is mostly per output pixel and channel, not per input channel, and
    the split adds a gradient copy of every gate tensor. From a zero state only the input half
    of the weight is applied, and the element-wise update has a hand-written backward.
    ``in_channels=0`` makes a cell without input (the forecaster's top layer).
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int):
        super().__init__()
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.conv = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2)
        with torch.no_grad():  # forget gate starts open, so early gradients flow through time
            self.conv.bias[hidden_channels : 2 * hidden_channels].fill_(1.0)

    def init_state(self, like: torch.Tensor) -> State:
        """Zero state matching ``like`` (B, *, H, W) in batch, size, dtype and device."""
        b, _, h, w = like.shape
        zeros = like.new_zeros(b, self.hidden_channels, h, w)
        return zeros, zeros

    def forward(self, x: torch.Tensor | None, state: State) -> State:
        """One step: x (B, C_in, H, W) or None, state (h, c) -> new (h, c)."""
        _, state = self.unroll(None if x is None else x[:, None], state, 1)
        return state

    def unroll(self, x: torch.Tensor | None, state: State | None, steps: int) -> tuple[torch.Tensor, State]:
        """Run over time.

        Args:
            x: (B, T, C_in, H, W) inputs with T == steps, or None for a cell without input.
            state: initial (h, c); None is the zero state (needs ``x``), whose first hidden
                convolution is skipped since it would only add zeros.
            steps: time steps to run.

        Returns:
            every h as (B, T, Ch, H, W), and the last (h, c).
        """
        conv, bias, pad = self.conv, self.conv.bias, self.conv.padding
        frames = [None] * steps if x is None else x.unbind(1)  # unbind: one gradient copy, not one per step
        h, c = (None, None) if state is None else state
        outputs = []
        for x_t in frames:
            if h is None:  # zero state: only the input half of the weight contributes
                gates = F.conv2d(x_t, conv.weight[:, : self.in_channels], bias, padding=pad)
            else:
                gates = conv(h if x_t is None else torch.cat([x_t, h], dim=1))  # (B, 4Ch, H, W)
            h, c = _GateUpdate.apply(gates, c, self.hidden_channels)
            outputs.append(h)
        return torch.stack(outputs, dim=1), (h, c)


def _per_frame(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2-D layer to every frame at once: (B, T, C, H, W) -> (B, T, C', H', W')."""
    return layer(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def _down(channels_in: int, channels_out: int, stride: int) -> nn.Module:
    kernel = 3 if stride == 1 else 2 * stride - 1  # covers the stride with overlap; H -> H / stride
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, kernel, stride, padding=kernel // 2), nn.LeakyReLU(0.2, inplace=True)
    )


def _up(channels_in: int, channels_out: int, stride: int) -> nn.Module:
    if stride == 1:
        return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))
    kernel, padding = (2 * stride, stride // 2) if stride % 2 == 0 else (stride + 2, 1)  # H -> H * stride exactly
    return nn.Sequential(
        nn.ConvTranspose2d(channels_in, channels_out, kernel, stride, padding), nn.LeakyReLU(0.2, inplace=True)
    )


class EncoderForecaster(nn.Module):
    """Sequence-to-sequence ConvLSTM nowcaster: ``num_input_frames`` in, ``num_output_frames`` out."""

    whole_domain = False  # large domains may run in overlapping tiles (predict/forecast.py)

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        hidden, n = cfg.hidden_channels, len(cfg.hidden_channels)
        strides = [cfg.stem_stride, *cfg.downsample]  # stride in front of layer i
        self.stem = _down(2, cfg.stem_channels, cfg.stem_stride)
        self.down = nn.ModuleList(_down(hidden[i - 1], hidden[i - 1], strides[i]) for i in range(1, n))
        self.encoder = nn.ModuleList(
            ConvLSTMCell(cfg.stem_channels if i == 0 else hidden[i - 1], hidden[i], cfg.kernel_sizes[i])
            for i in range(n)
        )
        takes_input = [i < n - 1 or (i == 0 and cfg.advection) for i in range(n)]
        self.forecaster = nn.ModuleList(
            ConvLSTMCell(hidden[i] if takes_input[i] else 0, hidden[i], cfg.kernel_sizes[i]) for i in range(n)
        )
        self.up = nn.ModuleList(_up(hidden[i], hidden[i - 1], strides[i]) for i in range(1, n))
        if cfg.advection:
            self.advected_stem = _down(2, hidden[0], cfg.stem_stride)
            self.correction = nn.Sequential(  # per lead, at layer 0's resolution: offset + one gain per scale
                nn.Conv2d(hidden[0], hidden[0], 3, padding=1),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(hidden[0], 1 + len(cfg.smoothing_sigmas_px), 1),
            )
            # tiny, not zero, so every layer gets a gradient from the first step: untrained ~ extrapolation
            nn.init.normal_(self.correction[-1].weight, std=1e-4)
            nn.init.zeros_(self.correction[-1].bias)
        else:
            self.head = nn.Sequential(_up(hidden[0], cfg.stem_channels, strides[0]), nn.Conv2d(cfg.stem_channels, 1, 1))

    @property
    def multiple(self) -> int:
        """Input height and width must be divisible by this."""
        return self.cfg.multiple

    def forward(self, x: torch.Tensor, transformed: bool = False, **grid: object) -> torch.Tensor:
        """Forecast rain.

        Args:
            x: (B, num_input_frames, 1, H, W) rain in mm/h, NaN where there is no data.
            transformed: return the raw network output in z space (see ``transform.py``),
                which is what the training loss compares; False gives mm/h.
            **grid: ``time_step_s`` and ``pixel_size_m``, which other models take; this one is
                trained for one of each and ignores them.

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
            h, state = cell.unroll(h, None, cfg.num_input_frames)  # (B, T_in, C_i, H_i, W_i)
            states.append(state)

        advected = self._advected(z[:, :, 0], has_data[:, :, 0]) if cfg.advection else None  # (B, T_out, 2, H, W)
        h = None  # the top forecaster layer has no input, only the encoder's state
        for i in reversed(range(len(self.forecaster))):
            if i == 0 and advected is not None:
                moved = _per_frame(self.advected_stem, advected.to(frames.dtype))  # (B, T_out, C_0, H_0, W_0)
                h = moved if h is None else h + moved
            h, _ = self.forecaster[i].unroll(h, states[i], cfg.num_output_frames)  # (B, T_out, C_i, H_i, W_i)
            if i > 0:
                h = _per_frame(self.up[i - 1], h)  # (B, T_out, C_{i-1}, H_{i-1}, W_{i-1})
        if advected is None:
            out = _per_frame(self.head, h)  # (B, T_out, 1, H, W)
        else:
            out = self._corrected(advected[:, :, 0], _per_frame(self.correction, h))
            if cfg.heavy_tail_mmh is not None and not self.training:
                threshold = float(rain_to_z(torch.tensor(cfg.heavy_tail_mmh), cfg.dry_threshold_mmh, cfg.max_rain_mmh))
                out = keep_heavy_tail(out[:, :, 0], advected[:, :, 0], advected[:, :, 1] > 0.5, threshold)[:, :, None]
        if transformed:
            return out
        return z_to_rain(out.float(), cfg.dry_threshold_mmh, cfg.max_rain_mmh)  # (B, T_out, 1, H, W) mm/h

    def _corrected(self, advected_z: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
        """The advected z plus the network's correction: (B, T_out, 1, H, W) float32.

        ``coefficients`` (B, T_out, 1 + S, h, w) come at layer 0's resolution and are upsampled
        smoothly: channel 0 is an offset in z (growth and decay); channel ``k``, clamped to
        [0, 1], moves the forecast that far towards the advected field blurred at
        ``model.smoothing_sigmas_px[k - 1]`` (small scales that have lost their predictability), finest
        first. The result is a convex mix of the field and its blurs: it can soften a core but
        never invert or sharpen one, and it cannot add pixel-scale noise to the extrapolation,
        which a correction drawn from upsampled features did at the shortest leads.
        """
        with torch.autocast(advected_z.device.type, enabled=False):
            b, t, h, w = advected_z.shape
            field = advected_z.reshape(b * t, 1, h, w).float()
            weights = F.interpolate(
                coefficients.flatten(0, 1).float(), size=(h, w), mode="bilinear", align_corners=False
            )  # (B*T, 1 + S, H, W)
            sigmas = tuple(self.cfg.smoothing_sigmas_px)
            blurs = gaussian_blurs(field, sigmas)
            norms = gaussian_blurs(torch.ones_like(field[:1]), sigmas)  # edge-normalised: no darkening at the border
            out = field
            for k, (blurred, norm) in enumerate(zip(blurs, norms), start=1):
                out = out + weights[:, k : k + 1].clamp(0, 1) * (blurred / norm - out)
            return (out + weights[:, :1]).view(b, t, 1, h, w)

    def _advected(self, z: torch.Tensor, has_data: torch.Tensor) -> torch.Tensor:
        """The last frame's z and data mask moved along the inputs' motion: (B, T_out, 2, H, W) float32.

        Motion and advection run in float32 even under autocast: bfloat16's 8-bit mantissa
        cannot hold pixel coordinates of a large domain.
        """
        with torch.autocast(z.device.type, enabled=False):
            z, has_data = z.float(), has_data.float()
            flow = estimate_motion(z, has_data > 0, self.cfg.motion)  # (B, 2, H, W)
            last = torch.stack([z[:, -1], has_data[:, -1]], dim=1)  # (B, 2, H, W)
            return advect(last, flow, self.cfg.num_output_frames)
