"""Regenerate the figures (docs/figures/) that the docs' Training and configs page shows (docs/training.md,
"Figures"): a checkpoint evaluated with scripts/eval.py, which writes figures/ beside metrics.json; three of
them are copied to docs/figures.

    python scripts/make_figures.py --ckpt logs/train/runs/<run>/checkpoints/epoch_NNN.ckpt [--out docs/figures]
    python scripts/make_figures.py [--out docs/figures] [--work /tmp/convgru-figures] [--epochs 1] [OVERRIDE ...]

The docs' figures evaluate `experiment=nowcast seed=1`'s best checkpoint (`--ckpt`) on its 300 test sequences,
the baselines read from the cache (paths.cache_dir: data/cache/ in a checkout) where that run's test wrote
them (the STEPS mean takes minutes to forecast otherwise). Without `--ckpt` it first trains a small run (the nowcast
quickstart on 200 synthetic sequences, `--epochs` epochs, with its own cache in --work): a few minutes on a
laptop CPU, a barely trained model. Needs the nowcast extra (pysteps: its colour scale and the baselines).
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOWN = ("forecasts.png", "csi.png", "performance_diagram.png")  # what docs/training.md shows
RUN = ["experiment=nowcast_quickstart", "data.synthetic.num_sequences=200", "data.num_workers=0",
       "trainer.log_every_n_steps=5"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures", help="where the figures are copied")
    parser.add_argument("--work", type=Path, help="folder of the run and its evaluation (default: a temporary one)")
    parser.add_argument("--ckpt", type=Path, help="evaluate this checkpoint (the docs' figures: experiment=nowcast "
                        "seed=1's best) instead of training a small run")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs of the small run (without --ckpt)")
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                        help="Hydra overrides for the runs it makes (e.g. paths.cache_dir=/scratch/cache)")
    args = parser.parse_args(argv)
    if args.ckpt is not None and not args.ckpt.is_file():
        parser.error(f"--ckpt: expected a checkpoint file, found {str(args.ckpt)!r} (no such file)")
    work = args.work or Path(tempfile.mkdtemp(prefix="convgru-figures-"))
    paths = [f"paths.log_dir={work / 'logs'}", *args.overrides]
    best = args.ckpt and args.ckpt.resolve()
    if best is None:
        paths.insert(0, f"paths.cache_dir={work / 'cache'}")  # the user's overrides come after it
        train = work / "train"
        run([sys.executable, "scripts/train.py", *RUN, f"trainer.max_epochs={args.epochs}", *paths,
             f"hydra.run.dir={train}"])
        best = next((train / "checkpoints").glob("epoch_*.ckpt"))
    evaluated = work / "eval"
    run([sys.executable, "scripts/eval.py", f"ckpt_path={best}", *paths, f"hydra.run.dir={evaluated}"])
    missing = [name for name in SHOWN if not (evaluated / "figures" / name).is_file()]
    if missing:  # a checkpoint of another kind of data: eval draws no CSI nor radar maps for it
        found = sorted(p.name for p in (evaluated / "figures").glob("*.png"))
        sys.exit(f"error: --ckpt {best}: expected a nowcast checkpoint (radar with data.thresholds), whose eval "
                 f"draws {', '.join(SHOWN)}; its eval drew {', '.join(found) or 'no figures'}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in SHOWN:
        shutil.copyfile(evaluated / "figures" / name, args.out / name)
    print(f"Copied {', '.join(SHOWN)} from {evaluated / 'figures'} to {args.out}")


def run(command: list[str]) -> None:
    """Run a convgru script; if it fails (its `error:` line printed), exit with its status."""
    print("+", " ".join(command), flush=True)
    if code := subprocess.run(command, cwd=ROOT).returncode:
        sys.exit(code)


if __name__ == "__main__":
    main()
