"""Snapshot throughput of an encrypted store against a plain one, in the same run.

One run generates a dataset in a work directory (default: a fresh temp dir under /tmp;
the disk under it is the one measured): ``--size`` bytes in files of ``--file-size``,
alternately compressible (CSV-like text rows, which lz4/zstd shrink) and
incompressible (random bytes, stored raw), seeded. Then, ``--repeat`` times and
alternating which goes first, it snapshots the tree into a fresh plain store and into
a fresh encrypted store (AES-256-GCM payloads, keyed BLAKE3 ids; docs/encryption.md),
each with a cold stat cache and after ``os.sync()``. The fastest run of each counts
(as ``bench/timing.py``'s ``best_of``: machines here are noisy; the runs alternate
instead of repeating back to back, so that drift of the machine hits both kinds alike). It prints both throughputs (MB/s
of input), the stored bytes, and the ratio encrypted / plain, whose target is >= 0.8.

Usage: python bench/bench_encrypt.py [--size 512MiB] [--file-size 16MiB] [--repeat 3]
[--workers N] [--workdir DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

MiB = 1 << 20
TARGET = 0.8


def parse_size(text: str) -> int:
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(t[:-1]) * mult[t[-1]]) if t and t[-1] in mult else int(t)


def make_tree(root: Path, size: int, file_size: int, seed: int = 15) -> tuple[int, int]:
    """Files alternately compressible and incompressible; (files, bytes) written."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    words = np.array([b"alpha", b"beta", b"gamma", b"delta", b"epsilon", b"zeta", b"eta"])
    n = total = 0
    while total < size:
        m = min(file_size, size - total)
        if n % 2 == 0:  # compressible: CSV rows with random numbers and a few words
            rows = []
            have = 0
            while have < m:
                k = 4096
                a = rng.integers(0, 10**6, k)
                b = rng.normal(size=k)
                w = words[rng.integers(0, len(words), k)]
                block = b"".join(b"%d,%.6f,%s\n" % t for t in zip(a.tolist(), b.tolist(), w.tolist()))
                rows.append(block)
                have += len(block)
            data = b"".join(rows)[:m]
        else:
            data = rng.bytes(m)
        (root / f"part-{n:05d}.{'csv' if n % 2 == 0 else 'bin'}").write_bytes(data)
        n += 1
        total += m
    return n, total


def du(path: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def snapshot_once(src: Path, work: Path, encrypted: bool, key: bytes, workers) -> tuple[float, int]:
    """Seconds of one snapshot of ``src`` into a fresh store, and the store's bytes."""
    import engine.data as D
    from engine.store import Store

    root = Path(tempfile.mkdtemp(prefix="store-", dir=work))
    os.environ["MLOPS_CACHE_DIR"] = tempfile.mkdtemp(prefix="cache-", dir=work)  # cold
    st = Store(root, encrypt=True, key=key) if encrypted else Store(root)
    os.sync()
    t0 = time.perf_counter()
    D.snapshot(src, "bench", store=st, workers=workers)
    dt = time.perf_counter() - t0
    st.close()
    nbytes = du(root)
    shutil.rmtree(root)
    shutil.rmtree(os.environ["MLOPS_CACHE_DIR"])
    return dt, nbytes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, default=512 * MiB, help="bytes of data (default 512MiB)")
    ap.add_argument("--file-size", type=parse_size, default=16 * MiB, help="bytes per file (default 16MiB)")
    ap.add_argument("--repeat", type=int, default=3, help="snapshots of each kind; the best counts")
    ap.add_argument("--workers", type=int, default=None, help="reader threads (default: the engine's)")
    ap.add_argument("--workdir", default=None, help="where data and stores go (default: a temp dir)")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args(argv)
    from engine.store.crypto import generate_key
    from engine.store.pipeline import warm_up

    work = Path(tempfile.mkdtemp(prefix="bench-encrypt-", dir=args.workdir))
    try:
        files, total = make_tree(work / "src", args.size, args.file_size)
        warm_up()
        key = generate_key()
        runs: dict[str, list[float]] = {"plain": [], "encrypted": []}
        stored: dict[str, int] = {}
        for i in range(args.repeat):
            order = ("plain", "encrypted") if i % 2 == 0 else ("encrypted", "plain")
            for kind in order:
                dt, nbytes = snapshot_once(work / "src", work, kind == "encrypted", key,
                                           args.workers)
                runs[kind].append(dt)
                stored[kind] = nbytes
        best = {k: min(v) for k, v in runs.items()}
        rate = {k: total / best[k] / 1e6 for k in best}
        ratio = rate["encrypted"] / rate["plain"]
        print(f"# bench_encrypt: {files} files, {total / MiB:.0f} MiB (half compressible), "
              f"best of {args.repeat}, {os.cpu_count()} cores")
        for k in ("plain", "encrypted"):
            print(f"{k + ' store':<18} {best[k]:7.3f} s  {rate[k]:8.1f} MB/s  stored "
                  f"{stored[k] / MiB:8.1f} MiB  (runs: {', '.join(f'{t:.3f}' for t in runs[k])})")
        verdict = "meets" if ratio >= TARGET else "MISSES"
        print(f"{'ratio':<18} {ratio:7.3f}   encrypted / plain throughput ({verdict} the "
              f"target >= {TARGET})")
        if args.json:
            Path(args.json).write_text(json.dumps({
                "files": files, "bytes": total, "repeat": args.repeat, "runs_s": runs,
                "best_s": best, "mb_per_s": rate, "stored_bytes": stored, "ratio": ratio,
                "target": TARGET}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
