"""Download KTH Actions (Schuldt, Laptev and Caputo, ICPR 2004) from the KTH site into data/kth.

python scripts/download_kth.py [--out data/kth] [--actions walking jogging ...] [--keep-archives]

The six official archives (https://www.csc.kth.se/cvap/actions/, about 1 GB in all) hold the 599
clips person01..25 x 6 actions x 4 scenarios (person13_handclapping_d3 is missing in the original),
160x120 grayscale .avi at 25 frames/s. Each archive is checked before anything is extracted: its
size against the server's Content-Length, the CRC-32 of every member (the zip format's own
checksums), and its clip names and count; then its SHA-256 is written to <out>/SHA256SUMS, and an
archive downloaded again later must match it. Downloads resume from a partial file; files are
written under temporary names and renamed, so an interruption never leaves a partial clip.
Then: python scripts/train.py experiment=kth
"""

import argparse
import hashlib
import re
import shutil
import sys
import urllib.request
import zipfile
from pathlib import Path

from convgru.atomic import atomic_write

BASE_URL = "https://www.csc.kth.se/cvap/actions"
ACTIONS = ("walking", "jogging", "running", "boxing", "handwaving", "handclapping")
CLIP = re.compile(r"^person(\d\d)_([a-z]+)_d([1-4])_uncomp\.avi$")
MISSING = {"person13_handclapping_d3_uncomp.avi"}  # absent from the official archives


def expected_clips(action: str) -> set[str]:
    names = {f"person{p:02d}_{action}_d{d}_uncomp.avi" for p in range(1, 26) for d in range(1, 5)}
    return names - MISSING


def download(url: str, target: Path) -> None:
    """Fetch `url` into `target`, resuming a partial `target`; OSError when the size differs from Content-Length."""
    done = target.stat().st_size if target.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        if done and response.status != 206:  # the server ignored the range: start over
            done = 0
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None else None
        with open(target, "ab" if done else "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    if total is not None and target.stat().st_size != total:
        raise OSError(f"{url}: downloaded {target.stat().st_size} bytes, the server announced {total}; run the "
                      "script again to resume")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_archive(path: Path, action: str) -> list[str]:
    """The clip members of the archive; ValueError naming it when a CRC-32 fails or clips are missing or unknown."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = [n for n in archive.namelist() if not n.endswith("/")]
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path}: not a complete zip archive ({error}); delete it and run the script again") from None
    if bad is not None:
        raise ValueError(f"{path}: member {bad} fails its CRC-32 check (a damaged download); delete the archive and "
                         "run the script again")
    clips = {Path(n).name for n in names if CLIP.match(Path(n).name)}
    if clips != expected_clips(action):
        missing, unknown = sorted(expected_clips(action) - clips), sorted(clips - expected_clips(action))
        raise ValueError(f"{path}: expected the {len(expected_clips(action))} KTH {action} clips, found {len(clips)} "
                         f"(missing {missing[:3]}, unknown {unknown[:3]}); is it the official archive?")
    return [n for n in names if Path(n).name in clips]


def check_sums(sums: Path, name: str, digest: str) -> None:
    """ValueError when SHA256SUMS records another digest for the archive `name`."""
    if not sums.is_file():
        return
    for line in sums.read_text().splitlines():
        recorded, _, file = line.partition("  ")
        if file == name and recorded != digest:
            raise ValueError(f"{name}: SHA-256 {digest} differs from {recorded} recorded in {sums} by an earlier "
                             "download; the archive on the server changed, or this copy is damaged")


def fetch(action: str, out: Path, keep: bool) -> int:
    """Download, check and extract one action's clips into `out`; return the number of clips extracted."""
    wanted = expected_clips(action)
    if all((out / name).is_file() for name in wanted):
        print(f"{action}: {len(wanted)} clips already in {out}")
        return 0
    archive = out / f"{action}.zip"
    if not archive.is_file():
        partial = out / f"{action}.zip.part"
        print(f"{action}: downloading {BASE_URL}/{action}.zip")
        download(f"{BASE_URL}/{action}.zip", partial)
        partial.replace(archive)
    members = check_archive(archive, action)
    digest = sha256(archive)
    sums = out / "SHA256SUMS"
    check_sums(sums, archive.name, digest)
    with zipfile.ZipFile(archive) as zipped:
        for member in members:  # by base name only: nothing is written outside `out`
            with atomic_write(out / Path(member).name, "KTH clip") as tmp, zipped.open(member) as source, \
                    open(tmp, "wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
    lines = [line for line in (sums.read_text().splitlines() if sums.is_file() else [])
             if not line.endswith(f"  {archive.name}")]
    with atomic_write(sums, "checksum list") as tmp:
        Path(tmp).write_text("\n".join([*lines, f"{digest}  {archive.name}"]) + "\n")
    if not keep:
        archive.unlink()
    print(f"{action}: {len(members)} clips extracted into {out}")
    return len(members)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "kth")
    parser.add_argument("--actions", nargs="+", choices=ACTIONS, default=list(ACTIONS))
    parser.add_argument("--keep-archives", action="store_true", help="keep the .zip files after extracting")
    args = parser.parse_args(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        total = sum(fetch(action, args.out, args.keep_archives) for action in args.actions)
    except (OSError, ValueError) as error:  # urllib's URLError is an OSError
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"{total} clips extracted; train with: python scripts/train.py experiment=kth 'data.files=[{args.out}]'")


if __name__ == "__main__":
    main()
