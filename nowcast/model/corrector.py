"""The forecast model: S-PROG estimated from the inputs at run time, plus a learned correction.

Why this shape: methods without training (S-PROG, STEPS) transfer to any radar network because
they measure, from each event's own last frames, the motion and how fast every scale loses
predictability; a network trained on a few archives does not, and overfits them. So the model
*is* S-PROG (``sprog.py``: motion from ``motion.py``, AR(2) per cascade level, the observed wet
area and intensity distribution restored at the end), and a small CNN learns only what S-PROG
misses, on coarse cells, per lead time:

- a gain per cascade level (``exp(a)``, ``|a| <= corrector.max_log_gain``): where a scale keeps or
  loses its structure faster than the domain-wide AR(2) says (local decay rates: small showers
  inside widespread rain fade faster than the rain around them);
- an offset in dBR (``|b| <= corrector.max_offset_db``): where rain grows or decays in the
  Lagrangian frame, which moves the forecast's wet area towards it.

Both enter before the percentile mask and CDF match, which keep the last observation's wet
area and intensity distribution whatever the network does: rain cannot fade into drizzle or
collapse into nothing. The CNN's last layer starts at zero, so an untrained model forecasts
exactly S-PROG. The network sees the inputs' own statistics (the last frame, its Lagrangian
tendency, local wet fraction and per-level structure, S-PROG's forecast and each level's AR
amplitude at the lead) and the lead time in minutes, so one model serves radars at any time step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nowcast.model import sprog
from nowcast.model.config import ModelConfig
from nowcast.model.motion import estimate_motion
from nowcast.model.transform import rain_to_z

STATIC_FEATURES = 4  # last frame, tendency, wet fraction, no-data fraction (+ one per level)
LEAD_FEATURES = 3  # S-PROG's dBR, lead time, pixel size (+ one per level)
DBR_SCALE = 20.0  # dBR differences of this size become 1 in the features


def _pool(x: torch.Tensor, cell: int) -> torch.Tensor:
    return F.avg_pool2d(x, cell, ceil_mode=True) if cell > 1 else x


class SprogCorrector(nn.Module):
    """S-PROG plus a learned per-lead correction: ``num_input_frames`` in, ``num_output_frames`` out.

    Input: rain (B, T_in, 1, H, W) in mm/h with NaN for no data, any H and W. Output: (B, n, 1, H,
    W) mm/h >= 0 with NaN where the forecast has no data, or z (``transform.rain_to_z``) with no
    data as 0 when ``transformed`` (what the training losses compare).
    """

    whole_domain = True  # the cascade and the distribution match are the whole domain's: never tiled

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        levels, width = cfg.sprog.n_cascade_levels, cfg.corrector.hidden_channels
        channels = STATIC_FEATURES + LEAD_FEATURES + 2 * levels
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 1), nn.GELU()]
        for dilation in cfg.corrector.dilations:
            layers += [nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation), nn.GELU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(width, levels + 1, 1)  # per level: log gain; then the dBR offset
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def multiple(self) -> int:
        return 1

    @property
    def correcting(self) -> bool:
        """False while the head is zero (untrained, or shipped as S-PROG): the output is S-PROG's."""
        return self.training or bool(self.head.weight.any() or self.head.bias.any())

    def forward(
        self,
        x: torch.Tensor,
        transformed: bool = False,
        time_step_s: float | torch.Tensor = 300.0,
        pixel_size_m: float | torch.Tensor = 1000.0,
        n_leads: int | None = None,
    ) -> torch.Tensor:
        """Forecast rain.

        Args:
            x: (B, num_input_frames, 1, H, W) mm/h, NaN where there is no data.
            transformed: return z with no data as 0 and a gradient through the CDF match (training).
            time_step_s: spacing of the input frames, one lead per step: a number or (B,).
            pixel_size_m: grid spacing: a number or (B,).
            n_leads: leads to forecast (default ``num_output_frames``); S-PROG runs to any lead.

        Returns:
            (B, n_leads, 1, H, W) mm/h (float32), or z when ``transformed``.
        """
        cfg = self.cfg
        state, _, field = self.lagrangian(x, time_step_s, pixel_size_m, n_leads)
        with torch.autocast(x.device.type, enabled=False):
            out = sprog.finish(field, state, cfg.sprog, differentiable=transformed)  # mm/h, NaN
        if transformed:
            rain_out = torch.where(torch.isfinite(out), out, 0.0)
            return rain_to_z(rain_out, cfg.dry_threshold_mmh, cfg.max_rain_mmh)[:, :, None]
        return out[:, :, None]

    def lagrangian(
        self,
        x: torch.Tensor,
        time_step_s: float | torch.Tensor = 300.0,
        pixel_size_m: float | torch.Tensor = 1000.0,
        n_leads: int | None = None,
    ) -> tuple[sprog.SprogState, torch.Tensor, torch.Tensor]:
        """The corrected forecast before S-PROG's last steps (what ensemble members spread around).

        Args:
            x, time_step_s, pixel_size_m, n_leads: as ``forward``.

        Returns:
            The S-PROG state, the motion (B, 2, H, W) in pixels per step, and the corrected
            Lagrangian forecast (B, n, H, W) in dBR, before the distribution match and the warp.
        """
        cfg = self.cfg
        if x.ndim != 5 or x.shape[2] != 1 or x.shape[1] != cfg.num_input_frames:
            raise ValueError(f"expected input (B, {cfg.num_input_frames}, 1, H, W), got {tuple(x.shape)}")
        n = n_leads or cfg.num_output_frames
        with torch.autocast(x.device.type, enabled=False), torch.no_grad():
            rain = x[:, :, 0].float()  # (B, T, H, W)
            has_data = torch.isfinite(rain)
            z = rain_to_z(torch.where(has_data, rain, 0.0), cfg.dry_threshold_mmh, cfg.max_rain_mmh)
            flow = estimate_motion(z, has_data, cfg.motion)  # (B, 2, H, W)
            state = sprog.initialise(rain, flow, n, cfg.sprog)
            levels = sprog.ar_levels(state, n)  # (B, n, L, H, W)
        if self.correcting:
            gain, offset = self._correction(state, levels, time_step_s, pixel_size_m)
            levels, shift = levels * torch.exp(gain), offset
        else:  # a zero head: the correction is exactly none, so skip the network (S-PROG's own speed)
            shift = torch.zeros((), device=levels.device)
        with torch.autocast(x.device.type, enabled=False):
            field = sprog.lagrangian_dbr(state, levels) + shift  # (B, n, H, W)
        return state, flow, field

    def _features(self, state: sprog.SprogState, levels: torch.Tensor, time_step_s, pixel_size_m) -> torch.Tensor:
        """(B * n, C, h, w) inputs of the CNN on cells of ``corrector.cell_px`` pixels."""
        cfg, cell = self.cfg, self.cfg.corrector.cell_px
        b, n, n_levels, height, width = levels.shape
        zero = cfg.sprog.zero_db
        threshold_db = 10 * torch.log10(torch.tensor(cfg.sprog.rain_threshold_mmh))
        last = state.frames[:, -1]
        static = torch.stack(
            [
                (last - zero) / DBR_SCALE,
                (last - state.frames[:, -2]) / DBR_SCALE,
                (last >= threshold_db).float(),
                state.no_data.float(),
            ],
            dim=1,
        )  # (B, 4, H, W)
        structure = state.levels[:, -1] ** 2  # (B, L, H, W): local power of each level, now
        static = torch.cat([_pool(static, cell), _pool(structure, cell).sqrt()], dim=1)  # (B, 4 + L, h, w)
        forecast = sprog.lagrangian_dbr(state, levels)  # (B, n, H, W)
        amplitude = levels.pow(2).mean(dim=(-2, -1)).sqrt()  # (B, n, L): how much of each level the AR keeps
        h, w = static.shape[-2:]
        step = torch.as_tensor(time_step_s, dtype=torch.float32, device=levels.device).expand(b)
        pixel = torch.as_tensor(pixel_size_m, dtype=torch.float32, device=levels.device).expand(b)
        lead_minutes = step[:, None] * torch.arange(1, n + 1, device=levels.device)[None] / 60  # (B, n)
        scalars = torch.cat(
            [(lead_minutes / 60)[..., None], torch.log2(pixel / 1000)[:, None, None].expand(b, n, 1), amplitude],
            dim=-1,
        )  # (B, n, 2 + L)
        per_lead = torch.cat(
            [
                _pool((forecast.reshape(b * n, 1, height, width) - zero) / DBR_SCALE, cell),
                scalars.reshape(b * n, -1, 1, 1).expand(-1, -1, h, w),
            ],
            dim=1,
        )  # (B * n, 3 + L, h, w)
        return torch.cat([static.repeat_interleave(n, dim=0), per_lead], dim=1)

    def _correction(
        self, state: sprog.SprogState, levels: torch.Tensor, time_step_s, pixel_size_m
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-level log gains (B, n, L, H, W) and the dBR offset (B, n, H, W), smooth at full resolution."""
        b, n, n_levels, height, width = levels.shape
        bounds = self.cfg.corrector
        raw = self.head(self.body(self._features(state, levels, time_step_s, pixel_size_m)))  # (B * n, L + 1, h, w)
        raw = F.interpolate(raw, size=(height, width), mode="bilinear", align_corners=False)
        gain = bounds.max_log_gain * torch.tanh(raw[:, :n_levels] / bounds.max_log_gain)
        offset = bounds.max_offset_db * torch.tanh(raw[:, n_levels] / max(bounds.max_offset_db, 1e-6))
        return gain.view(b, n, n_levels, height, width), offset.view(b, n, height, width)
