"""Evaluate a checkpoint on its test set: python scripts/eval.py ckpt_path=... [data.x=...]"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import convgru.training


@hydra.main(config_path="../conf", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Write metrics.json, per_frame.csv and predictions.png into the run dir; print a table."""
    convgru.training.evaluate(cfg, HydraConfig.get().overrides.task)


if __name__ == "__main__":
    main()
