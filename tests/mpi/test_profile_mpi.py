"""profile(..., comm=...) under a real ``mpiexec``: shards merge into the single-process profile.

Each test starts ``mpiexec -n N python tests/mpi/_profile_worker.py``; the
worker's rank 0 compares the MPI profile with the profile of the concatenated
data and every rank exits non-zero on a mismatch. Skipped when mpi4py or an
``mpiexec`` is missing (``pip install 'mlops-engine[mpi]'`` provides both).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("mpi4py")

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "_profile_worker.py")
BIN = os.path.dirname(sys.executable)
MPIEXEC = shutil.which("mpiexec", path=BIN) or shutil.which("mpiexec")

pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")


@pytest.mark.parametrize("ranks", [2, 3])
def test_profile_over_ranks_equals_single_process(ranks):
    env = dict(os.environ)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env["NUMBA_NUM_THREADS"] = "1"  # ranks share the cores; no oversubscription
    r = subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, WORKER], capture_output=True,
                       text=True, timeout=300, env=env, cwd=os.path.dirname(os.path.dirname(HERE)))
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert f"{ranks} ranks: OK" in r.stdout
