"""Train an encoder-forecaster: python scripts/train.py [experiment=quickstart] [model=convgru3] [key=value ...]"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import convgru.training
from convgru.training.cli import quote_non_ascii, user_errors
from convgru.training.overrides import check_command_line
from convgru.training.paths import register_resolvers


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Fit, test the best checkpoint; return the monitored metric (for -m sweeps)."""
    with user_errors():
        metrics = convgru.training.train(cfg)
    return metrics.get(cfg.monitor)


if __name__ == "__main__":
    register_resolvers()  # ${project_root:}, which the configs use
    sys.argv[1:] = quote_non_ascii(sys.argv[1:])
    with user_errors():  # before Hydra creates a run folder: unknown keys, overridden choices, no GPU
        check_command_line(Path(__file__).resolve().parents[1] / "conf", "train", sys.argv[1:])
    main()
