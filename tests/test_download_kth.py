"""scripts/download_kth.py without the internet: an archive is checked (CRC-32 of every member, the
clip names) before its clips are extracted, and its SHA-256 recorded and checked on later downloads."""

import importlib.util
import zipfile

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("download_kth", ROOT / "scripts" / "download_kth.py")
download_kth = importlib.util.module_from_spec(spec)
spec.loader.exec_module(download_kth)


def archive(path, names, payload=b"RIFF clip"):
    with zipfile.ZipFile(path, "w") as zipped:
        for name in names:
            zipped.writestr(name, payload + name.encode())


def served(source):
    """A stand-in for download(): copies the local archive `source`."""
    return lambda url, target: target.write_bytes(source.read_bytes())


def test_archive_is_checked_extracted_and_recorded(tmp_path, monkeypatch):
    source = tmp_path / "boxing.zip"
    archive(source, sorted(download_kth.expected_clips("boxing")))
    out = tmp_path / "kth"
    out.mkdir()
    monkeypatch.setattr(download_kth, "download", served(source))
    assert download_kth.fetch("boxing", out, keep=False) == 100
    assert (out / "person25_boxing_d4_uncomp.avi").read_bytes() == b"RIFF clipperson25_boxing_d4_uncomp.avi"
    assert (out / "SHA256SUMS").read_text() == f"{download_kth.sha256(source)}  boxing.zip\n"
    assert not (out / "boxing.zip").exists()
    assert download_kth.fetch("boxing", out, keep=False) == 0  # all there: nothing downloaded
    (out / "person01_boxing_d1_uncomp.avi").unlink()
    archive(source, sorted(download_kth.expected_clips("boxing")), b"another clip")
    with pytest.raises(ValueError, match="boxing.zip: SHA-256 .* differs from .* recorded in"):
        download_kth.fetch("boxing", out, keep=False)


def test_damaged_or_foreign_archives_are_refused(tmp_path):
    names = sorted(download_kth.expected_clips("handclapping"))
    assert len(names) == 99  # person13_handclapping_d3 is missing from the official archive
    archive(tmp_path / "short.zip", names[:-1])
    with pytest.raises(ValueError, match=r"expected the 99 KTH handclapping clips, found 98"):
        download_kth.check_archive(tmp_path / "short.zip", "handclapping")
    archive(tmp_path / "crc.zip", names)
    data = bytearray((tmp_path / "crc.zip").read_bytes())
    data[30 + len(names[0]) + 2] ^= 0xFF  # inside the first member's data (after its 30-byte header and name)
    (tmp_path / "crc.zip").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="fails its CRC-32 check"):
        download_kth.check_archive(tmp_path / "crc.zip", "handclapping")
