"""Run under ``mpiexec -n N``: ``engine.dist.init()`` and the world's collectives on real ranks.

``python _dist_world_worker.py MODE OUT_DIR [ARGS]``; every mode that finishes prints
``N ranks: OK`` (or ``FAILED``) through :func:`_verdict.verdict`, except the modes that
end the job on purpose (``timeout``, ``elsewhere``, ``raise``), which leave one JSON file
per rank in ``OUT_DIR`` for the test to check.

Modes
-----
basic
    rank, size, nodes, local ranks on one host; allreduce (exact, against the sum of every
    rank's array computed here), iallreduce, broadcast of arrays and objects,
    allgather_object of objects of different sizes, barrier; init() twice raises.
nodes PER_NODE
    launched as ``mpiexec -n P -env SLURM_NODEID 0 ... : -n P -env SLURM_NODEID 1 ...``
    with ``MPIR_CVAR_NOLOCAL=1``: every rank checks node, nodes, local_rank, local_size
    and hosts, and that the allreduce over the (non-shared-memory) path is exact.
timeout
    rank 2 sleeps instead of joining a barrier (timeout 2 s): ranks 0 and 1 record the
    CollectiveTimeout and how long it took, then raise it uncaught (the abort hook ends
    the job).
elsewhere
    rank 2 waits for a message that never comes while ranks 0 and 1 wait in a barrier;
    every rank records its CollectiveTimeout; then rank 0 raises (abort).
raise
    rank 1 raises ValueError while rank 0 waits in a barrier with a long timeout.
noinit
    rank 1 never calls init() (it sleeps); rank 0's init(timeout=2) records its
    CollectiveTimeout and raises it (the abort hook, installed first, ends the job).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback

import numpy as np
from _verdict import verdict  # tests/mpi is the directory of this script
from mpi4py import MPI

import engine.dist as dist
from engine.dist import CollectiveTimeout, DistError

COMM = MPI.COMM_WORLD
RANK, SIZE = COMM.Get_rank(), COMM.Get_size()


def record(out_dir: str, **fields) -> None:
    with open(os.path.join(out_dir, f"rank{RANK}.json"), "w") as f:
        json.dump(fields, f)


def rank_array(r: int) -> np.ndarray:
    """Dyadic values (multiples of 2**-10 below 2**20): sums of a few are exact in float64
    whatever order MPI adds them in, so the allreduce must match to the bit."""
    return np.random.default_rng(100 + r).integers(-2**30, 2**30, 1000) / 1024.0


def check_sums(world, bad: list[str]) -> None:
    """allreduce_ of float64 and int64 against the sum computed from every rank's input."""
    want = sum(rank_array(r) for r in range(SIZE))
    got = dist.allreduce_(rank_array(RANK), "allreduce f64", world)
    if not np.array_equal(got, want):
        bad.append(f"rank {RANK}: float allreduce off by {np.abs(got - want).max()}")
    ints = np.arange(50, dtype=np.int64) * (RANK + 1)
    want_i = np.arange(50, dtype=np.int64) * sum(r + 1 for r in range(SIZE))
    if not np.array_equal(dist.allreduce_(ints, world=world), want_i):
        bad.append(f"rank {RANK}: int allreduce {ints[:4]} != {want_i[:4]}")
    # a large buffer (several MPI segments, the rendezvous path between nodes)
    big = np.full(300_000, float(RANK + 1), np.float32)
    dist.allreduce_(big, "allreduce large", world)
    if not np.all(big == SIZE * (SIZE + 1) / 2):
        bad.append(f"rank {RANK}: large allreduce gave {np.unique(big)[:5]}")


def mode_basic(out_dir: str) -> list[str]:
    bad = []
    world = dist.init(timeout=30)
    host = socket.gethostname()
    want = (RANK, SIZE, RANK, SIZE, 0, 1, (host,), "pmi")
    got = (world.rank, world.size, world.local_rank, world.local_size, world.node,
           world.nodes, world.hosts, world.launcher)
    if got != want:
        bad.append(f"rank {RANK}: world {got} != {want}")
    if dist.get_world() is not world or not dist.is_initialized():
        bad.append(f"rank {RANK}: get_world() is not the initialized world")
    try:
        dist.init()
        bad.append(f"rank {RANK}: a second init() did not raise")
    except DistError as exc:
        if "twice" not in str(exc):
            bad.append(f"rank {RANK}: second init(): {exc}")
    from engine.registry.runs import run_coordinator

    if run_coordinator() is None:
        bad.append(f"rank {RANK}: init() did not install the registry's run coordinator")
    check_sums(world, bad)
    # iallreduce + wait on a list of requests
    a, b = np.full(7, RANK + 1.0), np.full(3, 2.0 * RANK)
    dist.wait([dist.iallreduce(a, world), dist.iallreduce(b, world)], "two buckets", world)
    tri = SIZE * (SIZE + 1) / 2
    if not (np.all(a == tri) and np.all(b == 2 * (tri - SIZE))):
        bad.append(f"rank {RANK}: iallreduce gave {a[0]}, {b[0]}")
    # objects of different sizes, one of them empty-ish, gathered in rank order
    objs = dist.allgather_object({"rank": RANK, "blob": b"x" * (RANK * 70001)}, world=world)
    if [(o["rank"], len(o["blob"])) for o in objs] != [(r, r * 70001) for r in range(SIZE)]:
        bad.append(f"rank {RANK}: allgather_object gave {[(o['rank'], len(o['blob'])) for o in objs]}")
    root = SIZE - 1
    obj = dist.broadcast_object({"from": RANK, "v": list(range(RANK * 10))}, root=root, world=world)
    if obj != {"from": root, "v": list(range(root * 10))}:
        bad.append(f"rank {RANK}: broadcast_object from {root} gave {obj}")
    arr = np.arange(5.0) + (100 if RANK == 1 else 0)
    dist.broadcast_array_(arr, root=1, world=world)
    if not np.array_equal(arr, np.arange(5.0) + 100):
        bad.append(f"rank {RANK}: broadcast_array_ from 1 gave {arr}")
    dist.barrier("end", world)
    if world._tracker.seq < 8 or world._tracker.what is not None:
        bad.append(f"rank {RANK}: tracker {world._tracker.seq}, {world._tracker.what}")
    return bad


def mode_nodes(out_dir: str, per_node: int) -> list[str]:
    bad = []
    world = dist.init(timeout=30)
    nodes = SIZE // per_node
    node_id = int(os.environ["SLURM_NODEID"])
    if node_id != RANK // per_node:
        bad.append(f"rank {RANK}: launched with SLURM_NODEID={node_id}, expected {RANK // per_node}")
    want = dict(node=RANK // per_node, nodes=nodes, local_rank=RANK % per_node,
                local_size=per_node, hosts=(socket.gethostname(),) * nodes)
    got = {k: getattr(world, k) for k in want}
    if got != want:
        bad.append(f"rank {RANK}: {got} != {want}")
    if os.environ.get("MPIR_CVAR_NOLOCAL") != "1":
        bad.append(f"rank {RANK}: MPIR_CVAR_NOLOCAL is not 1: shared memory is not disabled")
    # the node's communicator holds exactly the ranks of this node
    members = world.local_comm.allgather(RANK)
    if members != [world.node * per_node + i for i in range(per_node)]:
        bad.append(f"rank {RANK}: local_comm holds ranks {members}")
    check_sums(world, bad)
    return bad


def mode_timeout(out_dir: str) -> None:
    world = dist.init(timeout=2)
    pair = COMM.Split(0 if RANK < 2 else 1, RANK)  # ranks 0 and 1, to agree they are done
    dist.barrier("warm-up", world)
    if RANK == 2:
        time.sleep(60)  # the abort hook of rank 0 or 1 ends this sleep
        return
    t0 = time.monotonic()
    try:
        dist.barrier("step barrier", world)
    except CollectiveTimeout as exc:
        record(out_dir, message=str(exc), missing=list(exc.missing), what=exc.what,
               seconds=time.monotonic() - t0)
        pair.Barrier()  # both ranks have written their record: now abort
        raise
    record(out_dir, message="no timeout", missing=[], what="", seconds=time.monotonic() - t0)
    pair.Barrier()


def mode_elsewhere(out_dir: str) -> None:
    world = dist.init(timeout=2, abort_on_error=False)
    dist.barrier("warm-up", world)
    t0 = time.monotonic()
    try:
        if RANK == 2:
            buf = np.zeros(1)
            dist.wait(world.comm.Irecv(buf, source=0, tag=99), "receive from rank 0", world)
        else:
            dist.barrier("step barrier", world)
        record(out_dir, message="no timeout", missing=[], what="", seconds=0.0)
    except CollectiveTimeout as exc:
        record(out_dir, message=str(exc), missing=list(exc.missing), what=exc.what,
               seconds=time.monotonic() - t0)
    COMM.Barrier()  # every record is written
    if RANK == 0:
        COMM.Abort(3)  # the barrier and the receive can never complete: end the job
    time.sleep(60)


def mode_raise(out_dir: str) -> None:
    world = dist.init(timeout=100)
    dist.barrier("warm-up", world)
    if RANK == 1:
        raise ValueError("boom on purpose")
    dist.barrier("step barrier", world)  # never completes: rank 1's abort ends it


def mode_noinit(out_dir: str) -> None:
    if RANK == 1:
        time.sleep(60)  # rank 0's abort ends this sleep
        return
    t0 = time.monotonic()
    try:
        dist.init(timeout=2)
    except CollectiveTimeout as exc:
        record(out_dir, message=str(exc), missing=list(exc.missing), what=exc.what,
               seconds=time.monotonic() - t0)
        raise
    record(out_dir, message="no timeout", missing=[], what="", seconds=time.monotonic() - t0)


def main() -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mode, out_dir = sys.argv[1], sys.argv[2]
    ending = {"timeout": mode_timeout, "elsewhere": mode_elsewhere, "raise": mode_raise,
              "noinit": mode_noinit}
    if mode in ending:
        ending[mode](out_dir)
        return 0
    try:
        bad = mode_basic(out_dir) if mode == "basic" else mode_nodes(out_dir, int(sys.argv[3]))
    except Exception:
        bad = [f"rank {RANK} raised:\n{traceback.format_exc()}"]
    return verdict(COMM, bad)


if __name__ == "__main__":
    sys.exit(main())
