"""examples/snapshot_images.py: real PNG files on disk, snapshotted twice; the printed story
(versions, reuse, diff) is checked, and the PNGs it writes are valid."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "snapshot_images.py"


def test_snapshot_images_stores_only_what_changed(tmp_path):
    images, store = tmp_path / "images", tmp_path / "store"
    r = subprocess.run([sys.executable, str(SCRIPT), str(images), "--make", "60", "--edit", "2",
                        "--store", str(store)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("snapshot images:v1: 60 files")
    assert lines[2].startswith("snapshot images:v2: 61 files")
    assert lines[3] == "diff images:v1 -> images:v2: 1 added, 2 modified, 0 removed, 58 unchanged"
    grew = int(lines[2].split("store grew by ")[1].split(" KiB")[0])
    total = int(lines[0].split(" files, ")[1].split(" KiB")[0])
    assert grew < total / 5  # 3 new images of 61 (plus manifests), not a second copy
    # a PNG it wrote: signature, IHDR 64 x 64 grayscale, IDAT that inflates to 64 rows
    png = next(images.rglob("*.png")).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (64, 64)
    (n,) = struct.unpack(">I", png[33:37])
    assert png[37:41] == b"IDAT" and len(zlib.decompress(png[41:41 + n])) == 64 * 65


def test_snapshot_images_explains_a_missing_directory(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "nope")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "is not a directory" in r.stderr and "--make" in r.stderr
