"""The domain layer: physical units and their [0, 1] scaling, thresholds, and the categorical skill
scores of nowcasting (CSI, POD, FAR, HSS, frequency bias). Below the data modules and training;
loads neither Lightning nor Hydra."""

from .scores import SCORES, SkillScores, check_thresholds, skill_scores
from .units import UNITS, rain_rate_to_dbz, scale, to_physical, to_scaled

__all__ = ["SCORES", "SkillScores", "UNITS", "check_thresholds", "rain_rate_to_dbz", "scale", "skill_scores",
           "to_physical", "to_scaled"]
