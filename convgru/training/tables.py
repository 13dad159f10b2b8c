"""Text tables of results: a run's metrics (validation and test), metrics per future frame, and skill
scores of the model vs persistence."""

import math

from convgru.domain.scores import SCORES


def _cell(value: float, width: int, digits: int = 3) -> str:
    return f"{'nan':>{width}}" if value is None or math.isnan(value) else f"{value:{width}.{digits}f}"


def skill_table(scores: dict[str, float], thresholds, units: str | None = None, prefix: str = "") -> str:
    """CSI, POD, FAR, HSS and bias per threshold (and their mean) of the model and of persistence,
    side by side, from `scores` keyed `{prefix}csi_20` and `{prefix}persistence/csi_20` (prefix e.g. "test/")."""
    keys = [f"{thr:g}" for thr in thresholds] + ["mean"]
    names = [name if name == "bias" else name.upper() for name in SCORES]
    lines = [f"{'':>9}" + "".join(f"{name:^17}" for name in names),
             f"{units or 'threshold':>9}" + f" {'model':>8}{'persist':>8}" * len(SCORES)]
    for key in keys:
        pairs = [(scores.get(f"{prefix}{name}_{key}"), scores.get(f"{prefix}persistence/{name}_{key}"))
                 for name in SCORES]
        lines.append(f"{key:>9}" + "".join(f" {_cell(model, 8)}{_cell(persist, 8)}" for model, persist in pairs))
    return "\n".join(line.rstrip() for line in lines)


def frame_table(per_frame: dict[str, list[float]], means: dict[str, float], columns) -> str:
    """One row per future frame and a row `all` of `means` (means over the frames, skill scores pooled
    over them), one column per name in `columns`."""
    widths = [max(9, len(name) + 1) for name in columns]
    lines = [f"{'frame':>6} " + " ".join(f"{name:>{w}}" for name, w in zip(columns, widths))]
    rows = [(str(t + 1), [per_frame[c][t] for c in columns]) for t in range(len(per_frame[columns[0]]))]
    for label, values in [*rows, ("all", [means[c] for c in columns])]:
        lines.append(f"{label:>6} " + " ".join(_cell(v, w, 4) for v, w in zip(values, widths)))
    return "\n".join(lines)


def metrics_table(metrics: dict[str, float], stages=("val", "test"), first=()) -> str:
    """One row per metric, one column per stage, from `metrics` keyed `val/mse`, `test/mse`, ...;
    rows in the order of `first`, then by name; an empty cell where a stage lacks the metric."""
    names = {key.split("/", 1)[1] for key in metrics if key.split("/", 1)[0] in stages and "/" in key}
    rows = [n for n in first if n in names] + sorted(names - set(first))
    width = max([6, *(len(n) for n in rows)])
    lines = [f"{'metric':<{width}}" + "".join(f"{stage:>12}" for stage in stages)]
    for name in rows:
        cells = [metrics.get(f"{stage}/{name}") for stage in stages]
        lines.append(f"{name:<{width}}" + "".join(f"{'':>12}" if v is None else _cell(v, 12, 4) for v in cells))
    return "\n".join(line.rstrip() for line in lines)
