"""Run under ``mpiexec -n N``: each rank's ShardedLoader slices add up to the 1-rank batches.

Every rank builds a ShardedLoader over the same table in the real world
(``engine.dist.init()``), takes its batches of steps 0..S-1 (across epochs), and the
slices are gathered; every rank checks that their concatenation, in rank order, is the
global batch of a 1-rank loader (a ``World`` of size 1 built here, no communication),
sample ids and values, and that every rank's slice has the same size. Then ranks that
build a loader with different seeds must all get DistError. Exit status 0 only when
every rank agrees that everything matched.
"""

from __future__ import annotations

import os
import sys
import traceback

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from _verdict import verdict  # noqa: E402  (tests/mpi is the directory of this script)
from mpi4py import MPI  # noqa: E402

import engine.dist as dist  # noqa: E402

COMM = MPI.COMM_WORLD
RANK, SIZE = COMM.Get_rank(), COMM.Get_size()
N, GBS, SEED, STEPS = 101, 12, 17, 25  # 8 steps per epoch: 25 steps cross 3 epochs


def table() -> pa.Table:
    return pa.table({"x": np.arange(N, dtype=np.float64) * 1.5, "y": np.arange(N) % 7})


def run() -> list[str]:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    bad = []
    world = dist.init(timeout=60)
    loader = dist.ShardedLoader(table(), GBS, seed=SEED)
    one = dist.ShardedLoader(table(), GBS, seed=SEED,
                             world=dist.World(0, 1, 0, 1, 0, 1, ("h",), None, 60.0))
    mine = [(step, np.asarray(b["_index"]).tolist(), np.asarray(b["x"]).tolist())
            for step, b in loader.iterate(0, steps=STEPS)]
    every = dist.allgather_object(mine, "slices", world)
    for step in range(STEPS):
        ids = [i for r in range(SIZE) for i in every[r][step][1]]
        xs = [x for r in range(SIZE) for x in every[r][step][2]]
        want = one.global_indices(step).tolist()
        if ids != want:
            bad.append(f"rank {RANK}: step {step}: ranks' ids {ids} != 1-rank batch {want}")
        if xs != [1.5 * i for i in want]:
            bad.append(f"rank {RANK}: step {step}: values do not follow the ids")
        if {len(every[r][step][1]) for r in range(SIZE)} != {GBS // SIZE}:
            bad.append(f"rank {RANK}: step {step}: unequal slices")
    epoch0 = [i for r in range(SIZE) for s in range(8) for i in every[r][s][1]]
    if len(set(epoch0)) != 96:
        bad.append(f"rank {RANK}: epoch 0 saw {len(set(epoch0))} distinct samples, not 96")
    try:
        dist.ShardedLoader(table(), GBS, seed=RANK)
        bad.append(f"rank {RANK}: loaders with different seeds on the ranks did not raise")
    except dist.DistError as exc:
        if "different settings" not in str(exc) or "rank 1: {'seed': 1" not in str(exc):
            bad.append(f"rank {RANK}: unclear error for different seeds: {exc}")
    return bad


def main() -> int:
    try:
        bad = run()
    except Exception:
        bad = [f"rank {RANK} raised:\n{traceback.format_exc()}"]
    return verdict(COMM, bad)


if __name__ == "__main__":
    sys.exit(main())
