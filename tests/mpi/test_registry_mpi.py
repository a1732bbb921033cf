"""The registry under a real ``mpiexec``: every rank commits to one registry at once.

Each test starts ``mpiexec -n 3 python tests/mpi/_registry_worker.py <store>``; every
rank registers versions of a shared name and of its own name, and rank 0 checks that
the numbering is gap-free and every payload is present; every rank exits non-zero on
a mismatch. Skipped when mpi4py or an ``mpiexec`` is missing
(``pip install 'mlops-engine[mpi]'`` provides both).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("mpi4py")

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "_registry_worker.py")
BIN = os.path.dirname(sys.executable)
MPIEXEC = shutil.which("mpiexec", path=BIN) or shutil.which("mpiexec")

pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")


@pytest.mark.parametrize("index", ["shared", "per-rank"])
def test_every_rank_registers_gap_free(tmp_path, index):
    ranks = 3
    env = dict(os.environ)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env["MLOPS_CACHE_DIR"] = str(tmp_path / "cache")
    r = subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, WORKER, str(tmp_path / "store"),
                        index], capture_output=True, text=True, timeout=300, env=env,
                       cwd=os.path.dirname(os.path.dirname(HERE)))
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert f"{ranks} ranks: OK" in r.stdout
