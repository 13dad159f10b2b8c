"""
Moving MNIST end to end
=======================

Train a small encoder-forecaster on Moving MNIST from the bundled digits
(no download), evaluate its checkpoint, look at the figures the run writes,
forecast a sequence the model has never seen, and export the model to ONNX
(the command, not run here).

The run is tiny so that the page builds in seconds: 48x48 frames, two ConvGRU
blocks of 8 channels, 8 training steps. Its forecasts are blurs;
``convgru train experiment=quickstart`` (the same run without the size
overrides, minutes on a CPU) learns to move the digit.
"""

# %%
# Train
# -----
# ``convgru train experiment=quickstart`` is the README's command. In Python,
# the same configs, composed with Hydra's compose API, go to
# ``convgru.training.train``, which trains, tests the best checkpoint and
# returns the metrics. The overrides (the same on the command line) shrink
# the quickstart, keep the page quiet (no progress bar nor model summary),
# skip the test after training (``test=false``: the evaluation below does
# it) and write into a temporary folder: the run into ``paths.output_dir``,
# generated data into ``paths.cache_dir``.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from hydra import compose, initialize_config_dir

import convgru.training
from convgru.training.paths import CONFIG_DIR

work = Path(tempfile.mkdtemp(prefix="convgru_gallery_"))
# sphinx_gallery_start_ignore
# Lightning's notices are left out of the page (convgru.training.train leaves out its deprecation warning).
import logging

import pytorch_lightning  # noqa: F401 (sets its loggers' level on import)

for name in ("pytorch_lightning", "lightning_fabric"):
    logging.getLogger(name).setLevel(logging.WARNING)
# sphinx_gallery_end_ignore

TINY = ["data.image_size=48", "data.frames_in=4",
        "data.frames_out=4", "data.train_size=64",
        "data.val_size=8", "data.num_workers=0",
        "model.net.hidden_sizes=[8,8]", "model.net.stem_channels=4",
        "model.net.kernel_size=3", "trainer.max_epochs=1",
        "trainer.log_every_n_steps=2"]
QUIET = ["+trainer.enable_progress_bar=false",
         "+trainer.enable_model_summary=false"]


def config(name, overrides):
    """convgru/conf/<name>.yaml (train, eval) with `overrides`."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR),
                               version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


run = work / "train"
metrics = convgru.training.train(config("train", [
    "experiment=quickstart", *TINY, *QUIET, "test=false",
    "callbacks.progress_bar=null", f"paths.output_dir={run}",
    f"paths.cache_dir={work / 'cache'}"]))

# %%
# The run folder holds the checkpoints (the best by ``val/mse``, and
# ``last.ckpt`` to resume from), TensorBoard's logs (the scalars and the
# predicted frames) and the run's log.
best = min((run / "checkpoints").glob("epoch_*.ckpt"))
print(sorted(p.name for p in run.iterdir() if p.name[0] != "."))

# %%
# Evaluate
# --------
# ``convgru eval ckpt_path=CKPT`` (``convgru.training.evaluate``) tests a
# checkpoint: the model and the data come from the checkpoint, and ``data.*``
# overrides change the test set (here 16 sequences). It prints the scores per
# lead time and writes ``metrics.json``, ``per_frame.csv``,
# ``predictions.png``, ``predictions.gif`` and ``figures/`` into its folder.
tested = work / "eval"
overrides = ["data.test_size=16", "figures.sequences=1"]
scores = convgru.training.evaluate(config("eval", [
    f"ckpt_path={best}", *overrides, QUIET[0],
    f"paths.output_dir={tested}",
    f"paths.cache_dir={work / 'cache'}"]),
    overrides)

# %%
# Look at the figures
# -------------------
# ``figures/`` holds the scores against lead time (``scores.png``, their
# numbers in ``scores.csv``) and ``forecasts.png``: a test sequence's input
# frames, the frames that followed and the forecast, at their lead time
# (``figures.sequences`` sets how many sequences).
print(sorted(p.name for p in (tested / "figures").iterdir()))
image = plt.imread(tested / "figures" / "forecasts.png")
height, width = image.shape[:2]
fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
fig.figimage(image)
plt.show()

# %%
# Forecast a sequence
# -------------------
# ``convgru.training.load_module`` loads a checkpoint safely (its weights and
# a checked config; no code from the file is run). Its ``forecast(x,
# future)`` takes frames (B, T, C, H, W) in [0, 1] and returns the next
# ``future`` frames. ``convgru predict CKPT INPUT.npy OUT.npy`` does the same
# from the command line, for arrays, videos and gridded fields. The sequence
# is new: a digit the training never saw (the bundled bank's held-out ones).
from convgru.data import generate, resolve_digits
from convgru.training import load_module

module = load_module(best)
digits = resolve_digits("bundled").heldout
rng = np.random.default_rng(7)
sequence = generate(digits, 1, rng, num_frames=8, num_digits=1,
                    image_size=48)[0]
frames = sequence[:, None] / np.float32(255)  # (T, 1, H, W), [0, 1]
inputs = torch.from_numpy(frames[None, :4])  # (1, 4, 1, 48, 48)
with torch.no_grad():  # the next 4 frames: (4, 1, H, W)
    predicted = module.forecast(inputs, 4)[0].numpy()

fig, axes = plt.subplots(2, 8, figsize=(10, 2.9),
                         layout="constrained")
for t in range(8):
    axes[0, t].imshow(frames[t, 0], cmap="gray", vmin=0, vmax=1)
    axes[0, t].set_title(f"{t - 3:+d}" if t > 3 else str(t - 3))
    if t > 3:
        axes[1, t].imshow(predicted[t - 4, 0], cmap="gray", vmin=0,
                          vmax=1)
for ax in axes.flat:
    ax.set(xticks=[], yticks=[])
for ax in axes[1, :4]:
    ax.set_visible(False)
axes[0, 0].set_ylabel("observed")
axes[1, 4].set_ylabel("forecast")
fig.suptitle("a new sequence: 4 frames in, 4 forecast "
             "(lead time in frames)")
plt.show()

# %%
# Export
# ------
# ``convgru export CKPT model.onnx`` (in Python
# ``convgru.deploy.export.export_module``) writes the network as an ONNX
# file that takes x (B, frames_in, C, H, W) in [0, 1] and returns the
# forecast y, and checks it with onnxruntime against PyTorch; it needs the
# ``export`` extra (``pip install "convgru[export]"``). It is not run on this
# page: tracing the model for ONNX takes longer than the tiny training
# above. With the file, onnxruntime alone forecasts::
#
#     import onnxruntime
#     session = onnxruntime.InferenceSession(
#         "model.onnx", providers=["CPUExecutionProvider"])
#     (y,) = session.run(None, {"x": inputs.numpy()})  # (1, 4, 1, H, W)
