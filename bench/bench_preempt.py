"""What Slurm preemption costs a training step: ``Preemption.agreed()`` beside a raw MPI
allreduce of the same one integer, in the same run.

Every step, ranks under a ``Checkpointer`` with preemption agree whether any of them got
the warning signal (engine.dist.preempt): one 1-element allreduce through engine.dist's
timed collectives (polling with a deadline). The physical floor is mpi4py's blocking
``Allreduce`` of one int64 on the same communicator.

Usage: ``mlops run -n 2 bench/bench_preempt.py [--steps 20000]`` (``make bench-dist`` runs it).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import engine.dist as dist
from engine.dist.preempt import Preemption


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20_000, help="timed calls (20000)")
    a = ap.parse_args()
    world = dist.init()
    p = Preemption(["USR2"], requeue=False).install()
    for _ in range(1000):  # warm up both paths
        p.agreed(0)
    dist.barrier()
    t = time.perf_counter()
    for i in range(a.steps):
        p.agreed(i)
    agreed = (time.perf_counter() - t) / a.steps
    raw = float("nan")
    if world.size > 1:
        from mpi4py import MPI

        buf = np.zeros(1, np.int64)
        dist.barrier()
        t = time.perf_counter()
        for _ in range(a.steps):
            MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, buf)
        raw = (time.perf_counter() - t) / a.steps
    p.uninstall()
    if world.rank == 0:
        print(f"# bench_preempt: {world.size} rank(s), {a.steps:,} steps")
        print(f"Preemption.agreed() per step: {agreed * 1e6:.2f} us")
        if world.size > 1:
            print(f"raw MPI Allreduce (1 int64):  {raw * 1e6:.2f} us   ratio {agreed / raw:.1f}x")
        else:
            print("one rank: no MPI, agreed() reads the local flag")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
