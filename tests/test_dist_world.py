"""engine.dist.init() and the world's collectives, in this process and on real ranks.

In this process (no launcher; mpi4py hidden where the test says so): a world of one,
init() twice, bad timeouts, a launcher without mpi4py. Under ``mpiexec``
(tests/mpi/_dist_world_worker.py, every test bounded by a timeout of its own):
collectives on 2 and 3 ranks against sums computed from every rank's input; 4 ranks as
2 nodes x 2 with shared memory off (``MPIR_CVAR_NOLOCAL=1``) and node identity from
``SLURM_NODEID`` given per rank through hydra's MPMD syntax; a rank that never arrives
(ranks 0 and 1 name rank 2 within ``timeout + STATUS_GRACE`` seconds); a rank waiting
in another collective (named, with its name); an uncaught exception on one rank (the
job ends at once, the traceback names the rank). And the singleton trap: two plain
``python`` processes with ``SLURM_PROCID``/``SLURM_NTASKS`` set fail, each with the fix.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import engine.dist as dist
import engine.dist.world as world_mod
from engine.dist import CollectiveTimeout, DistError

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "mpi", "_dist_world_worker.py")
BIN = os.path.dirname(sys.executable)
MPIEXEC = shutil.which("mpiexec", path=BIN) or shutil.which("mpiexec")
LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                 "SLURM_PROCID", "SLURM_NTASKS", "SLURM_NODEID", "SLURM_LOCALID", "RANK",
                 "WORLD_SIZE", "MLOPS_DIST_TIMEOUT")

try:
    import mpi4py  # noqa: F401

    HAVE_MPI4PY = True
except ImportError:
    HAVE_MPI4PY = False

needs_mpi = pytest.mark.skipif(MPIEXEC is None or not HAVE_MPI4PY,
                               reason="no mpi4py or mpiexec (pip install 'mlops-engine[mpi]')")


@pytest.fixture
def alone(monkeypatch):
    """No launcher in the environment, mpi4py hidden, and a fresh world after the test."""
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(world_mod, "_mpi", lambda: None)
    world_mod._reset()
    yield monkeypatch
    world_mod._reset()


def test_no_launcher_and_no_mpi_is_a_world_of_one(alone):
    assert not dist.is_initialized()
    w = dist.init(timeout=5)
    assert (w.rank, w.size, w.local_rank, w.local_size, w.node, w.nodes) == (0, 1, 0, 1, 0, 1)
    assert w.hosts == (socket.gethostname(),) and w.launcher is None and w.comm is None
    assert w.timeout == 5.0 and w.is_root and dist.get_world() is w and dist.is_initialized()
    assert w.to_dict() == {"size": 1, "nodes": 1, "hosts": [socket.gethostname()],
                           "launcher": None}
    # the collectives are the identity in a world of one
    buf = np.arange(3.0)
    assert dist.allreduce_(buf) is buf and buf.tolist() == [0.0, 1.0, 2.0]
    assert dist.iallreduce(buf) is None
    assert dist.allgather_object({"a": 1}) == [{"a": 1}]
    assert dist.broadcast_object("x") == "x"
    assert dist.broadcast_array_(buf).tolist() == [0.0, 1.0, 2.0]
    dist.barrier()
    dist.wait([], "nothing")
    dist.wait([None], "nothing either")


def test_init_twice_raises(alone):
    dist.init()
    with pytest.raises(DistError, match="init\\(\\) was called twice.*get_world"):
        dist.init()


def test_get_world_without_init(alone):
    w = dist.get_world()
    assert w.size == 1 and not dist.is_initialized()
    alone.setenv("SLURM_PROCID", "1")
    alone.setenv("SLURM_NTASKS", "4")
    with pytest.raises(DistError, match="rank 1 of 4 \\(slurm\\).*init\\(\\) was not called"):
        dist.get_world()


def test_launcher_without_mpi4py(alone):
    alone.setenv("SLURM_PROCID", "0")
    alone.setenv("SLURM_NTASKS", "2")
    with pytest.raises(DistError, match="slurm launcher started 2 ranks but mpi4py is not "
                                        "installed.*pip install 'mlops-engine\\[mpi\\]'"):
        dist.init()
    assert not dist.is_initialized()


def test_timeouts(alone):
    for bad in (0, -1, "5", True, float("nan")):
        with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
            dist.init(timeout=bad)
    with pytest.raises(ValueError, match="abort_on_error must be True or False"):
        dist.init(abort_on_error=1)
    alone.setenv("MLOPS_DIST_TIMEOUT", "abc")
    with pytest.raises(DistError, match="MLOPS_DIST_TIMEOUT must be a number of seconds, got 'abc'"):
        dist.init()
    alone.setenv("MLOPS_DIST_TIMEOUT", "7.5")
    assert dist.init().timeout == 7.5
    world_mod._reset()
    alone.delenv("MLOPS_DIST_TIMEOUT")
    assert dist.init().timeout == dist.DEFAULT_TIMEOUT


def test_import_engine_dist_imports_neither_torch_nor_mpi4py():
    code = ("import sys, engine.dist as d; d.World; d.init; "
            "print(sorted(m for m in ('torch', 'mpi4py') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "[]"


def test_lazy_exports():
    assert dist.ShardedLoader.__module__ == "engine.dist.loader"
    assert "ShardedLoader" in dir(dist) and "Checkpointer" in dir(dist)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dist.nope  # noqa: B018
    assert set(world_mod.__all__) - {"STATUS_GRACE"} <= set(dist.__all__)


# ----------------------------------------------------------------------------- real ranks


def mpirun(args: list[str], timeout: float = 120, env: dict | None = None):
    e = dict(os.environ, OMP_NUM_THREADS="1")
    for var in LAUNCHER_VARS:
        e.pop(var, None)
    e["PATH"] = BIN + os.pathsep + e.get("PATH", "")
    e.update(env or {})
    t0 = time.monotonic()
    r = subprocess.run([MPIEXEC, *args], capture_output=True, text=True, timeout=timeout, env=e,
                       cwd=ROOT)
    return r, time.monotonic() - t0


def records(out_dir, ranks) -> dict:
    return {r: json.loads((out_dir / f"rank{r}.json").read_text()) for r in ranks}


@needs_mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_collectives_on_real_ranks(tmp_path, ranks):
    r, _ = mpirun(["-n", str(ranks), sys.executable, WORKER, "basic", str(tmp_path)])
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert f"{ranks} ranks: OK" in r.stdout


@needs_mpi
def test_two_nodes_of_two_without_shared_memory(tmp_path):
    node = [sys.executable, WORKER, "nodes", str(tmp_path), "2"]
    r, _ = mpirun(["-n", "2", "-env", "SLURM_NODEID", "0", *node, ":",
                   "-n", "2", "-env", "SLURM_NODEID", "1", *node],
                  env={"MPIR_CVAR_NOLOCAL": "1"})
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "4 ranks: OK" in r.stdout


@needs_mpi
def test_a_rank_that_never_arrives_is_named(tmp_path):
    """Rank 2 sleeps through a barrier (timeout 2 s): ranks 0 and 1 name it, then abort."""
    r, seconds = mpirun(["-n", "3", sys.executable, WORKER, "timeout", str(tmp_path)], timeout=60)
    got = records(tmp_path, (0, 1))
    for rank, rec in got.items():
        assert rec["missing"] == [2] and rec["what"] == "step barrier", rec
        assert f"step barrier: rank {rank} of 3 waited 2 s" in rec["message"]
        assert "rank 2 did not arrive: rank 2 did not answer" in rec["message"]
        assert "Arrived: ranks 0, 1" in rec["message"]
        assert 2.0 <= rec["seconds"] <= 2.0 + world_mod.STATUS_GRACE + 1.5
    # the re-raised CollectiveTimeout went through the abort hook: the job ended, rank 2's
    # 60 s sleep included, well before its 60 s
    assert r.returncode != 0 and seconds < 30
    assert "CollectiveTimeout: step barrier" in r.stderr
    assert "aborting all ranks" in r.stderr


@needs_mpi
def test_a_rank_in_another_collective_is_named_with_it(tmp_path):
    r, seconds = mpirun(["-n", "3", sys.executable, WORKER, "elsewhere", str(tmp_path)],
                        timeout=60)
    got = records(tmp_path, (0, 1, 2))
    # every rank waited as many times before: the same collective number everywhere
    seq = re.search(r"\(its collective #(\d+)\)", got[0]["message"]).group(1)
    for rank in (0, 1):
        assert got[rank]["missing"] == [2], got[rank]
        assert f"step barrier: rank {rank} of 3 waited 2 s in this collective (its collective " \
               f"#{seq})" in got[rank]["message"]
        assert f"rank 2 waits in 'receive from rank 0' (its collective #{seq})" in \
            got[rank]["message"]
    assert got[2]["missing"] == [0, 1] and got[2]["what"] == "receive from rank 0"
    assert (f"rank 0 waits in 'step barrier' (its collective #{seq}); rank 1 waits in "
            f"'step barrier' (its collective #{seq})") in got[2]["message"]
    assert seconds < 30


@needs_mpi
def test_a_rank_that_never_calls_init(tmp_path):
    r, seconds = mpirun(["-n", "2", sys.executable, WORKER, "noinit", str(tmp_path)], timeout=60)
    rec = records(tmp_path, (0,))[0]
    assert rec["what"] == "engine.dist.init(): joining the other ranks"
    assert "rank 0 of 2 waited 2 s and the other ranks did not all arrive" in rec["message"]
    assert "before calling engine.dist.init()" in rec["message"]
    assert 2.0 <= rec["seconds"] < 10
    assert r.returncode != 0 and seconds < 30 and "aborting all ranks" in r.stderr


@needs_mpi
def test_an_uncaught_exception_ends_every_rank(tmp_path):
    """Rank 1 raises while rank 0 waits with a 100 s timeout: the abort hook ends the job."""
    r, seconds = mpirun(["-n", "2", sys.executable, WORKER, "raise", str(tmp_path)], timeout=60)
    assert r.returncode != 0
    assert seconds < 20
    assert "uncaught ValueError on rank 1 of 2" in r.stderr
    assert "[rank 1] ValueError: boom on purpose" in r.stderr
    assert "[rank 0]" not in r.stderr


@pytest.mark.skipif(not HAVE_MPI4PY, reason="mpi4py is not installed")
def test_singletons_under_a_launcher_fail_on_every_rank():
    """``srun`` without ``--mpi=pmi2``: each rank is an MPI world of 1 but Slurm says 2."""
    code = "import engine.dist as d; d.init(); print('joined')"
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS and
           not k.startswith(("PMI_", "MPI_LOCAL"))}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env=dict(env, SLURM_PROCID=str(r), SLURM_NTASKS="2",
                                       SLURM_LOCALID=str(r), SLURM_NODEID="0"))
             for r in range(2)]
    for rank, p in enumerate(procs):
        out, err = p.communicate(timeout=60)
        assert p.returncode == 1 and "joined" not in out
        assert "DistError" in err
        assert f"says this job has 2 ranks (this is rank {rank}) but MPI sees a world of 1" in err
        assert "srun --mpi=pmi2" in err and "mpiexec -n N" in err


@pytest.mark.skipif(not HAVE_MPI4PY, reason="mpi4py is not installed")
def test_one_process_with_mpi4py_is_a_world_of_one():
    code = ("import engine.dist as d; w = d.init(); "
            "print(w.size, w.rank, w.nodes, w.local_size, w.comm is not None, w.ctl is None, "
            "d.allgather_object(5), d.allreduce_(__import__('numpy').ones(2)).tolist())")
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "0", "1", "1", "True", "True", "[5]", "[1.0,", "1.0]"]


def test_collective_timeout_carries_what_and_missing():
    exc = CollectiveTimeout("msg", "step", (2, 3))
    assert isinstance(exc, DistError) and exc.what == "step" and exc.missing == (2, 3)
