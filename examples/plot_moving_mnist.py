"""
Moving MNIST end to end
=======================

Train a small encoder-forecaster on Moving MNIST from the bundled digits (no download), evaluate
its checkpoint, look at the figures the run writes, forecast a sequence the model has never seen,
and export the model to ONNX (the command, not run here).

The run here is tiny so that the page builds in seconds: 48x48 frames, two ConvGRU blocks of 8
channels, 8 training steps. Its forecasts are blurs; ``convgru train experiment=quickstart`` (the
same command without the size overrides, minutes on a CPU) learns to move the digit.
"""

# %%
# Train
# -----
# ``convgru train`` is the command of the README and of ``convgru --help``; the overrides shrink
# the quickstart. Everything the run writes goes under ``paths.log_dir`` and its generated data
# under ``paths.cache_dir``: here a temporary folder.
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

work = Path(tempfile.mkdtemp(prefix="convgru_gallery_"))
TINY = ["data.image_size=48", "data.frames_in=4", "data.frames_out=4", "data.train_size=64",
        "data.val_size=8", "data.test_size=8", "data.num_workers=0", "model.net.hidden_sizes=[8,8]",
        "model.net.stem_channels=4", "model.net.kernel_size=3", "trainer.max_epochs=1", "figures.sequences=1",
        f"paths.log_dir={work / 'logs'}", f"paths.cache_dir={work / 'cache'}"]


def convgru(*args: str) -> str:
    """Run ``convgru ARGS`` as in a shell (``python -m convgru`` is the same command) in `work`; print
    the summary it ends with (the progress bars left out) and return all it printed."""
    done = subprocess.run([sys.executable, "-m", "convgru", *args], cwd=work, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"convgru {args[0]} failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("Run directory", " frame")))
    print("\n".join(lines[start:]))
    return done.stdout


printed = convgru("train", "experiment=quickstart", *TINY)

# %%
# The run folder holds the checkpoints, TensorBoard's logs, ``metrics.json`` and ``figures/``.
run = work / next(line.split()[-1] for line in printed.splitlines() if line.startswith("Run directory"))
best = min((run / "checkpoints").glob("epoch_*.ckpt"))
print(sorted(p.name for p in (run / "figures").iterdir()))

# %%
# Look at the figures
# -------------------
# ``figures/forecasts.png``: a test sequence's input frames, the frames that followed and the
# forecast, at their lead time (``figures.sequences`` sets how many sequences).
image = plt.imread(run / "figures" / "forecasts.png")
fig = plt.figure(figsize=(image.shape[1] / 100, image.shape[0] / 100), dpi=100)
fig.figimage(image)
plt.show()

# %%
# Evaluate
# --------
# ``convgru eval`` tests a checkpoint; the model and the data come from the checkpoint, and
# ``data.*`` overrides change the test set (here 16 sequences). It writes ``metrics.json``,
# ``per_frame.csv`` and the figures into its own run folder and prints the scores per lead time.
convgru("eval", f"ckpt_path={best}", "data.test_size=16", f"paths.log_dir={work / 'logs'}",
        f"paths.cache_dir={work / 'cache'}")

# %%
# Forecast a sequence
# -------------------
# In Python, a checkpoint is loaded safely (weights and a checked config, no code run from the
# file) with ``convgru.training.load_module``; ``convgru.deploy.forecast`` takes frames (T, C, H, W)
# or (N, T, C, H, W) and returns the forecast in [0, 1]. ``convgru predict CKPT INPUT.npy OUT.npy``
# does the same from the command line. The sequence is new: a digit the training never saw
# (the bundled bank's held-out test digits).
from convgru.data import generate, resolve_digits
from convgru.deploy.forecast import forecast
from convgru.training import load_module

module = load_module(best)
digits = resolve_digits("bundled").heldout
sequence = generate(digits, 1, np.random.default_rng(7), num_frames=8, num_digits=1, image_size=48)[0]
frames = sequence[:, None].astype(np.float32) / 255  # (T, 1, H, W) in [0, 1]
inputs, truth = frames[:4], frames[4:]
predicted = forecast(module, inputs)  # (4, 1, 48, 48)

fig, axes = plt.subplots(2, 8, figsize=(10, 2.9), layout="constrained")
for t in range(8):
    axes[0, t].imshow(frames[t, 0], cmap="gray", vmin=0, vmax=1)
    axes[0, t].set_title(f"{t - 3:+d}" if t > 3 else str(t - 3))
    if t > 3:
        axes[1, t].imshow(predicted[t - 4, 0], cmap="gray", vmin=0, vmax=1)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
for ax in axes[1, :4]:
    ax.set_visible(False)
axes[0, 0].set_ylabel("observed")
axes[1, 4].set_ylabel("forecast")
fig.suptitle("a new sequence: 4 frames in, 4 forecast (lead time in frames)")
plt.show()

# %%
# Export
# ------
# ``convgru export CKPT model.onnx`` (in Python ``convgru.deploy.export.export_module``) writes the
# network as an ONNX file that takes x (B, frames_in, C, H, W) in [0, 1] and returns the forecast y,
# and checks it with onnxruntime against PyTorch; it needs the ``export`` extra
# (``pip install "convgru[export]"``). It is not run on this page: tracing the model for ONNX takes
# longer than the whole tiny training above. With the file, onnxruntime alone forecasts::
#
#     import onnxruntime
#     session = onnxruntime.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
#     (y,) = session.run(None, {"x": inputs[None]})   # (1, 4, 1, 48, 48), as forecast(module, inputs)
