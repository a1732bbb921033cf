"""engine.env: one description of where a process runs, read from the environment only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.env import Where, current


@pytest.mark.parametrize("environ, expect", [
    ({}, dict(rank=0, size=1, local_rank=0, local_size=1, node=0, nodes=1, launcher=None)),
    # MPICH's hydra mpiexec
    ({"PMI_RANK": "2", "PMI_SIZE": "3", "MPI_LOCALRANKID": "2", "MPI_LOCALNRANKS": "3"},
     dict(rank=2, size=3, local_rank=2, local_size=3, node=0, nodes=1, launcher="pmi")),
    # srun --mpi=pmi2: PMI for ranks, Slurm for the node
    ({"PMI_RANK": "5", "PMI_SIZE": "8", "SLURM_LOCALID": "1", "SLURM_NODEID": "2",
      "SLURM_NNODES": "4", "SLURM_JOB_ID": "9", "SLURM_STEP_ID": "0", "SLURM_PROCID": "5",
      "SLURM_NTASKS": "8"},
     dict(rank=5, size=8, local_rank=1, node=2, nodes=4, launcher="pmi")),
    ({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4",
      "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
      "OMPI_COMM_WORLD_NODE_RANK": "0"},
     dict(rank=1, size=4, local_rank=1, local_size=2, node=0, launcher="openmpi")),
    ({"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
      "SLURM_NNODES": "4", "SLURM_NTASKS_PER_NODE": "2", "SLURM_JOB_ID": "77"},
     dict(rank=3, size=8, local_rank=1, local_size=2, node=1, nodes=4, launcher="slurm",
          slurm_job_id="77", slurm_step_id=None)),
    ({"RANK": "6", "WORLD_SIZE": "8", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "4",
      "GROUP_RANK": "1"},
     dict(rank=6, size=8, local_rank=2, local_size=4, node=1, nodes=2, launcher="torchrun")),
    # malformed values fall back instead of raising inside an audit field
    ({"PMI_SIZE": "x", "SLURM_NTASKS": "2(x3)", "WORLD_SIZE": "-1"},
     dict(rank=0, size=1, launcher=None)),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "0"}, dict(size=1, launcher="slurm")),
])
def test_launchers(environ, expect):
    where = current(environ)
    assert isinstance(where, Where)
    for key, value in expect.items():
        assert getattr(where, key) == value, (key, where)
    assert where.pid == os.getpid() and where.host and where.user


def test_audit_fields_are_what_commits_record(monkeypatch):
    from engine.store.store import who

    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert who() == current().audit()
    assert who()["slurm_job_id"] == "4242"
    assert set(who()) == {"user", "host", "pid", "slurm_job_id"}


def test_registry_world_comes_from_env(monkeypatch):
    from engine.registry.runs import world_info

    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    for var in ("SLURM_JOB_ID", "SLURM_RESTART_COUNT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert world_info() == {"world_size": 4, "rank": 3, "slurm_job_id": None, "slurm_attempt": 1}
    monkeypatch.setenv("SLURM_JOB_ID", "88")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    assert world_info()["slurm_job_id"] == "88" and world_info()["slurm_attempt"] == 3


def test_env_imports_nothing_heavy():
    code = ("import sys, engine.env as e; e.current(); "
            "bad = [m for m in ('mpi4py', 'numpy', 'torch', 'engine.store') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parent, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
