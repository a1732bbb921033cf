"""``mlops run -n N script.py [args...]``: a script on N local ranks through mpiexec.

Each test runs ``python -m engine.cli run ...`` in a fresh interpreter (bounded by a
timeout) on a tiny script that joins the world with ``engine.dist.init()`` and prints its
rank, its world size and its arguments; or calls ``main()`` in this process where it
hides mpiexec.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from engine.cli import main
from engine.cli import run as run_mod

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                 "SLURM_PROCID", "SLURM_NTASKS", "RANK", "WORLD_SIZE")
LINE = re.compile(r"rank (\d+) of (\d+) args (\[.*?\])")

SCRIPT = textwrap.dedent("""
    import sys
    import engine.dist as dist
    w = dist.init(timeout=60)
    print(f"rank {w.rank} of {w.size} args {sys.argv[1:]}", flush=True)
    code = sys.argv[1] if len(sys.argv) > 1 else "0"
    sys.exit(int(code) if w.rank == int(sys.argv[2] if len(sys.argv) > 2 else 0) else 0)
""")


def mlops(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


@pytest.fixture
def script(tmp_path):
    p = tmp_path / "hello.py"
    p.write_text(SCRIPT)
    return p


def ranks_seen(stdout: str) -> list[tuple]:
    return sorted((int(r), int(n), a) for r, n, a in LINE.findall(stdout))


needs_mpi = pytest.mark.skipif(MPIEXEC is None,
                               reason="no mpiexec (pip install 'mlops-engine[mpi]')")


@needs_mpi
def test_run_on_two_ranks(tmp_path, script):
    pytest.importorskip("mpi4py")
    r = mlops("run", "-n", "2", script, "0", "0", "--flag", "-n", "7", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    args = "['0', '0', '--flag', '-n', '7']"  # everything after SCRIPT is the script's
    assert ranks_seen(r.stdout) == [(0, 2, args), (1, 2, args)]


@needs_mpi
def test_exit_status_of_the_script_is_the_commands(tmp_path, script):
    pytest.importorskip("mpi4py")
    r = mlops("run", "-n", "2", script, "5", "1", cwd=tmp_path)  # rank 1 exits with 5
    assert r.returncode != 0
    assert [x[:2] for x in ranks_seen(r.stdout)] == [(0, 2), (1, 2)]
    one = mlops("run", script, "3", cwd=tmp_path)  # one rank: the script's own status
    assert one.returncode == 3
    assert ranks_seen(one.stdout) == [(0, 1, "['3']")]
    ok = mlops("run", "--np", "1", script, cwd=tmp_path)
    assert ok.returncode == 0 and ranks_seen(ok.stdout) == [(0, 1, "[]")]


@pytest.mark.parametrize("bad", ["0", "-1", "x", "2.5"])
def test_bad_number_of_ranks_is_a_usage_error(tmp_path, script, bad):
    r = mlops("run", "-n", bad, script, cwd=tmp_path)
    assert r.returncode == 2
    assert f"argument -n/--np: expected a positive number of ranks, got '{bad}'" in r.stderr
    assert "rank" not in r.stdout


def test_missing_script_is_a_clear_error(tmp_path):
    r = mlops("run", "-n", "2", "nope.py", cwd=tmp_path)
    assert r.returncode == 2 and "mlops run: error: no such script: 'nope.py'" in r.stderr
    r = mlops("run", "-n", "2", tmp_path, cwd=tmp_path)
    assert r.returncode == 2 and "is a directory; give a Python script" in r.stderr
    r = mlops("run", cwd=tmp_path)
    assert r.returncode == 2 and "the following arguments are required: SCRIPT" in r.stderr


def test_without_mpiexec_one_rank_runs_and_says_so(tmp_path, script, monkeypatch, capfd):
    monkeypatch.setattr(run_mod, "find_mpiexec", lambda: None)
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    code = main(["run", "-n", "3", str(script), "4"])
    out, err = capfd.readouterr()
    assert code == 4
    assert ranks_seen(out) == [(0, 1, "['4']")]
    assert "no mpiexec next to" in err and "runs as one rank instead of 3" in err
    assert "pip install 'mlops-engine[mpi]'" in err


def test_help_explains_with_an_example(tmp_path):
    r = mlops("run", "--help", cwd=tmp_path)
    assert r.returncode == 0
    assert "mpiexec -n N" in r.stdout and "mlops run -n 2 " in r.stdout
    assert "mlops-engine[mpi]" in r.stdout
    top = mlops("--help", cwd=tmp_path)
    assert re.search(r"\brun\s+run a training script on N local MPI ranks", top.stdout)


def test_command_line():
    assert run_mod.command_line(3, "t.py", ["-x"], "/m/mpiexec") == \
        ["/m/mpiexec", "-n", "3", sys.executable, "t.py", "-x"]
    assert run_mod.command_line(1, "t.py", [], "/m/mpiexec") == [sys.executable, "t.py"]
    assert run_mod.command_line(4, "t.py", [], None) == [sys.executable, "t.py"]
