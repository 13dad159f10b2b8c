#!/usr/bin/env bash
# The package as a user installs it, apart from the checkout: build the sdist and the wheel (the
# wheel from the sdist, so both are checked), install the wheel into a second virtual environment
# that reuses the first one's installed dependencies (no download of torch or anything else: a .pth
# file puts the first environment's site-packages after its own, and a plain path there processes
# none of that folder's .pth files, so the checkout's editable convgru is not on the path), check
# that `convgru` comes from the wheel, then from an empty folder run train, eval, predict and export.
# Run by .ci/run in the environment of the editable install; prints its wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
lap=$SECONDS
took() { echo "  $1: $((SECONDS - lap)) s"; lap=$SECONDS; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
quiet() { "$@" >"$work/output.log" 2>&1 || { cat "$work/output.log"; return 1; }; }  # its output if it fails

quiet python -m build --outdir "$work/dist" .
wheel=$(ls "$work"/dist/convgru-*.whl)
ls "$work"/dist/convgru-*.tar.gz >/dev/null
python - "$wheel" <<'EOF'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
needed = ["convgru/conf/train.yaml", "convgru/conf/eval.yaml", "convgru/conf/experiment/quickstart.yaml",
          "convgru/data/bundled/mnist_5k.npz", "convgru/data/bundled/README.md", "convgru/py.typed"]
missing = [n for n in needed if n not in names]
missing += [] if any(n.endswith(".dist-info/licenses/LICENSE") for n in names) else ["LICENSE"]
assert not missing, f"the wheel lacks {missing}"
EOF
took "sdist and wheel built"

python -m venv --without-pip "$work/venv"
site_of() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
site_of python >"$(site_of "$work/venv/bin/python")/convgru-dependencies.pth"
python -m pip --python "$work/venv/bin/python" install --quiet --no-deps --no-index "$wheel"
took "wheel installed"

mkdir "$work/empty"
cd "$work/empty"
export XDG_CACHE_HOME="$work/cache"
unset PROJECT_ROOT PYTHONPATH
PATH="$work/venv/bin:$PATH"
python - <<'EOF'
import importlib.metadata
import sys
from pathlib import Path

import convgru
from convgru.training.paths import checkout

where = Path(convgru.__file__).resolve()
assert where.is_relative_to(Path(sys.prefix).resolve()), f"convgru imported from {where}, not from the wheel"
assert checkout() is None, checkout()
assert importlib.metadata.version("convgru") == convgru.__version__
print(f"convgru {convgru.__version__} from {where.parent}")
EOF
test "$(command -v convgru)" = "$work/venv/bin/convgru"
took "imported from the wheel"

tiny=(data.train_size=8 data.val_size=4 data.test_size=4 data.batch_size=4 data.image_size=32 data.num_workers=0
      model.net.hidden_sizes=[4,4] model.net.stem_channels=4 trainer.max_epochs=1 trainer.log_every_n_steps=1
      data.frames_in=2 data.frames_out=2 callbacks.prediction_images.num_sequences=1)  # 2 training steps,
      # one validation and one test batch; 2 -> 2 frames, so that the ONNX export traces a short graph
quiet convgru train experiment=quickstart "${tiny[@]}" hydra.run.dir=logs/train/wheel
ckpt=logs/train/wheel/checkpoints/last.ckpt
test -f "$ckpt" && test -f logs/train/wheel/train.log
test -d "$XDG_CACHE_HOME/convgru" && test ! -e data  # caches in the user's cache folder, nothing else here
took "convgru train"
quiet convgru eval ckpt_path="$ckpt" hydra.run.dir=logs/eval/wheel
test -f logs/eval/wheel/metrics.json
took "convgru eval"
python -c "import numpy as np; np.save('frames.npy', np.random.default_rng(0).random((2, 2, 1, 32, 32), 'float32'))"
quiet convgru predict "$ckpt" frames.npy forecast.npy
python -c "import numpy as np; assert np.load('forecast.npy').shape == (2, 2, 1, 32, 32)"
took "convgru predict"
quiet convgru export "$ckpt" model.onnx
test -s model.onnx
took "convgru export"
echo "wheel check passed in $((SECONDS - start)) s ($(basename "$wheel"))"
