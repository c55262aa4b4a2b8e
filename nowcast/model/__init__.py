"""The nowcasting models, which know tensors only.

Read ``corrector.py`` first: S-PROG (``sprog.py`` and the cascade, AR and matching modules it
calls) estimated from the inputs at run time, plus a learned correction. ``convlstm.py`` is the
ConvLSTM encoder-forecaster that corrects an optical-flow extrapolation (``motion.py``), the
model of the first releases. A model takes rain in mm/h with NaN for no data and returns
non-negative mm/h; how tensors reach it (store, DDP, files) is none of its business, so this
package imports torch and pydantic only.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from nowcast.errors import ConfigError
from nowcast.model.config import ModelConfig
from nowcast.model.convlstm import ConvLSTMCell, EncoderForecaster
from nowcast.model.corrector import SprogCorrector
from nowcast.model.transform import rain_to_z, z_to_rain

Model = EncoderForecaster | SprogCorrector

# every model takes (B, num_input_frames, 1, H, W) mm/h with NaN and returns (B, n, 1, H, W)
MODELS: dict[str, Callable[[ModelConfig], nn.Module]] = {"convlstm": EncoderForecaster, "sprog": SprogCorrector}


def build_model(cfg: ModelConfig) -> Model:
    """The model ``cfg.name`` describes (weights from torch's default init: seed it first)."""
    try:
        return MODELS[cfg.name](cfg)
    except KeyError:
        raise ConfigError(f"unknown model {cfg.name!r}; available: {', '.join(sorted(MODELS))}") from None


__all__ = [
    "MODELS",
    "ConvLSTMCell",
    "EncoderForecaster",
    "Model",
    "ModelConfig",
    "SprogCorrector",
    "build_model",
    "rain_to_z",
    "z_to_rain",
]
