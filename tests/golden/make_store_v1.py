"""Regenerate the golden store fixture ``tests/golden/store_v1`` (format_version 1).

Run from the repository root: ``python tests/golden/make_store_v1.py``. The fixture
is committed: ``tests/test_formats_golden.py`` checks that every later version
of mlops-engine still reads it, bit for bit. Regenerate it only together with
a deliberate format change (and a new format_version).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
STORE = os.path.join(HERE, "store_v1")


def tree_v1(root: str) -> None:
    """Files of version 1: random (stored raw), repetitive (compressed), nested, a link."""
    import numpy as np

    rng = np.random.default_rng(20261126)
    os.makedirs(os.path.join(root, "nested", "dir"), exist_ok=True)
    with open(os.path.join(root, "random.bin"), "wb") as f:
        f.write(rng.bytes(6000))
    with open(os.path.join(root, "text.csv"), "w") as f:
        f.write("".join(f"{i},{i * i},row {i % 7}\n" for i in range(400)))
    with open(os.path.join(root, "nested", "dir", "small.txt"), "w") as f:
        f.write("hello golden store\n")
    with open(os.path.join(root, "empty"), "wb"):
        pass
    with open(os.path.join(root, "tool.sh"), "w") as f:
        f.write("#!/bin/sh\necho golden\n")
    os.chmod(os.path.join(root, "tool.sh"), 0o755)
    for p in ("random.bin", "text.csv", "nested/dir/small.txt", "empty"):
        os.chmod(os.path.join(root, p), 0o644)
    os.symlink("text.csv", os.path.join(root, "link.csv"))


def tree_v2(root: str) -> None:
    """Version 2: one insert in text.csv, small.txt renamed, a file added."""
    with open(os.path.join(root, "text.csv")) as f:
        text = f.read()
    with open(os.path.join(root, "text.csv"), "w") as f:
        f.write(text[:1000] + "inserted,row,here\n" + text[1000:])
    os.rename(os.path.join(root, "nested", "dir", "small.txt"), os.path.join(root, "nested", "moved.txt"))
    with open(os.path.join(root, "added.txt"), "w") as f:
        f.write("added in v2\n")
    for p in ("text.csv", "nested/moved.txt", "added.txt"):
        os.chmod(os.path.join(root, p), 0o644)


def main() -> int:
    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
    os.environ["MLOPS_CACHE_DIR"] = tempfile.mkdtemp()
    import engine.data as D
    from engine.kernels import CdcParams
    from engine.store import Store

    shutil.rmtree(STORE, ignore_errors=True)
    Store(STORE, params=CdcParams(avg_size=256, min_size=64, max_size=1024), pack_max_bytes=8192)
    with tempfile.TemporaryDirectory() as src:
        tree_v1(src)
        v1 = D.snapshot(src, "golden", "version one", store=STORE, workers=1)
        tree_v2(src)
        v2 = D.snapshot(src, "golden", "version two", store=STORE, workers=1)
    print(v1.ref, v1.id)
    print(v2.ref, v2.id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
