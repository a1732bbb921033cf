"""Version a directory of images: snapshot it, change a few images, snapshot again.

The second snapshot stores only what changed: each file is cut into content-defined
chunks, and the chunks the store already holds are not written again. The script prints
both versions, what the store grew by, how many chunks were reused, and the diff.

Usage::

    python examples/snapshot_images.py DIR [--store STORE] [--name images]
    python examples/snapshot_images.py DIR --make 200 --edit 3   # make PNGs first, then edit

``DIR`` is any directory of images (or of anything); ``--make N`` first writes N synthetic
64 x 64 grayscale PNGs into it (standard library only), and ``--edit K`` rewrites K of them
and adds one after the first snapshot, then snapshots again. The store defaults to a new
temporary directory.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

from engine import data
from engine.store import Store


def write_png(path: Path, pixels: np.ndarray) -> None:
    """A grayscale 8-bit PNG of ``pixels`` (h x w uint8), with zlib from the standard library."""
    h, w = pixels.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))  # filter 0 per row
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    path.write_bytes(png)


def image(seed: int, size: int = 64) -> np.ndarray:
    """A textured image: a gradient, a few discs and noise (compresses like a photo, a bit)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    img = (x * rng.uniform(0.5, 2) + y * rng.uniform(0.5, 2)).astype(np.float64)
    for _ in range(3):
        cx, cy, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(4, 16)]
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] += rng.uniform(40, 120)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_images(root: Path, n: int, start: int = 0) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        p = root / f"class{i % 10}" / f"img{i:05d}.png"
        p.parent.mkdir(exist_ok=True)
        write_png(p, image(i))
        paths.append(p)
    return paths


def store_bytes(root: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Snapshot a directory of images, twice, and show "
                                             "what the second snapshot reused.")
    ap.add_argument("dir", help="the directory of images")
    ap.add_argument("--store", help="the store (default: a new temporary directory)")
    ap.add_argument("--name", default="images", help="dataset name (default: images)")
    ap.add_argument("--make", type=int, default=0, metavar="N",
                    help="first write N synthetic PNG images into DIR")
    ap.add_argument("--edit", type=int, default=0, metavar="K",
                    help="after the first snapshot, rewrite K images, add one, snapshot again")
    args = ap.parse_args(argv)
    if args.make < 0 or args.edit < 0:
        ap.error("--make and --edit take a number >= 0")
    root = Path(args.dir)
    if args.make:
        make_images(root, args.make)
    if not root.is_dir():
        ap.error(f"{root} is not a directory (give --make N to create one with N images)")
    store_dir = args.store or os.path.join(tempfile.mkdtemp(prefix="mlops-images-"), "store")
    st = Store(store_dir)
    v1 = data.snapshot(root, name=args.name, message="images", store=st, progress=False)
    size1 = store_bytes(store_dir)
    print(f"snapshot {v1.ref}: {v1.files} files, {v1.bytes / 1024:.0f} KiB; "
          f"store {size1 / 1024:.0f} KiB at {store_dir}")
    if not args.edit:
        return 0
    images = sorted(root.rglob("*.png"))
    if len(images) < args.edit:
        ap.error(f"--edit {args.edit}: {root} has only {len(images)} PNG images")
    for k, p in enumerate(images[:args.edit]):
        write_png(p, image(100_000 + k))
    make_images(root, 1, start=len(images) + 1_000_000)
    v2 = data.snapshot(root, name=args.name, message=f"{args.edit} images edited, 1 added",
                       store=st, progress=False)
    size2 = store_bytes(store_dir)
    d = data.diff(v1.ref, v2.ref, store=st, progress=False)
    print(f"edited {args.edit} images, added 1")
    print(f"snapshot {v2.ref}: {v2.files} files, {v2.bytes / 1024:.0f} KiB; store grew by "
          f"{(size2 - size1) / 1024:.0f} KiB; chunks reused {d.chunks_reused} of {d.chunks_total}")
    print(f"diff {v1.ref} -> {v2.ref}: {len(d.added)} added, {len(d.modified)} modified, "
          f"{len(d.removed)} removed, {d.unchanged} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
