"""Lightning training, metrics, checkpoints and the Hydra train/eval pipeline for convgru."""

from convgru.training.paths import register_resolvers

register_resolvers()

from convgru.training.callbacks import PredictionImages  # noqa: E402
from convgru.training.checkpoint import CheckpointError, load_checkpoint, load_module  # noqa: E402
from convgru.training.checkpoint_io import AtomicCheckpointIO  # noqa: E402
from convgru.training.losses import WeightedLoss, build_loss  # noqa: E402
from convgru.training.metrics import FrameMetrics  # noqa: E402
from convgru.training.module import ForecastModule  # noqa: E402
from convgru.training.pipeline import evaluate, train  # noqa: E402
from convgru.training.skill import SkillScores, skill_scores  # noqa: E402
from convgru.training.units import rain_rate_to_dbz  # noqa: E402

__all__ = [
    "AtomicCheckpointIO",
    "CheckpointError",
    "ForecastModule",
    "FrameMetrics",
    "PredictionImages",
    "SkillScores",
    "WeightedLoss",
    "build_loss",
    "evaluate",
    "load_checkpoint",
    "load_module",
    "rain_rate_to_dbz",
    "skill_scores",
    "train",
]
