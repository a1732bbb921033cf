"""The end of every MPI worker: gather each rank's problems, print them on rank 0 with
``N ranks: OK`` or ``FAILED``, and give every rank the same exit code."""

from __future__ import annotations


def verdict(comm, bad: list[str]) -> int:
    rank, size = comm.Get_rank(), comm.Get_size()
    everything = comm.gather(bad, root=0)
    ok = comm.bcast(not any(everything) if rank == 0 else None, root=0)
    if rank == 0:
        for problems in everything:
            for p in problems:
                print("MISMATCH:", p, flush=True)
        print(f"{size} ranks:", "OK" if ok else "FAILED", flush=True)
    return 0 if ok else 1
