"""Evaluate a checkpoint on its test set: python scripts/eval.py ckpt_path=... [data.x=...]"""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import convgru.training
from convgru.training.cli import quote_non_ascii, user_errors
from convgru.training.overrides import check_command_line
from convgru.training.paths import register_resolvers


@hydra.main(config_path="../conf", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Write metrics.json, per_frame.csv, predictions.png and predictions.gif into the run dir; print tables."""
    with user_errors():
        convgru.training.evaluate(cfg, HydraConfig.get().overrides.task)


if __name__ == "__main__":
    register_resolvers()  # ${project_root:}, which the configs use
    sys.argv[1:] = quote_non_ascii(sys.argv[1:])
    with user_errors():  # before Hydra creates a run folder: unknown keys, overridden choices, no GPU
        check_command_line(Path(__file__).resolve().parents[1] / "conf", "eval", sys.argv[1:])
    main()
