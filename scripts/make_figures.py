"""Regenerate the figures (docs/figures/) that the docs' Training and configs page shows (docs/training.md,
"Figures") from a small nowcast run: the nowcast quickstart on 200 synthetic radar sequences, trained for
an epoch on the CPU, then evaluated with scripts/eval.py, which writes figures/ beside metrics.json;
three of them are copied to docs/figures.

    python scripts/make_figures.py [--out docs/figures] [--work /tmp/convgru-figures] [--epochs 1]

Takes a few minutes on a laptop CPU. Needs the nowcast extra (pysteps: its colour scale and the
extrapolation baseline).
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
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (the docs' figures: 1)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="convgru-figures-"))
    paths = [f"paths.cache_dir={work / 'cache'}", f"paths.log_dir={work / 'logs'}"]
    train = work / "train"
    run([sys.executable, "scripts/train.py", *RUN, f"trainer.max_epochs={args.epochs}", *paths,
         f"hydra.run.dir={train}"])
    best = next((train / "checkpoints").glob("epoch_*.ckpt"))
    evaluated = work / "eval"
    run([sys.executable, "scripts/eval.py", f"ckpt_path={best}", *paths, f"hydra.run.dir={evaluated}"])
    args.out.mkdir(parents=True, exist_ok=True)
    for name in SHOWN:
        shutil.copyfile(evaluated / "figures" / name, args.out / name)
    print(f"Copied {', '.join(SHOWN)} from {evaluated / 'figures'} to {args.out}")


def run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
