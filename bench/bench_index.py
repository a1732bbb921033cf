"""Chunk-index lookups at scale: batched binary search over millions of chunk ids.

Usage: python bench/bench_index.py [--chunks 4000000] [--queries 1000000]
Prints the time to load (sort) the index and to look up a batch of ids (half present).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from engine.store.pack import ENTRY_DTYPE
from engine.store.store import ChunkIndex


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=4_000_000, help="ids in the index (default 4M)")
    ap.add_argument("--queries", type=int, default=1_000_000, help="ids looked up in one batch")
    ap.add_argument("--packs", type=int, default=1000, help="packs the ids are spread over")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 256, (args.chunks, 32), dtype=np.uint8)
    idx = ChunkIndex()
    per = -(-args.chunks // args.packs)
    for k in range(0, args.chunks, per):
        e = np.zeros(min(per, args.chunks - k), ENTRY_DTYPE)
        e["id"] = ids[k:k + len(e)]
        idx.add(f"p{k}", e)
    t0 = time.perf_counter()
    n = len(idx)  # builds the sorted array
    t_build = time.perf_counter() - t0
    q = np.concatenate([ids[rng.integers(0, args.chunks, args.queries // 2)],
                        rng.integers(0, 256, (args.queries - args.queries // 2, 32), dtype=np.uint8)])
    t0 = time.perf_counter()
    pos = idx.locate(q)
    t_look = time.perf_counter() - t0
    hits = int((pos >= 0).sum())
    assert hits == args.queries // 2, hits
    print(f"# bench_index: {n:,} chunk ids in {args.packs} packs")
    print(f"{'build sorted index':<34} {t_build:8.3f} s")
    print(f"{'look up ' + format(args.queries, ',') + ' ids':<34} {t_look:8.3f} s "
          f"({t_look / args.queries * 1e9:.0f} ns per id, {hits:,} found)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
