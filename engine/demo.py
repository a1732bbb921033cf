"""The end-to-end demo behind ``mlops demo`` (``make demo``).

Today: content-defined chunking and deduplication. Later capabilities
(snapshots, training, registry, monitoring) extend the same story.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import numpy as np


def _edit(data: bytes, rng: np.random.Generator) -> tuple[bytes, list[str]]:
    """Insert, overwrite and append a few bytes, the way datasets change."""
    n = len(data)
    ins_at = n // 10
    ow_at = n // 2
    edits = [
        f"inserted 100 bytes at offset {ins_at}",
        f"overwrote 4 KiB at offset {ow_at}",
        "appended 1 MiB",
    ]
    new = (
        data[:ins_at]
        + rng.bytes(100)
        + data[ins_at:ow_at]
        + rng.bytes(4096)
        + data[ow_at + 4096:]
        + rng.bytes(1 << 20)
    )
    return new, edits


def run_demo(size_mib: int = 64, workdir: str | None = None, seed: int = 0) -> int:
    from .chunking import chunk_file, file_id

    if size_mib < 1:
        raise ValueError(f"size_mib must be at least 1, got {size_mib}")
    own = workdir is None
    wd = tempfile.mkdtemp(prefix="mlops-demo-") if own else workdir
    os.makedirs(wd, exist_ok=True)
    try:
        rng = np.random.default_rng(seed)
        path = os.path.join(wd, "data.bin")
        data = rng.bytes(size_mib << 20)
        with open(path, "wb") as f:
            f.write(data)
        print(f"mlops demo: generated {size_mib} MiB of random data in {path}")

        t0 = time.perf_counter()
        before = chunk_file(path)
        dt = time.perf_counter() - t0
        print(f"  chunked: {before.num_rows} chunks, file id {file_id(before).hex()[:16]}…, "
              f"{len(data) / dt / 1e9:.2f} GB/s")

        new, edits = _edit(data, rng)
        with open(path, "wb") as f:
            f.write(new)
        for e in edits:
            print(f"  edit: {e}")

        after = chunk_file(path)
        old_ids = set(before.column("id").to_pylist())
        ids = after.column("id").to_pylist()
        lengths = after.column("length").to_pylist()
        reused = [i in old_ids for i in ids]
        n_reused = sum(reused)
        bytes_new = sum(n for n, r in zip(lengths, reused) if not r)
        print(f"  re-chunked: {after.num_rows} chunks, {n_reused} reused "
              f"({100 * n_reused / after.num_rows:.1f}%), {bytes_new / 1024:.0f} KiB new "
              f"of {len(new) / (1 << 20):.1f} MiB")
        print("mlops demo: done")
        return 0
    finally:
        if own:
            shutil.rmtree(wd, ignore_errors=True)
