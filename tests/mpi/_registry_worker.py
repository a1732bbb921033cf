"""Run under ``mpiexec -n N`` with a store path: every rank commits to one registry at once.

Every rank registers ``M`` versions of the shared name ``shared`` and of its own name
``rank<r>`` inside a run, then tags its own first version; after a barrier rank 0
checks, from a fresh in-memory index, that the log is contiguous, that each name's
versions are exactly 1..n, that every payload is present exactly once and readable,
that what each rank was told it registered is what the log holds, and that each run
recorded the world size. Exit status 0 when everything matched, 1 otherwise (on
every rank). The host-local index is shared by the ranks (one host), or per rank
when the second argument is ``per-rank``.
"""

from __future__ import annotations

import os
import sys
import traceback

from _verdict import verdict  # tests/mpi is the directory of this script
from mpi4py import MPI

COMM = MPI.COMM_WORLD
RANK, SIZE = COMM.Get_rank(), COMM.Get_size()
M = 5


def payload(rank: int, j: int, name: str) -> bytes:
    return f"rank-{rank}-{j}-{name}".encode()


def register_all(store: str) -> list[tuple[str, int, str]]:
    from engine.registry import Registry

    reg = Registry(store, create=False)
    import pyarrow as pa

    pa.array([0])  # pyarrow imports pandas on its first list conversion: before the race
    got = []
    COMM.Barrier()
    with reg.start_run(f"rank{RANK}", params={"rank": RANK}) as run:
        for j in range(M):
            for name in ("shared", f"rank{RANK}"):
                mv = run.log_model(name, payload(RANK, j, name), metrics={"j": j})
                got.append((name, mv.version, payload(RANK, j, name).decode()))
    reg.tag(f"rank{RANK}:v1", rank=str(RANK))
    reg.close()
    return got


def check(store: str, claims: list) -> list[str]:
    from engine.registry import Registry

    bad = []
    with Registry(store, create=False, index_path=":memory:") as reg:
        head = reg.refresh()
        expected = SIZE * (2 * M + 3)  # versions, run start and end, tag
        if head != expected:
            bad.append(f"head is {head}, expected {expected} commits")
        hist = [h["seq"] for h in reg.history()]
        if hist != list(range(head, 0, -1)):
            bad.append(f"history is not contiguous: {hist[:10]}...")
        for seq in range(1, head + 1):
            if reg.log.read(seq) is None:
                bad.append(f"commit {seq} is missing")
        want = {"shared": sorted(payload(r, j, "shared").decode() for r in range(SIZE) for j in range(M))}
        for r in range(SIZE):
            want[f"rank{r}"] = [payload(r, j, f"rank{r}").decode() for j in range(M)]
        for name, payloads in want.items():
            vs = reg.versions(name)
            if [mv.version for mv in vs] != list(range(1, len(payloads) + 1)):
                bad.append(f"{name}: versions {[mv.version for mv in vs]}, expected 1..{len(payloads)}")
            got = [reg.read_bytes(mv.ref).decode() for mv in vs]
            if sorted(got) != sorted(payloads):
                bad.append(f"{name}: payloads {sorted(got)} != {sorted(payloads)}")
            if name != "shared" and got != payloads:
                bad.append(f"{name}: one writer's versions out of order: {got}")
        for r, rank_claims in enumerate(claims):
            for name, version, p in rank_claims:
                if reg.read_bytes(f"{name}:v{version}").decode() != p:
                    bad.append(f"rank {r} was told {name}:v{version} holds {p!r}; it does not")
            if reg.get(f"rank{r}:v1").tags != {"rank": str(r)}:
                bad.append(f"rank{r}:v1 lost its tag")
        runs = reg.runs()
        if sorted(run["name"] for run in runs) != sorted(f"rank{r}" for r in range(SIZE)):
            bad.append(f"runs: {[run['name'] for run in runs]}")
        for run in runs:
            if run["status"] != "FINISHED" or run["world_size"] != SIZE or \
                    run["info"]["rank"] != run["params"]["rank"]:
                bad.append(f"run {run['name']}: status {run['status']}, world size "
                           f"{run['world_size']}, rank {run['info']['rank']}")
    return bad


def main() -> int:
    store = sys.argv[1]
    if len(sys.argv) > 2 and sys.argv[2] == "per-rank":
        os.environ["MLOPS_CACHE_DIR"] = os.path.join(os.environ.get("MLOPS_CACHE_DIR", store + ".cache"),
                                                     f"rank{RANK}")
    bad, got = [], []
    if RANK == 0:
        from engine.store import Store

        Store(store).close()  # a Registry creates its store only on the first write
    COMM.Barrier()
    try:
        got = register_all(store)
    except Exception:
        bad.append(f"rank {RANK}: {traceback.format_exc()}")
    claims = COMM.gather(got, root=0)
    COMM.Barrier()
    if RANK == 0 and not bad:
        try:
            bad += check(store, claims)
        except Exception:
            bad.append(f"rank 0 check: {traceback.format_exc()}")
    return verdict(COMM, bad)


if __name__ == "__main__":
    sys.exit(main())
