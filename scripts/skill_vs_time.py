"""Skill against training time: the model's mean CSI and FSS at each validation of one or more training
runs, against the minutes since the run started, with the test scores of its baselines as lines.

    python scripts/skill_vs_time.py RUN_DIR [RUN_DIR ...] [--fss 21] [--out skill_vs_time.png]

RUN_DIR is a training run's folder (logs/train/runs/<name>_<date_time>): the model's `val/csi_mean` and
`val/fss_<n>px_mean` come from its TensorBoard events (wall time of each validation), the
baselines' `test/<baseline>/csi_mean` and `.../fss_<n>px_mean` from its metrics.json (every
baseline found there, e.g. persistence, extrapolation, sprog, steps; the first run's). The model's
points are scores on the validation set and the baselines' on the test set, drawn from the same
data: the figure shows what more training buys, the table in metrics.json is the comparison.
"""

import argparse
import json
import sys
from pathlib import Path


def model_curve(run: Path, tag: str) -> list[tuple[float, float]]:
    """(minutes since the run's first event, value) of scalar `tag` in the run's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points, start = [], None
    for events in sorted(run.glob("**/events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        start = accumulator.FirstEventTimestamp() if start is None else start
        if tag in accumulator.Tags()["scalars"]:
            points += [((e.wall_time - start) / 60, e.value) for e in accumulator.Scalars(tag)]
    return sorted(points)


def baselines(run: Path, score: str) -> dict[str, float]:
    """{baseline: test/<baseline>/<score>} from the run's metrics.json."""
    path = run / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    found = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "test" and parts[2] == score and value is not None:
            found[parts[1]] = value
    return found


def methods(run: Path, found) -> list[str]:
    """model, then the baselines `found` in the order of the run's test figures (figures/csi.csv's columns:
    model.baselines' order), so that each has its colour of those figures; without them (figures.enabled=false)
    in convgru's order of the baselines (persistence, extrapolation, sprog, steps), then others sorted."""
    from convgru.training.baselines import BASELINES
    from convgru.training.figures import methods_of

    path = run / "figures" / "csi.csv"
    order = methods_of(dict.fromkeys(path.read_text().partition("\n")[0].split(",")[1:])) if path.is_file() else []
    order += [m for m in BASELINES if m not in order]
    return ["model", *(m for m in order if m in found), *sorted(set(found) - set(order) - {"model"})]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="training run folders")
    parser.add_argument("--fss", type=int, default=21, help="the FSS neighbourhood in pixels (default 21)")
    parser.add_argument("--out", type=Path, default=Path("skill_vs_time.png"), help="the figure (PNG)")
    args = parser.parse_args(argv)
    for run in args.runs:
        if not run.is_dir():
            print(f"error: {run}: expected a training run's folder, found none", file=sys.stderr)
            return 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from convgru.training.figures import COLORS, method_label, method_style

    scores = [("csi_mean", "mean CSI"), (f"fss_{args.fss}px_mean", f"mean FSS-{args.fss}")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
    for ax, (score, label) in zip(axes, scores):
        found = baselines(args.runs[0], score)
        names = methods(args.runs[0], found)
        for i, run in enumerate(args.runs):
            points = model_curve(run, f"val/{score}")
            if points:  # the first run in the model's colour of the test figures, others after the baselines'
                colour = COLORS[0 if i == 0 else (len(names) + i - 1) % len(COLORS)]
                ax.plot(*zip(*points), marker="o", color=colour, label=f"model ({run.name}, validation)")
        for name in names[1:]:
            style = method_style(name, names)
            ax.axhline(found[name], color=style["color"], linestyle=style["linestyle"],
                       label=f"{method_label(name)} (test)")
        ax.set(xlabel="minutes of training (wall time)", ylabel=label)
        ax.grid(alpha=0.3)
    # one legend for both panels, below them: inside an axes it hid the model's points
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=10)
    fig.savefig(args.out, dpi=120)
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
