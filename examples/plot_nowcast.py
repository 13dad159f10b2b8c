"""
A nowcast against its baselines
===============================

Precipitation nowcasting on synthetic radar reflectivity (dBZ, 5-minute
frames, no download): train the encoder-forecaster, then score it beside
persistence (the last frame repeated), pysteps' optical-flow extrapolation
and pysteps' S-PROG on the same test sequences, with the field's scores (CSI,
POD, FAR, HSS, ETS, SEDI, frequency bias, pooled CSI, FSS) at 20, 30 and
40 dBZ, and draw the forecasts in pysteps' reflectivity colours.

The baselines need the ``nowcast`` extra (``pip install "convgru[nowcast]"``).
The run is tiny (32 sequences of 32x32, 7 training steps) so that the page
builds in seconds: the model has barely started to learn, and the baselines
win by far. ``convgru train experiment=nowcast_quickstart`` (the same run
without the size overrides, minutes on a CPU) trains a model that beats them
at 30 and 40 dBZ.
"""

# %%
# Train and test
# --------------
# ``convgru train experiment=nowcast_quickstart``, shrunk, in Python (the
# configs composed with Hydra's compose API, as in the Moving MNIST example),
# writing into a temporary folder. The test after the training scores the
# model and every baseline of ``model.baselines`` on the same batches and
# prints the tables; ``metrics.json`` in the run folder holds them too.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from hydra import compose, initialize_config_dir

import convgru.training
from convgru.training.paths import CONFIG_DIR

work = Path(tempfile.mkdtemp(prefix="convgru_gallery_"))
# sphinx_gallery_thumbnail_number = 2
# sphinx_gallery_start_ignore
# Lightning's notices are left out of the page (convgru.training.train leaves out its deprecation warning).
import logging

import pytorch_lightning  # noqa: F401 (sets its loggers' level on import)

for name in ("pytorch_lightning", "lightning_fabric"):
    logging.getLogger(name).setLevel(logging.WARNING)
# sphinx_gallery_end_ignore

run = work / "train"
overrides = [
    "experiment=nowcast_quickstart",
    "data.synthetic.num_sequences=32",
    "data.synthetic.image_size=32",
    "data.frames_in=4", "data.frames_out=4",
    "data.num_workers=0", "model.net.hidden_sizes=[8,8]",
    "model.net.stem_channels=4", "trainer.max_epochs=1",
    "trainer.log_every_n_steps=2", "figures.sequences=1",
    "+trainer.enable_progress_bar=false",
    "callbacks.progress_bar=null",
    "+trainer.enable_model_summary=false",
    f"paths.output_dir={run}",
    f"paths.cache_dir={work / 'cache'}"]
with initialize_config_dir(config_dir=str(CONFIG_DIR),
                           version_base="1.3"):
    cfg = compose(config_name="train", overrides=overrides)
metrics = convgru.training.train(cfg)

# %%
# The scores against lead time
# ----------------------------
# The run's ``figures/`` hold one figure per score (CSI, POD, ..., FSS)
# against lead time, the performance diagram and forecast maps; here its CSI
# (the model in black).
image = plt.imread(run / "figures" / "csi.png")
height, width = image.shape[:2]
fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
fig.figimage(image)
plt.show()

# %%
# Forecasts side by side
# ----------------------
# A new sequence of the same synthetic radar (other random cells). The
# checkpoint, loaded safely, holds the model and its baselines
# (``module.baselines``: functions of the scaled inputs, as the test scored
# them); ``radar_scale`` gives pysteps' reflectivity colours, as in the
# run's figures.
from convgru.data import generate_radar
from convgru.training import load_module
from convgru.training.figures import radar_scale

best = min((run / "checkpoints").glob("epoch_*.ckpt"))
module = load_module(best)
low, high = module.hparams.data["value_range"]  # dBZ of 0 and 1
frames_in, future = 4, int(module.hparams.future)
rng = np.random.default_rng(3)
dbz = generate_radar(1, rng, num_frames=frames_in + future,
                     image_size=32, dynamics="evolving")[0]
x = torch.from_numpy((dbz[None, :frames_in, None] - low)
                     / (high - low))
with torch.no_grad():  # x: (1, T_in, 1, H, W) in [0, 1]
    scaled = {"model": module.forecast(x, future)}
    for name, baseline in module.baselines.items():
        scaled[name] = baseline(x, future)
rows = {"observed": dbz[frames_in:]}
rows.update({name: low + (high - low) * forecast[0, :, 0].numpy()
             for name, forecast in scaled.items()})  # dBZ

cmap, norm, ticks, _ = radar_scale("dBZ")
fig, axes = plt.subplots(
    len(rows), future + 1, layout="constrained",
    figsize=(1.6 * future + 2.6, 1.6 * len(rows)))
axes[0, 0].imshow(dbz[frames_in - 1], cmap=cmap, norm=norm)
axes[0, 0].set_title("0 min (last input)")
for r, (name, frames) in enumerate(rows.items()):
    axes[r, 1].set_ylabel(name)
    for t in range(future):
        shown = axes[r, t + 1].imshow(frames[t], cmap=cmap,
                                      norm=norm)
        axes[0, t + 1].set_title(f"+{5 * (t + 1)} min")
for ax in axes.flat:
    ax.set(xticks=[], yticks=[])
for ax in axes[1:, 0]:
    ax.set_visible(False)
fig.colorbar(shown, ax=axes, ticks=ticks, shrink=0.8,
             label="reflectivity (dBZ)")
plt.show()
