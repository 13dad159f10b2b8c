"""convgru: convolutional GRUs for video and spatiotemporal forecasting."""

from .cell import ConvGRUCell
from .forecaster import EncoderForecaster
from .rnn import ConvGRU

__all__ = ["ConvGRUCell", "ConvGRU", "EncoderForecaster"]
__version__ = "0.1.0"
