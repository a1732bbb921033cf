"""MPI for :func:`engine.monitor.profile.profile`: collective checks, the tree reduction of profiles.

Additive parts are merged over ranks in a binomial tree, in groups of columns
of about ``MPI_MESSAGE_BYTES`` per message, then broadcast; numeric edges that
no reference fixes come from the merged samples, after which histograms are
counted locally and summed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .profile_base import MPI_MESSAGE_BYTES, MPI_TAG, InvalidColumn
from .profile_format import Profile
from .profile_numeric import NumericColumn, hist_unsorted, quantile_edges

# ---------------------------------------------------------------------------
# MPI
# ---------------------------------------------------------------------------


def check_comm(comm):
    """Raise TypeError unless ``comm`` looks like an mpi4py communicator."""
    for attr in ("Get_rank", "Get_size", "allgather", "bcast", "send", "recv", "allreduce"):
        if not hasattr(comm, attr):
            raise TypeError("comm must be an mpi4py communicator (e.g. mpi4py.MPI.COMM_WORLD), "
                            f"got {type(comm).__name__}")


def collective_check(comm, err, names):
    """Raise on every rank when any rank failed, or when ranks hold different columns."""
    infos = comm.allgather((None if err is None else f"{type(err).__name__}: {err}", names))
    if err is not None:
        raise err
    for r, (e, _) in enumerate(infos):
        if e is not None:
            raise ValueError(f"profile failed on rank {r}: {e}")
    for r, (_, nm) in enumerate(infos):
        if nm != names:
            raise ValueError(f"ranks hold different columns: rank {comm.Get_rank()} has {names}, "
                             f"rank {r} has {nm}")


def agree_invalid(out: dict, cols, comm):
    """A column that some rank could not profile is invalid on every rank (its first reason)."""
    local = {n: c.reason for n, c in out.items() if isinstance(c, InvalidColumn)}
    reasons: dict = {}
    for r, g in enumerate(comm.allgather(local)):
        for n, why in g.items():
            reasons.setdefault(n, f"rank {r}: {why}")
    for c in cols:
        if c.name in reasons and not isinstance(out[c.name], InvalidColumn):
            out[c.name] = InvalidColumn(c.name, c.dtype, c.n - c.nulls, c.nulls, reasons[c.name])


@dataclass
class _Failure:
    message: str


def _safe_merge(a, b, merge):
    if isinstance(a, _Failure):
        return a
    if isinstance(b, _Failure):
        return b
    try:
        return merge(a, b)
    except (TypeError, ValueError) as exc:
        return _Failure(str(exc))


def _reduce_bcast(obj, comm, merge):
    """Binomial-tree reduction of ``obj`` with ``merge`` (rank order kept), then a broadcast.

    A failed merge travels up the tree instead of a result, so that every rank
    raises it rather than waiting for a message that never comes.
    """
    rank, size = comm.Get_rank(), comm.Get_size()
    step = 1
    while step < size:
        if rank % (2 * step):
            comm.send(obj, dest=rank - step, tag=MPI_TAG)
            obj = None
            break
        if rank + step < size:
            obj = _safe_merge(obj, comm.recv(source=rank + step, tag=MPI_TAG), merge)
        step *= 2
    out = comm.bcast(obj, root=0)
    if isinstance(out, _Failure):
        raise ValueError(f"merging the ranks' profiles failed: {out.message}")
    return out


def _payload(c) -> int:
    return 1024 + sum(a.nbytes for a in c.stored_arrays().values())


def allreduce_profile(prof: Profile, comm) -> Profile:
    """Merge the ranks' profiles, in column groups of about MPI_MESSAGE_BYTES per message."""
    groups, cur, size = [], [], 0
    for name, c in prof.columns.items():
        if cur and size + _payload(c) > MPI_MESSAGE_BYTES:
            groups.append(cur)
            cur, size = [], 0
        cur.append(name)
        size += _payload(c)
    groups.append(cur)
    cols = {}
    n_rows = comm.allreduce(prof.n_rows)
    for g in groups:
        part = Profile(prof.n_rows, {n: prof.columns[n] for n in g})
        cols.update(_reduce_bcast(part, comm, Profile.merge).columns)
    return Profile(n_rows, {n: cols[n] for n in prof.columns}, prof.params)


def fill_histograms(prof: Profile, numeric, bins, comm):
    """Edges from the merged samples for columns without fixed edges; local counts summed."""
    todo = [c for c in numeric
            if isinstance(prof.columns[c.name], NumericColumn) and not len(prof[c.name].edges)]
    if not todo:
        return
    local = []
    for c in todo:
        col = prof.columns[c.name]
        s = col.sample
        fin = s[np.isfinite(s)]
        col.edges = quantile_edges(fin, bins)
        local.append(hist_unsorted(c.float64(), col.edges))
    total = comm.allreduce(np.concatenate(local))
    for i, c in enumerate(todo):
        prof.columns[c.name].hist = total[i * (bins + 2):(i + 1) * (bins + 2)]
