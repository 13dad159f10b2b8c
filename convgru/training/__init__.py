"""Lightning training, metrics, checkpoints and the Hydra train/eval pipeline for convgru.

Names are imported on first use (`convgru.training.ForecastModule` imports Lightning then), and
importing the package has no side effects: the scripts register the `${project_root:}` resolver
(`convgru.training.paths.register_resolvers`) when they start, as `train` and `evaluate` do.
"""

import importlib

_EXPORTS = {
    "AtomicCheckpointIO": "checkpoint",
    "CheckpointError": "checkpoint",
    "ForecastModule": "module",
    "FrameMetrics": "metrics",
    "PredictionImages": "callbacks",
    "ResumableOnInterrupt": "callbacks",
    "WeightedLoss": "losses",
    "build_loss": "losses",
    "evaluate": "pipeline",
    "load_checkpoint": "checkpoint",
    "load_module": "restore",
    "train": "pipeline",
    # the domain's scores and units, where convgru 0.2.0 had them
    "SkillScores": "convgru.domain",
    "rain_rate_to_dbz": "convgru.domain",
    "skill_scores": "convgru.domain",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'convgru.training' has no attribute {name!r}")
    module = _EXPORTS[name]
    return getattr(importlib.import_module(module if "." in module else f"{__name__}.{module}"), name)
