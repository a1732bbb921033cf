"""What a registration pays for its write lease (issue 15): registrations with and without.

Every snapshot and registration holds a write lease (``engine/store/lease.py``) so that
gc never runs beside it; the lease is a small file created without fsync and removed
afterwards, plus a look for a gc lock and the gc epoch. This bench registers
``--versions`` artifacts of ``--size`` random bytes into fresh stores, ``--rounds``
times alternating with the lease and with it replaced by a no-op (in this process
only), and prints the median registration time of each and their ratio (the cost of
the lease; it should be a few percent at most of a durable registration).

Usage: python bench/bench_lease.py [--versions 30] [--size 1MiB] [--rounds 6] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import time

import engine.registry.registry as registry_module
from engine.cli.args import parse_size
from engine.registry import Registry


def _round(workdir: str, versions: int, size: int) -> float:
    d = tempfile.mkdtemp(dir=workdir)
    try:
        reg = Registry(os.path.join(d, "store"), index_path=":memory:")
        reg.register("m", os.urandom(size))  # the store, its directories and roots
        times = []
        for _ in range(versions):
            payload = os.urandom(size)
            t = time.perf_counter()
            reg.register("m", payload)
            times.append(time.perf_counter() - t)
        return statistics.median(times)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--versions", type=int, default=30, help="registrations per round (30)")
    ap.add_argument("--size", type=parse_size, default=1 << 20, help="bytes per artifact (1MiB)")
    ap.add_argument("--rounds", type=int, default=6, help="rounds of each kind, alternating (6)")
    ap.add_argument("--workdir", default=None, help="where the stores go (default: a temp dir)")
    args = ap.parse_args(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix="mlops-bench-lease-")
    real = registry_module.write_lease
    medians: dict[str, list[float]] = {"lease": [], "no lease": []}
    try:
        for r in range(args.rounds):
            for kind in (("lease", "no lease") if r % 2 else ("no lease", "lease")):
                registry_module.write_lease = (real if kind == "lease" else
                                               (lambda *a, **k: contextlib.nullcontext()))
                medians[kind].append(_round(workdir, args.versions, args.size))
    finally:
        registry_module.write_lease = real
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    a, b = statistics.median(medians["lease"]), statistics.median(medians["no lease"])
    print(f"register with lease:    {a * 1e3:.2f} ms (median of {args.rounds} round medians)")
    print(f"register without lease: {b * 1e3:.2f} ms")
    print(f"lease / no lease: {a / b:.3f}x  ({(a - b) * 1e6:+.0f} us per registration)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
