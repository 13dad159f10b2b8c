"""convgru: convolutional GRUs for video and spatiotemporal forecasting."""

from .cell import ConvGRUCell
from .forecaster import EncoderForecaster
from .rnn import ConvGRU

__all__ = ["ConvGRUCell", "ConvGRU", "EncoderForecaster", "export_onnx"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """convgru.export_onnx, imported on first use (the export needs the optional onnx packages)."""
    if name == "export_onnx":
        from .export import export_onnx

        return export_onnx
    raise AttributeError(f"module 'convgru' has no attribute {name!r}")
