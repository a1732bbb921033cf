"""Where this process runs: rank, size, local rank, node, host, user, Slurm job and step,
launcher.

One small object answers "where am I running" for every layer: the store's audit
fields, registry runs and (next) ``engine.dist``. Nothing else in the engine reads
``SLURM_*``, ``PMI_*``, ``OMPI_*`` or torchrun's variables. This module only reads
the environment: it imports nothing from ``engine`` and never imports mpi4py, so it
is as cheap to call from a commit as from a training step.

Launchers, in the order they are recognised (the first that sets a world size wins):

========== ============================================ ===========================
launcher   rank / size                                  local rank / node
========== ============================================ ===========================
``pmi``    ``PMI_RANK`` / ``PMI_SIZE`` (MPICH's         ``MPI_LOCALRANKID``, or
           hydra ``mpiexec``, ``srun --mpi=pmi2``)      ``SLURM_LOCALID`` under srun
``openmpi`` ``OMPI_COMM_WORLD_RANK`` / ``_SIZE``        ``OMPI_COMM_WORLD_LOCAL_RANK``
``slurm``  ``SLURM_PROCID`` / ``SLURM_NTASKS``          ``SLURM_LOCALID``, ``SLURM_NODEID``
``torchrun`` ``RANK`` / ``WORLD_SIZE``                  ``LOCAL_RANK``, ``GROUP_RANK``
========== ============================================ ===========================

Without any of them the process is a world of one (``launcher`` is None).

Examples
--------
>>> from engine.env import current
>>> where = current({"SLURM_JOB_ID": "77", "SLURM_STEP_ID": "0", "SLURM_PROCID": "3",
...                  "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
...                  "SLURM_NNODES": "4"})
>>> (where.rank, where.size, where.local_rank, where.node, where.nodes, where.launcher)
(3, 8, 1, 1, 4, 'slurm')
>>> where.slurm_job_id, where.slurm_step_id, where.slurm_restart_count
('77', '0', 0)
>>> current({}).size
1
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass

__all__ = ["Where", "current"]


@dataclass(frozen=True)
class Where:
    """Where one process runs (see the module docstring for the variables read).

    Attributes
    ----------
    rank, size : int
        This process's rank in its world and the world's size (0 and 1 alone).
    local_rank, local_size : int
        Rank among the processes of this node, and how many run on it.
    node, nodes : int
        This node's index and the number of nodes (0 and 1 when unknown).
    host, user : str
        Host name and login name (the uid as text where there is no passwd entry).
    pid : int
        Process id.
    slurm_job_id, slurm_step_id : str or None
        The Slurm job and step, when running under Slurm.
    slurm_restart_count : int
        How many times Slurm has requeued this job (``SLURM_RESTART_COUNT``; 0 on the
        first attempt and outside Slurm).
    launcher : str or None
        ``"pmi"``, ``"openmpi"``, ``"slurm"``, ``"torchrun"`` or None.
    """

    rank: int
    size: int
    local_rank: int
    local_size: int
    node: int
    nodes: int
    host: str
    user: str
    pid: int
    slurm_job_id: str | None
    slurm_step_id: str | None
    launcher: str | None
    slurm_restart_count: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def audit(self) -> dict:
        """The fields every commit records: who, where, which process and Slurm job."""
        return {"user": self.user, "host": self.host, "pid": self.pid,
                "slurm_job_id": self.slurm_job_id}


def _int(env: Mapping[str, str], *names: str, default: int) -> int:
    """The first of ``names`` set to a non-negative integer, else ``default``."""
    for name in names:
        value = env.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return default


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return str(os.getuid())


# launcher -> (rank, size, local rank, local size, node index) variables
_LAUNCHERS = (
    ("pmi", "PMI_RANK", "PMI_SIZE", ("MPI_LOCALRANKID", "SLURM_LOCALID"),
     ("MPI_LOCALNRANKS",), ("SLURM_NODEID",)),
    ("openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", ("OMPI_COMM_WORLD_LOCAL_RANK",),
     ("OMPI_COMM_WORLD_LOCAL_SIZE",), ("OMPI_COMM_WORLD_NODE_RANK", "SLURM_NODEID")),
    ("slurm", "SLURM_PROCID", "SLURM_NTASKS", ("SLURM_LOCALID",), ("SLURM_NTASKS_PER_NODE",),
     ("SLURM_NODEID",)),
    ("torchrun", "RANK", "WORLD_SIZE", ("LOCAL_RANK",), ("LOCAL_WORLD_SIZE",), ("GROUP_RANK",)),
)


def current(environ: Mapping[str, str] | None = None) -> Where:
    """Where this process runs, read from ``environ`` (default: ``os.environ``).

    Parameters
    ----------
    environ : mapping, optional
        The environment to read; tests pass their own.

    Returns
    -------
    Where
    """
    env = os.environ if environ is None else environ
    launcher, rank, size, local_rank, local_size, node = None, 0, 1, 0, 1, 0
    for name, rank_var, size_var, local_vars, local_size_vars, node_vars in _LAUNCHERS:
        if env.get(size_var, "").strip().isdigit():
            launcher = name
            size = max(_int(env, size_var, default=1), 1)
            rank = _int(env, rank_var, default=0)
            local_rank = _int(env, *local_vars, default=0)
            local_size = _int(env, *local_size_vars, default=1)
            node = _int(env, *node_vars, default=0)
            break
    nodes = _int(env, "SLURM_NNODES", "SLURM_JOB_NUM_NODES", default=max(node + 1, 1))
    return Where(rank=rank, size=size, local_rank=local_rank, local_size=max(local_size, 1),
                 node=node, nodes=nodes, host=socket.gethostname(), user=_user(),
                 pid=os.getpid(), slurm_job_id=env.get("SLURM_JOB_ID") or None,
                 slurm_step_id=env.get("SLURM_STEP_ID") or None, launcher=launcher,
                 slurm_restart_count=_int(env, "SLURM_RESTART_COUNT", default=0))
