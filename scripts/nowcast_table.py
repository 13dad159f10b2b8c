"""The nowcast table over seeds: each forecast's (the model's and every baseline's) skill scores per
threshold, as the mean over runs and their min-max, from the runs' metrics.json (Markdown).

    python scripts/nowcast_table.py RUN_DIR [RUN_DIR ...] [--scores csi hss fss_21px]

RUN_DIR is a training run's folder holding metrics.json (`test/csi_20`, `test/<baseline>/csi_20`, ...),
e.g. the same command at seeds 1, 2 and 3. A forecast missing from a run is left out of its cells.
"""

import argparse
import json
import re
import sys
from pathlib import Path


def read_runs(runs: list[Path]) -> list[dict[str, float]]:
    """Each run's test scores {"model/csi_20": value, "extrapolation/csi_20": ...}."""
    out = []
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        scores = {}
        for key, value in metrics.items():
            if key.startswith("test/") and value is not None:
                rest = key.removeprefix("test/")
                scores[rest if "/" in rest else f"model/{rest}"] = value
        out.append(scores)
    return out


def table(runs: list[dict[str, float]], scores: list[str]) -> str:
    """Markdown: a row per threshold and forecast, a column per score: mean [min-max] over the runs."""
    forecasts = ["model", *sorted({k.split("/")[0] for r in runs for k in r} - {"model"})]
    thresholds = sorted({m[1] for r in runs for k in r if (m := re.fullmatch(r"model/csi_([0-9.e+-]+|mean)", k))},
                        key=lambda t: (t == "mean", float(t) if t != "mean" else 0.0))
    lines = ["| threshold | forecast | " + " | ".join(scores) + " |", "|---|---|" + "---|" * len(scores)]
    for thr in thresholds:
        for forecast in forecasts:
            cells = []
            for score in scores:
                values = [r[f"{forecast}/{score}_{thr}"] for r in runs if f"{forecast}/{score}_{thr}" in r]
                if not values:
                    cells.append("")
                elif len(values) == 1:
                    cells.append(f"{values[0]:.3f}")
                else:
                    cells.append(f"{sum(values) / len(values):.3f} [{min(values):.3f}-{max(values):.3f}]")
            if any(cells):
                lines.append(f"| {thr} | {forecast} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="training run folders with metrics.json")
    parser.add_argument("--scores", nargs="+", default=["csi", "hss", "fss_21px"], help="score names")
    args = parser.parse_args(argv)
    for run in args.runs:
        if not (run / "metrics.json").is_file():
            print(f"error: {run}: expected a training run's folder with metrics.json, found none", file=sys.stderr)
            return 2
    print(f"{len(args.runs)} run(s): mean [min-max]\n")
    print(table(read_runs(args.runs), args.scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
