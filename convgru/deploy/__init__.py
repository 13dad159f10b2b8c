"""A trained model at work, above training: forecasts of arrays, videos and gridded fields from a
checkpoint (`convgru.deploy.predict`, what scripts/predict.py runs) and its ONNX export
(`convgru.deploy.export`, scripts/export.py). Names are imported on first use. The forecast function is
`convgru.deploy.forecast.forecast`: a package-level `forecast` would be shadowed by its submodule
once that is imported.
"""

import importlib

_EXPORTS = {
    "export_module": "export",
    "trained_on": "forecast",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'convgru.deploy' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
