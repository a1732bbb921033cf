"""Chunk-index lookups at scale: batched binary search over millions of chunk ids.

Usage: python bench/bench_index.py [--chunks 4000000] [--queries 1000000]
Prints the time to load (sort) the index and to look up a batch of ids (half present),
and the same for the peer a plain implementation would use, a Python ``dict`` from id
bytes to location (built from the same ids, queried with the same ids), with the memory
each holds and the ratios.
"""

from __future__ import annotations

import argparse
import sys
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
    mem = sum(a.nbytes for a in (idx.entries, idx.pack_no, idx.prefix))

    # the peer: a dict from the id's bytes to its position (what `pos` holds)
    keys = [bytes(r) for r in ids]  # the bytes objects a reader would hold anyway
    t0 = time.perf_counter()
    table = {k: i for i, k in enumerate(keys)}
    t_dict_build = time.perf_counter() - t0
    qk = [bytes(r) for r in q]
    t0 = time.perf_counter()
    got = [table.get(k, -1) for k in qk]
    t_dict_look = time.perf_counter() - t0
    assert sum(g >= 0 for g in got) == hits
    dict_mem = (sys.getsizeof(table) + sum(map(sys.getsizeof, keys[:1000])) * len(keys) // 1000
                + sys.getsizeof(10 ** 6) * len(keys))

    print(f"# bench_index: {n:,} chunk ids in {args.packs} packs; peer: a Python dict")
    print(f"{'':<34} {'this index':>12} {'dict':>12} {'ratio':>7}")
    print(f"{'build':<34} {t_build:10.3f} s {t_dict_build:10.3f} s "
          f"{t_build / t_dict_build:7.2f}")
    print(f"{'look up ' + format(args.queries, ',') + ' ids (half present)':<34} "
          f"{t_look:10.3f} s {t_dict_look:10.3f} s {t_look / t_dict_look:7.2f}  "
          f"({t_look / args.queries * 1e9:.0f} vs {t_dict_look / args.queries * 1e9:.0f} ns/id)")
    print(f"{'memory':<34} {mem / 2**20:8.0f} MiB {dict_mem / 2**20:8.0f} MiB "
          f"{mem / dict_mem:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
