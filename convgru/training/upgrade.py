"""Resuming from checkpoints of earlier convgru versions."""

import torch
from torch import nn


def merge_rz_norm_states(checkpoint: dict, module: nn.Module) -> None:
    """Merge a 0.1.0 checkpoint's optimizer state of each cell's separate r and z GroupNorms
    (norm_r, norm_z) into the one norm_rz of 0.2.0, as ConvGRUCell merges their weights on
    loading, so that a 0.1.0 run resumes. Other checkpoints are left as they are."""
    if (checkpoint.get("convgru") or {}).get("format", 1) > 1:
        return
    names = [name for name, _ in module.named_parameters()]
    old = []  # 0.1.0's parameter order: ..., norm_r.weight, norm_r.bias, norm_z.weight, norm_z.bias, ...
    for name in names:
        if name.endswith(".norm_rz.weight"):
            prefix = name[: -len("norm_rz.weight")]
            old += [f"{prefix}norm_{g}.{p}" for g in "rz" for p in ("weight", "bias")]
        elif not name.endswith(".norm_rz.bias"):
            old.append(name)
    if old == names:
        return
    index = {name: i for i, name in enumerate(old)}
    for optimizer in checkpoint.get("optimizer_states", []):
        groups, state = optimizer["param_groups"], optimizer["state"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(old):
            return
        merged = {}
        for i, name in enumerate(names):
            if ".norm_rz." in name:
                r, z = (state.get(index[name.replace("norm_rz", f"norm_{g}")]) for g in "rz")
                if r is not None and z is not None:
                    merged[i] = {k: torch.cat([v, z[k]]) if torch.is_tensor(v) and v.dim() else v for k, v in r.items()}
            elif index[name] in state:
                merged[i] = state[index[name]]
        optimizer["state"], groups[0]["params"] = merged, list(range(len(names)))
