"""The domain layer: physical units and their [0, 1] scaling, thresholds, the categorical skill scores
of nowcasting (CSI, POD, FAR, HSS, frequency bias, FSS), the scores of gridded fields (latitude-weighted
RMSE, ACC) and pysteps' extrapolation nowcast. Below the data modules and training; loads neither
Lightning nor Hydra. Names are imported on first use (`convgru.domain.SkillScores` imports torchmetrics
then), so `import convgru.domain` is cheap.
"""

import importlib

_EXPORTS = {
    "SCORES": "scores",
    "SkillScores": "scores",
    "check_thresholds": "scores",
    "skill_scores": "scores",
    "UNITS": "units",
    "rain_rate_to_dbz": "units",
    "scale": "units",
    "to_physical": "units",
    "to_scaled": "units",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'convgru.domain' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
