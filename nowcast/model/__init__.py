"""The nowcasting model: a ConvLSTM encoder-forecaster that knows tensors only.

Read ``convlstm.py`` first, then ``motion.py`` (the optical-flow extrapolation the network
corrects when ``advection`` is on). The model takes rain in mm/h with NaN for no data and returns
non-negative mm/h; how tensors reach it (store, DDP, files) is none of its business, so this
package imports torch and pydantic only.
"""

from nowcast.model.config import ModelConfig
from nowcast.model.convlstm import ConvLSTMCell, EncoderForecaster, build_model
from nowcast.model.transform import rain_to_z, z_to_rain

__all__ = ["ConvLSTMCell", "EncoderForecaster", "ModelConfig", "build_model", "rain_to_z", "z_to_rain"]
