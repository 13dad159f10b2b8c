"""convgru: convolutional GRUs for video and spatiotemporal forecasting."""

from .cell import ConvGRUCell
from .forecaster import EncoderForecaster
from .rnn import ConvGRU

__all__ = ["ConvGRUCell", "ConvGRU", "EncoderForecaster", "export_onnx", "load"]
__version__ = "0.3.0"  # the one place of the version: pyproject.toml reads it (dynamic)


def load(path, map_location="cpu"):
    """The trained ForecastModule in a checkpoint written by scripts/train.py, loaded weights-only
    (``.forecast(x, future=None)`` predicts); imports convgru.training (Lightning)."""
    from .training import load_module

    return load_module(path, map_location)


def __getattr__(name: str):
    """convgru.export_onnx, imported on first use (the export needs the optional onnx packages)."""
    if name == "export_onnx":
        from .export import export_onnx

        return export_onnx
    raise AttributeError(f"module 'convgru' has no attribute {name!r}")
