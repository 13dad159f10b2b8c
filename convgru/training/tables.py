"""Text tables of results: a run's metrics (validation and test), metrics per future frame, and skill
scores of the model vs its baselines."""

import math
import re

from convgru.domain.scores import SCORES


def _cell(value: float, width: int, digits: int = 3) -> str:
    return f"{'nan':>{width}}" if value is None or math.isnan(value) else f"{value:{width}.{digits}f}"


def skill_forecasts(scores: dict[str, float], prefix: str = "") -> list[str]:
    """The forecasts that `scores` hold skill scores of: "model" ({prefix}csi_mean), then each baseline
    ({prefix}<baseline>/csi_mean), in the order of `scores`."""
    found = ["model"] if f"{prefix}csi_mean" in scores else []
    for key in scores:
        name, _, score = key.removeprefix(prefix).rpartition("/")
        if key.startswith(prefix) and score == "csi_mean" and name and "/" not in name:
            found.append(name)
    return found


def skill_columns(scores: dict[str, float], prefix: str = "") -> list[tuple[str, str]]:
    """(heading, score name) of every skill score that `scores` holds for the model: CSI, POD, FAR,
    HSS and bias, CSI after each max-pooling (CSI-p4: `csi_pool4`), FSS at each scale (FSS-5: `fss_5px`)."""
    columns = [(name if name == "bias" else name.upper(), name) for name in SCORES]
    names = [key.removeprefix(prefix).removesuffix("_mean") for key in scores
             if key.startswith(prefix) and key.endswith("_mean") and "/" not in key.removeprefix(prefix)]
    pools = sorted(int(n.removeprefix("csi_pool")) for n in names if re.fullmatch(r"csi_pool\d+", n))
    scales = sorted(int(n[4:-2]) for n in names if re.fullmatch(r"fss_\d+px", n))
    return [*columns, *((f"CSI-p{n}", f"csi_pool{n}") for n in pools), *((f"FSS-{n}", f"fss_{n}px") for n in scales)]


def skill_table(scores: dict[str, float], thresholds, units: str | None = None, prefix: str = "") -> str:
    """A row per threshold (and their mean) and forecast (the model, then each baseline), a column per
    skill score (`skill_columns`), from `scores` keyed `{prefix}csi_20` (the model's) and
    `{prefix}persistence/csi_20` (a baseline's; prefix e.g. "test/")."""
    forecasts, columns = skill_forecasts(scores, prefix), skill_columns(scores, prefix)
    width = max(8, *(len(name) + 1 for name in forecasts))
    lines = [f"{units or 'threshold':>9}  {'forecast':<{width}}" + "".join(f"{head:>8}" for head, _ in columns)]
    for key in [*(f"{thr:g}" for thr in thresholds), "mean"]:
        for i, forecast in enumerate(forecasts):
            where = prefix if forecast == "model" else f"{prefix}{forecast}/"
            lines.append(f"{key if i == 0 else '':>9}  {forecast:<{width}}"
                         + "".join(_cell(scores.get(f"{where}{name}_{key}"), 8) for _, name in columns))
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
