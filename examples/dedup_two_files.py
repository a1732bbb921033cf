"""Chunk two versions of a file and count the chunks they share.

Run: python examples/dedup_two_files.py OLD NEW
With no arguments it makes two 32 MiB versions in a temporary directory.
"""

import os
import sys
import tempfile

import numpy as np

import engine


def shared_chunks(old: str, new: str) -> None:
    a = engine.chunk_file(old)
    b = engine.chunk_file(new)
    old_ids = set(a.column("id").to_pylist())
    lengths = b.column("length").to_pylist()
    reused = [i in old_ids for i in b.column("id").to_pylist()]
    new_bytes = sum(n for n, r in zip(lengths, reused) if not r)
    print(f"{old}: {a.num_rows} chunks, file id {engine.file_id(a).hex()[:16]}")
    print(f"{new}: {b.num_rows} chunks, file id {engine.file_id(b).hex()[:16]}")
    print(f"shared: {sum(reused)}/{b.num_rows} chunks; {new_bytes} of {sum(lengths)} bytes are new")


def main() -> None:
    if len(sys.argv) == 3:
        shared_chunks(sys.argv[1], sys.argv[2])
        return
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        data = rng.bytes(32 << 20)
        old, new = os.path.join(d, "v1.bin"), os.path.join(d, "v2.bin")
        with open(old, "wb") as f:
            f.write(data)
        with open(new, "wb") as f:  # 10 bytes inserted near the start
            f.write(data[:5000] + b"0123456789" + data[5000:])
        shared_chunks(old, new)


if __name__ == "__main__":
    main()
