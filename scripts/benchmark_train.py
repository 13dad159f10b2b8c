"""Training throughput (sequences/s) of an experiment: eager, compiled and CUDA graphs, in one run.

    python scripts/benchmark_train.py experiment=shi2017                     # a GPU
    python scripts/benchmark_train.py --modes false true --steps 20 experiment=quickstart
    python scripts/benchmark_train.py --batch-sizes 16 64 256 --modes reduce-overhead experiment=shi2017

Each mode trains the experiment's ForecastModule with Lightning (its trainer's precision and
gradient clipping, its data module and batch size) for --warmup + --steps optimizer steps, without
validation, checkpoints or loggers; the last --steps are timed (compilation happens in the warm-up).
Modes are `model.compile` values: false (eager), true (inductor), reduce-overhead (inductor with CUDA
graphs), max-autotune. The first mode runs again at the end, so drift on a shared machine shows.
--batch-sizes runs every mode at each batch size (default: the experiment's data.batch_size).
"""

from __future__ import annotations

import argparse
import time

import hydra
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from benchmark import describe_device
from convgru.training.paths import CONFIG_DIR as CONF
from convgru.training.paths import register_resolvers

register_resolvers()  # ${project_root:}, which the configs use


class StepTimer(pl.Callback):
    """Wall time of the optimizer steps after the first `warmup` ones (device synchronised)."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end, self.steps = warmup, None, None, 0

    def _sync(self, trainer):
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize(trainer.strategy.root_device)

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.warmup:
            self._sync(trainer)
            self.start = time.perf_counter()
        elif trainer.global_step > self.warmup:
            self.steps = trainer.global_step - self.warmup

    def on_train_end(self, trainer, *args) -> None:
        self._sync(trainer)
        self.end = time.perf_counter()


def mode_value(text: str):
    """'false' / 'true' -> bool, other compile modes as given."""
    return {"false": False, "true": True}.get(text.lower(), text)


def throughput(cfg, compile_mode, warmup: int, steps: int) -> tuple[float, float]:
    """(sequences/s, seconds of warm-up) of one training run in `compile_mode`."""
    pl.seed_everything(cfg.seed)
    datamodule = hydra.utils.instantiate(cfg.data)
    module = hydra.utils.instantiate(cfg.model, _convert_="all", compile=compile_mode)
    timer = StepTimer(warmup)
    trainer = pl.Trainer(accelerator=cfg.trainer.accelerator, devices=1, precision=cfg.trainer.precision,
                         gradient_clip_val=cfg.trainer.gradient_clip_val, max_steps=warmup + steps,
                         limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[timer])
    begin = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    return timer.steps * cfg.data.batch_size / (timer.end - timer.start), timer.start - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=shi2017")
    parser.add_argument("--modes", nargs="+", default=["false", "true", "reduce-overhead"], type=str)
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-sizes", nargs="+", type=int, help="data.batch_size values (default: the config's)")
    args = parser.parse_args()
    overrides = ["data.val_size=16", "data.test_size=16", *args.overrides]  # no big fixed sets to generate
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "paths.output_dir=${paths.log_dir}/benchmark_train"])
    device = torch.device("cuda" if cfg.trainer.accelerator in ("gpu", "cuda") else "cpu")
    print(describe_device(device), "overrides", " ".join(args.overrides), f"precision {cfg.trainer.precision}")
    print(f"model {OmegaConf.to_container(cfg.model.net, resolve=True)}, batch {cfg.data.batch_size}, "
          f"{cfg.data.frames_in} -> {cfg.data.frames_out} frames of {cfg.data.get('image_size', '?')} px")
    modes = [mode_value(m) for m in args.modes]
    header = (f"{'batch':>6} {'model.compile':>16} {'seq/s':>9} {'vs first':>9} {'warm-up s':>10}   "
              f"({args.steps} timed steps)")
    rows = [header]
    for batch in args.batch_sizes or [cfg.data.batch_size]:
        cfg.data.batch_size, first = batch, None
        for mode in [*modes, modes[0]]:
            rate, warm = throughput(cfg, mode, args.warmup, args.steps)
            first = first or rate
            rows.append(f"{batch:>6} {str(mode):>16} {rate:9.1f} {rate / first:9.2f} {warm:10.1f}")
            print("\n" + "\n".join(rows), flush=True)  # so far: a run cut short still reports


if __name__ == "__main__":
    main()
