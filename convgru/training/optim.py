"""Optimizer and learning-rate schedule from plain config dicts."""

import torch

from convgru.training.options import check_options

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
SCHEDULERS = {"none": None, "onecycle": torch.optim.lr_scheduler.OneCycleLR,
              "cosine": torch.optim.lr_scheduler.CosineAnnealingLR}


def build_optimizer(params, config: dict) -> torch.optim.Optimizer:
    """`config`: {name: adam|adamw, lr, weight_decay, betas, ...}; other keys go to the optimizer."""
    options = dict(config)
    name = options.pop("name", "adam")
    if name not in OPTIMIZERS:
        raise ValueError(f"model.optimizer.name must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    check_options(options, OPTIMIZERS[name], "model.optimizer")
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    return OPTIMIZERS[name](params, **options)


def build_scheduler(optimizer: torch.optim.Optimizer, config: dict, total_steps: float):
    """`config`: {name: none|onecycle|cosine, ...options}; stepped every optimizer step, or None."""
    options = dict(config)
    name = options.pop("name", "none")
    if name not in SCHEDULERS:
        raise ValueError(f"model.scheduler.name must be one of {list(SCHEDULERS)}, got {name!r}")
    if name == "none":
        return None
    if not 0 < total_steps < float("inf"):
        raise ValueError(
            f"model.scheduler.name={name} needs a finite number of training steps, got {total_steps}; "
            "set trainer.max_epochs or trainer.max_steps, or use model.scheduler.name=none"
        )
    total_steps = int(total_steps)
    check_options(options, SCHEDULERS[name], "model.scheduler")
    if name == "onecycle":
        options.setdefault("max_lr", [group["lr"] for group in optimizer.param_groups])
        return SCHEDULERS[name](optimizer, total_steps=total_steps, **options)
    return SCHEDULERS[name](optimizer, T_max=total_steps, **options)
