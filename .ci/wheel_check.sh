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
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
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

python -m venv --without-pip "$work/venv"
site_of() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
site_of python >"$(site_of "$work/venv/bin/python")/convgru-dependencies.pth"
python -m pip --python "$work/venv/bin/python" install --quiet --no-deps --no-index "$wheel"

mkdir "$work/empty"
cd "$work/empty"
export XDG_CACHE_HOME="$work/cache"
unset PROJECT_ROOT PYTHONPATH
PATH="$work/venv/bin:$PATH"
python - <<'EOF'
import sys
from pathlib import Path

import convgru
from convgru.training.paths import checkout

where = Path(convgru.__file__).resolve()
assert where.is_relative_to(Path(sys.prefix).resolve()), f"convgru imported from {where}, not from the wheel"
assert checkout() is None, checkout()
print(f"convgru {convgru.__version__} from {where.parent}")
EOF
test "$(command -v convgru)" = "$work/venv/bin/convgru"
convgru --version
convgru --help | grep -q "experiment .*quickstart"
python -m convgru --version

tiny=(data.train_size=16 data.val_size=4 data.test_size=4 data.batch_size=4 data.image_size=32 data.num_workers=0
      model.net.hidden_sizes=[4,4] model.net.stem_channels=4 trainer.max_steps=2 trainer.limit_val_batches=1
      trainer.limit_test_batches=1 callbacks.prediction_images.num_sequences=1)
convgru train experiment=quickstart "${tiny[@]}" hydra.run.dir=logs/train/wheel >train.out
ckpt=logs/train/wheel/checkpoints/last.ckpt
test -f "$ckpt" && test -f logs/train/wheel/train.log
test -d "$XDG_CACHE_HOME/convgru" && test ! -e data  # caches in the user's cache folder, nothing else here
convgru eval ckpt_path="$ckpt" trainer.limit_test_batches=1 hydra.run.dir=logs/eval/wheel >eval.out
test -f logs/eval/wheel/metrics.json
python -c "import numpy as np; np.save('frames.npy', np.random.default_rng(0).random((2, 5, 1, 32, 32), 'float32'))"
convgru predict "$ckpt" frames.npy forecast.npy
python -c "import numpy as np; assert np.load('forecast.npy').shape == (2, 5, 1, 32, 32)"
convgru export "$ckpt" model.onnx >export.out
test -s model.onnx
echo "wheel check passed in $((SECONDS - start)) s ($(basename "$wheel"))"
