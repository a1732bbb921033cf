"""The training world: which ranks exist, where each runs, and the collectives that the
rest of ``engine.dist`` is built on.

:func:`init` reads where this process runs (``engine.env``), joins MPI through mpi4py
when a launcher started several ranks, and checks the launch: a world of one under a
launcher that promised more (ranks started as singletons: ``srun`` without
``--mpi=pmi2``) fails at once, on every rank, with the fix in the message. One process
without MPI is a world of one, so the same script runs on a laptop.

Node identity is ``SLURM_NODEID`` when Slurm gives it, else the host name; a node's
ranks form ``World.local_comm`` and ``local_rank`` is the rank within it.

Every collective here waits with a deadline (:data:`DEFAULT_TIMEOUT`, or
``init(timeout=...)``, or ``MLOPS_DIST_TIMEOUT``) by polling its request: polling also
makes MPICH progress the operation, and a rank that never arrives becomes a
:class:`CollectiveTimeout` instead of a job that hangs until its time limit.

How a timeout names the ranks that did not arrive: every :func:`wait` counts the
collectives this rank has waited for (collective #1, #2, ...) and remembers which one it
is in. While a rank polls, it also answers status queries on a private side
communicator (``World.ctl``, a second duplicate of ``COMM_WORLD``). A rank whose wait
times out asks every other rank where it is (non-blocking sends, then
:data:`STATUS_GRACE` seconds in which it also answers the others' queries, so the
error comes ``timeout + STATUS_GRACE`` seconds after the wait began) and names the ranks
that did not answer (dead, or stuck outside ``engine.dist``: computing, blocked in other
code or MPI calls) and the ranks that wait in a different collective. Nothing of this
costs a message unless a timeout happens: the happy path only adds an ``Iprobe`` to
polls that already sleep. Ranks time out at nearly the same moment when they entered
the collective together; one that entered more than ``STATUS_GRACE`` seconds after the
first to time out may find that one gone (with ``abort_on_error``, the first to raise
ends the job, and its message is the one to read).

In a world of several ranks, :func:`init` also makes ``Registry.start_run`` start one run
per job (``engine.dist.checkpoint.share_runs``: rank 0's run id, written once).

An uncaught exception on one rank of a multi-rank world would leave the other ranks
waiting for it; :func:`init` (``abort_on_error=True``) installs a ``sys.excepthook``
that prints the traceback with the rank and then calls ``MPI.COMM_WORLD.Abort(1)``,
which ends every rank of the job.

Examples
--------
>>> import engine.dist as dist
>>> world = dist.init()                          # doctest: +SKIP
>>> world.rank, world.size, world.local_rank     # doctest: +SKIP
(0, 2, 0)
>>> dist.allreduce_(np.ones(3))                  # doctest: +SKIP
array([2., 2., 2.])
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..env import current

__all__ = ["World", "DistError", "CollectiveTimeout", "init", "get_world", "is_initialized",
           "barrier", "broadcast_object", "allgather_object", "allreduce_", "broadcast_array_",
           "iallreduce", "wait", "DEFAULT_TIMEOUT", "STATUS_GRACE"]

#: seconds a collective may wait for the other ranks before it fails
DEFAULT_TIMEOUT = 600.0
#: seconds a rank whose collective timed out waits for the other ranks to say where they are
STATUS_GRACE = 1.5

_QUERY, _REPLY = 1, 2  # tags on World.ctl


class DistError(RuntimeError):
    """The world is wrong: a bad launch, ranks that disagree, ``init()`` called twice."""


class CollectiveTimeout(DistError):
    """A collective did not complete within the world's timeout.

    Attributes
    ----------
    what : str
        The collective that timed out (the ``what`` given to :func:`wait`).
    missing : tuple of int
        The ranks that did not arrive at it: no answer, or waiting in another collective.
    """

    def __init__(self, message: str, what: str = "", missing: tuple = ()):
        super().__init__(message)
        self.what = what
        self.missing = tuple(missing)


class _Tracker:
    """Which collective this rank waits in (mutable state of a frozen World)."""

    __slots__ = ("seq", "what", "sends", "queries")

    def __init__(self):
        self.seq = 0        # waits this rank has entered: "collective #seq"
        self.what = None    # what the current wait is for; None outside wait()
        self.sends = []     # replies and queries not yet known to be delivered
        self.queries = 0    # status queries this rank has sent (their ids)


@dataclass(frozen=True)
class World:
    """The ranks of one training job, as seen from this rank.

    Attributes
    ----------
    rank, size : int
        This rank and the number of ranks.
    local_rank, local_size : int
        Rank among the ranks of this node, and their number.
    node, nodes : int
        This node's index (nodes numbered in the order of their lowest rank) and the
        number of nodes.
    hosts : tuple of str
        The host name of each node, by node index.
    launcher : str or None
        What started the ranks (``engine.env.Where.launcher``); None alone.
    timeout : float
        Seconds a collective waits before :class:`CollectiveTimeout`.
    comm, local_comm : mpi4py communicators or None
        The world's communicator (a private duplicate of ``COMM_WORLD``) and its node's;
        None in a world of one without MPI.
    ctl : mpi4py communicator or None
        A second duplicate of ``COMM_WORLD`` for the status queries of a timed-out
        collective (internal).

    Examples
    --------
    A world built by hand (no communication) tells code that needs only the rank and the
    size, such as :class:`ShardedLoader`, which slice is this rank's:

    >>> w = World(rank=1, size=3, local_rank=1, local_size=3, node=0, nodes=1,
    ...           hosts=("h",), launcher=None, timeout=60.0)
    >>> w.rank, w.size, w.is_root
    (1, 3, False)
    """

    rank: int
    size: int
    local_rank: int
    local_size: int
    node: int
    nodes: int
    hosts: tuple
    launcher: str | None
    timeout: float
    comm: Any = field(default=None, repr=False, compare=False)
    local_comm: Any = field(default=None, repr=False, compare=False)
    ctl: Any = field(default=None, repr=False, compare=False)
    _tracker: _Tracker = field(default_factory=_Tracker, repr=False, compare=False)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def to_dict(self) -> dict:
        """What a run records about its world (the same on every rank)."""
        return {"size": self.size, "nodes": self.nodes, "hosts": list(self.hosts),
                "launcher": self.launcher}


_WORLD: World | None = None
_PREV_HOOK = None  # sys.excepthook before init() installed the abort hook


def _timeout(timeout) -> float:
    if timeout is None:
        env = os.environ.get("MLOPS_DIST_TIMEOUT", "").strip()
        if not env:
            return DEFAULT_TIMEOUT
        try:
            timeout = float(env)
        except ValueError:
            raise DistError(f"MLOPS_DIST_TIMEOUT must be a number of seconds, got {env!r}") from None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return MPI


def init(*, timeout: float | None = None, abort_on_error: bool = True) -> World:
    """Join the world this process was launched into, once per process.

    Parameters
    ----------
    timeout : float, optional
        Seconds a collective may wait for the other ranks (default
        ``$MLOPS_DIST_TIMEOUT`` or :data:`DEFAULT_TIMEOUT`).
    abort_on_error : bool, default True
        In a world of several ranks, make an uncaught exception on any rank print its
        traceback (each line prefixed with ``[rank R]``) and abort the whole job
        (``MPI.COMM_WORLD.Abort(1)``), so that the other ranks do not wait for it until
        their timeout.

    Returns
    -------
    World

    Raises
    ------
    DistError
        ``init()`` was called before in this process; the launcher promised several
        ranks but MPI sees one (singletons), or mpi4py is missing.
    CollectiveTimeout
        Not every rank called ``init()`` within ``timeout`` seconds.

    Examples
    --------
    >>> import engine.dist as dist
    >>> world = dist.init(timeout=120)    # doctest: +SKIP
    >>> print(f"rank {world.rank} of {world.size} on node {world.node}")  # doctest: +SKIP
    rank 0 of 1 on node 0
    """
    global _WORLD
    if _WORLD is not None:
        raise DistError("engine.dist.init() was called twice in this process; call it once, "
                        "at the start of the script, and pass the World it returns around "
                        "(or use engine.dist.get_world())")
    if not isinstance(abort_on_error, bool):
        raise ValueError(f"abort_on_error must be True or False, got {abort_on_error!r}")
    tmo = _timeout(timeout)
    where = current()
    host = socket.gethostname()
    MPI = _mpi()
    if MPI is None:
        if where.size > 1:
            raise DistError(f"the {where.launcher} launcher started {where.size} ranks but mpi4py "
                            "is not installed; install it with: pip install 'mlops-engine[mpi]'")
        _WORLD = World(0, 1, 0, 1, 0, 1, (host,), where.launcher, tmo)
        return _WORLD
    size, rank = MPI.COMM_WORLD.Get_size(), MPI.COMM_WORLD.Get_rank()
    if size == 1 and where.size > 1:
        raise DistError(
            f"the {where.launcher} launcher says this job has {where.size} ranks "
            f"(this is rank {where.rank}) but MPI sees a world of 1: the ranks started as "
            f"{where.size} separate singletons. Under Slurm launch them with "
            "'srun --mpi=pmi2 ...' (or --mpi=pmix where the cluster's Slurm has PMIx; "
            "'srun --mpi=list' shows what it has), or use 'mpiexec -n N' from the same MPI "
            "as mpi4py (mlops run -n N script.py)")
    if abort_on_error and size > 1:
        _install_abort_hook(rank, size, MPI)  # first: a rank that never joins aborts the job
    # non-blocking duplicates, so that a rank that never calls init() is a timeout here
    comm, joined = MPI.COMM_WORLD.Idup()
    reqs = [joined]
    ctl = None
    if size > 1:
        ctl, req = MPI.COMM_WORLD.Idup()
        reqs.append(req)
    first = World(rank, size, 0, 1, 0, 1, (host,), where.launcher, tmo, comm)
    wait(reqs, "engine.dist.init(): joining the other ranks", first)
    first = replace(first, ctl=ctl)  # from here on, a timeout names the missing ranks
    node_key = os.environ.get("SLURM_NODEID", "").strip() or host
    keys = allgather_object((node_key, host), "engine.dist.init(): node names", first)
    order: dict = {}
    for k, h in keys:
        order.setdefault(k, (len(order), h))
    node = order[node_key][0]
    hosts = tuple(h for _, h in sorted(order.values()))
    local = comm.Split(node, rank)  # every rank is here: blocking is safe
    _WORLD = replace(first, local_rank=local.Get_rank(), local_size=local.Get_size(), node=node,
                     nodes=len(order), hosts=hosts, local_comm=local)
    if size > 1:
        from .checkpoint import share_runs

        share_runs(_WORLD)  # every rank's Registry.start_run() joins rank 0's one run
    return _WORLD


def _install_abort_hook(rank: int, size: int, MPI) -> None:
    global _PREV_HOOK
    if _PREV_HOOK is None:
        _PREV_HOOK = sys.excepthook

    def abort_hook(etype, value, tb):
        import traceback

        try:
            sys.stdout.flush()
            text = "".join(traceback.format_exception(etype, value, tb))
            sys.stderr.write(f"engine.dist: uncaught {etype.__name__} on rank {rank} of "
                             f"{size} (host {socket.gethostname()}); aborting all ranks\n")
            sys.stderr.write("".join(f"[rank {rank}] {line}\n" for line in text.splitlines()))
            sys.stderr.flush()
            # give the launcher's proxy a moment to forward the traceback: MPI_Abort makes
            # it kill every rank, and what it has not read from the pipes yet is lost
            time.sleep(0.25)
        finally:
            MPI.COMM_WORLD.Abort(1)

    sys.excepthook = abort_hook


def is_initialized() -> bool:
    return _WORLD is not None


def get_world() -> World:
    """The world :func:`init` joined; a world of one if no launcher started this process
    and ``init()`` was not called (a plain ``python script.py``)."""
    if _WORLD is not None:
        return _WORLD
    where = current()
    if where.size > 1:
        raise DistError(f"this process is rank {where.rank} of {where.size} ({where.launcher}) "
                        "but engine.dist.init() was not called; call it at the start of the script")
    return World(0, 1, 0, 1, 0, 1, (socket.gethostname(),), where.launcher, _timeout(None))


def _reset() -> None:
    """Forget the world (tests only): the next init() joins again."""
    global _WORLD, _PREV_HOOK
    if _WORLD is not None and _WORLD.comm is not None:
        for c in (_WORLD.ctl, _WORLD.local_comm, _WORLD.comm):
            if c is not None:
                c.Free()
    if _PREV_HOOK is not None:
        sys.excepthook = _PREV_HOOK
        _PREV_HOOK = None
    ckpt = sys.modules.get(__name__.rpartition(".")[0] + ".checkpoint")
    if ckpt is not None and _WORLD is not None and _WORLD.size > 1:
        ckpt.share_runs(None)
    _WORLD = None


# ----------------------------------------------------------------------------- collectives


def wait(requests, what: str, world: World | None = None) -> None:
    """Complete MPI ``requests`` (one or a list; None entries are skipped), polling until
    the world's timeout.

    Polling (``Testall``) is what makes MPICH progress a non-blocking collective: it
    only moves inside MPI calls. After the first millisecond the poll backs off to
    1 ms sleeps, so a waiting rank does not steal a core from the ones computing; from
    then on it also answers the status queries of ranks whose own wait timed out.

    Every call counts as one collective of this rank (for the timeout's report), so
    every rank must call it the same number of times in the same order: wait for the
    requests of one step together or one by one, but the same way on every rank.

    Raises
    ------
    CollectiveTimeout
        Not complete after ``world.timeout`` seconds; the message names the ranks that
        did not arrive (and ``.missing`` lists them).
    """
    w = world or get_world()
    reqs = [r for r in (requests if isinstance(requests, (list, tuple)) else [requests])
            if r is not None]
    if not reqs:
        return
    MPI = _mpi()
    t = w._tracker
    t.seq += 1
    t.what = what
    try:
        start = time.monotonic()
        deadline = start + w.timeout
        spin_until = start + 0.001
        while not MPI.Request.Testall(reqs):
            now = time.monotonic()
            if now > spin_until:
                if w.ctl is not None:
                    _serve(w, MPI)
                if now > deadline:
                    raise _timed_out(w, what, MPI)
                time.sleep(0.001)
    finally:
        t.what = None


def _serve(w: World, MPI) -> None:
    """Answer the status queries waiting on ``w.ctl``: (query id, our seq, our what)."""
    t = w._tracker
    st = MPI.Status()
    while w.ctl.Iprobe(source=MPI.ANY_SOURCE, tag=_QUERY, status=st):
        src = st.Get_source()
        qid = w.ctl.recv(source=src, tag=_QUERY)
        t.sends.append(w.ctl.isend((qid, t.seq, t.what), dest=src, tag=_REPLY))
    if t.sends:
        t.sends = [r for r in t.sends if not r.Test()]


def _where_others_are(w: World, MPI) -> dict:
    """Ask every other rank which collective it waits in: {rank: (seq, what)} of those
    that answered within :data:`STATUS_GRACE` seconds."""
    t = w._tracker
    t.queries += 1
    qid = (w.rank, t.queries)
    for q in range(w.size):
        if q != w.rank:
            t.sends.append(w.ctl.isend(qid, dest=q, tag=_QUERY))
    answers: dict = {}
    st = MPI.Status()
    end = time.monotonic() + STATUS_GRACE
    # the whole grace period, even once every rank answered: ranks that time out a little
    # later ask us in turn, and should find us still answering
    while time.monotonic() < end:
        _serve(w, MPI)  # the others time out at about the same moment and ask us too
        while w.ctl.Iprobe(source=MPI.ANY_SOURCE, tag=_REPLY, status=st):
            src = st.Get_source()
            rid, seq, what = w.ctl.recv(source=src, tag=_REPLY)
            if rid == qid:  # not a late answer to an older query
                answers[src] = (seq, what)
        time.sleep(0.001)
    return answers


def _ranks(rs) -> str:
    rs = sorted(rs)
    return ("rank " if len(rs) == 1 else "ranks ") + ", ".join(map(str, rs))


def _timed_out(w: World, what: str, MPI) -> CollectiveTimeout:
    t = w._tracker
    seq = t.seq
    if w.ctl is None:  # init() before the side communicator exists: no one to ask
        return CollectiveTimeout(
            f"{what}: rank {w.rank} of {w.size} waited {w.timeout:g} s and the other ranks did "
            "not all arrive (which ones cannot be told before init() has built the world): "
            "a rank failed before calling engine.dist.init(), or runs other code; raise the "
            "limit with init(timeout=...) or MLOPS_DIST_TIMEOUT if they are just slow to start",
            what, ())
    answers = _where_others_are(w, MPI)
    others = [q for q in range(w.size) if q != w.rank]
    silent = [q for q in others if q not in answers]
    here = [q for q in others if answers.get(q) == (seq, what)]
    elsewhere = [q for q in others if q in answers and answers[q] != (seq, what)]
    head = (f"{what}: rank {w.rank} of {w.size} waited {w.timeout:g} s in this collective "
            f"(its collective #{seq}) and")
    tail = ("raise the limit with init(timeout=...) or MLOPS_DIST_TIMEOUT if the work is "
            "just slow")
    missing = sorted(silent + elsewhere)
    if not missing:
        return CollectiveTimeout(
            f"{head} every rank says it waits in it too, yet it did not complete: the ranks "
            "called it with different arguments (sizes, root) or MPI is stuck; " + tail,
            what, ())
    parts = []
    if silent:
        parts.append(f"{_ranks(silent)} did not answer within {STATUS_GRACE:g} s (dead, or "
                     "busy outside engine.dist collectives: still computing, blocked in "
                     "other code or MPI calls)")
    for q in elsewhere:
        qseq, qwhat = answers[q]
        parts.append(f"rank {q} waits in {qwhat!r} (its collective #{qseq})")
    arrived = [w.rank] + here
    return CollectiveTimeout(
        f"{head} {_ranks(missing)} did not arrive: {'; '.join(parts)}. "
        f"Arrived: {_ranks(arrived)}. A rank crashed, hangs, or took another code path; "
        + tail, what, missing)


def barrier(what: str = "barrier", world: World | None = None) -> None:
    """Wait until every rank has called it (with the world's deadline)."""
    w = world or get_world()
    if w.size > 1:
        wait(w.comm.Ibarrier(), what, w)


def iallreduce(buf: np.ndarray, world: World | None = None):
    """Start a sum-allreduce of ``buf`` in place; returns the request (None alone).

    Complete it with :func:`wait`."""
    w = world or get_world()
    if w.size == 1:
        return None
    MPI = _mpi()
    return w.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM)


def allreduce_(buf: np.ndarray, what: str = "allreduce", world: World | None = None) -> np.ndarray:
    """Sum ``buf`` over the ranks, in place; returns it.

    Examples
    --------
    >>> allreduce_(np.array([1.0, 2.0]))   # a world of one: unchanged
    array([1., 2.])
    """
    w = world or get_world()
    req = iallreduce(buf, w)
    if req is not None:
        wait(req, what, w)
    return buf


def broadcast_array_(buf: np.ndarray, root: int = 0, what: str = "broadcast",
                     world: World | None = None) -> np.ndarray:
    """Overwrite ``buf`` with root's, in place; returns it."""
    w = world or get_world()
    if w.size > 1:
        wait(w.comm.Ibcast(buf, root=root), what, w)
    return buf


def _bytes_collective(w: World, payload: bytes, what: str) -> list[bytes]:
    MPI = _mpi()
    n = np.array([len(payload)], np.int64)
    sizes = np.zeros(w.size, np.int64)
    wait(w.comm.Iallgather([n, MPI.INT64_T], [sizes, MPI.INT64_T]), what, w)
    if int(sizes.max()) >= 2**31 or int(sizes.sum()) >= 2**31:
        raise DistError(f"{what}: {int(sizes.sum())} bytes of pickled objects is too much for "
                        "allgather_object (at most 2 GiB in all); send arrays with "
                        "allreduce_/broadcast_array_ instead")
    out = np.empty(int(sizes.sum()), np.uint8)
    counts = sizes.astype(np.int32)
    offsets = np.zeros(w.size, np.int32)
    np.cumsum(counts[:-1], out=offsets[1:])
    send = np.frombuffer(payload, np.uint8)
    wait(w.comm.Iallgatherv([send, len(send), MPI.BYTE], [out, (counts, offsets), MPI.BYTE]),
         what, w)
    return [out[o:o + s].tobytes() for o, s in zip(offsets.tolist(), counts.tolist())]


def allgather_object(obj, what: str = "allgather", world: World | None = None) -> list:
    """Every rank's ``obj`` (picklable), by rank.

    Examples
    --------
    >>> allgather_object({"loss": 0.5})   # a world of one
    [{'loss': 0.5}]
    """
    import pickle

    w = world or get_world()
    if w.size == 1:
        return [obj]
    return [pickle.loads(b) for b in _bytes_collective(w, pickle.dumps(obj), what)]


def broadcast_object(obj, root: int = 0, what: str = "broadcast", world: World | None = None):
    """Root's ``obj`` (picklable) on every rank."""
    import pickle

    w = world or get_world()
    if w.size == 1:
        return obj
    payload = pickle.dumps(obj) if w.rank == root else b""
    n = np.array([len(payload)], np.int64)
    broadcast_array_(n, root, what, w)
    buf = np.frombuffer(payload, np.uint8).copy() if w.rank == root else np.empty(int(n[0]), np.uint8)
    broadcast_array_(buf, root, what, w)
    return obj if w.rank == root else pickle.loads(buf.tobytes())
