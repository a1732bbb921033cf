"""``mlops submit`` without a cluster: the batch script, options, defaults and bad input.

The real cluster's tests are in tests/test_slurm.py; these run everywhere.
"""

import json
import os
import subprocess
import sys

import pytest

from engine.cli import main
from engine.dist import slurm

MLOPS = [sys.executable, "-m", "engine.cli"]


@pytest.fixture
def script(tmp_path):
    p = tmp_path / "train.py"
    p.write_text("print('hi')\n")
    return str(p)


@pytest.fixture(autouse=True)
def _no_slurm_env(monkeypatch, tmp_path):
    for k in list(os.environ):
        if k.startswith(("SLURM_", "MLOPS_SLURM_")) or k in ("MLOPS_RUN_ID", "MLOPS_JOBS_DIR"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("MLOPS_SLURM_CONFIG", str(tmp_path / "no-such.ini"))


def test_render_has_every_option_and_quotes_arguments(script, tmp_path):
    opts = slurm.SubmitOptions(nodes=2, ntasks_per_node=4, gpus_per_node=4, cpus_per_task=8,
                               time="1-00:00:00", partition="gpu", account="proj1",
                               mem="64G", signal="USR2@300", max_requeues=5,
                               mpi="pmix").check()
    text = slurm.render(script, ["--note", "two words", "$HOME"], opts, run_id="r-0001",
                        job_dir="/jobs/r-0001", python="/venv/bin/python", store="/st",
                        cwd="/work")
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    for want in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--cpus-per-task=8",
                 "--time=1-00:00:00", "--partition=gpu", "--account=proj1", "--mem=64G",
                 "--signal=USR2@300", "--requeue", "--open-mode=append",
                 "--output=/jobs/r-0001/slurm-%j.out", "--chdir=/work", "--job-name=train"):
        assert f"#SBATCH {want}" in lines, want
    assert f"srun --mpi=pmix --kill-on-bad-exit=1 /venv/bin/python {script} --note " \
           "'two words' '$HOME'" in lines
    for env in ("MLOPS_HOME=/st", "MLOPS_RUN_ID=r-0001", "MLOPS_PREEMPT_SIGNALS=USR2,TERM",
                "MLOPS_MAX_REQUEUES=5", "MLOPS_JOB_DIR=/jobs/r-0001"):
        assert f"export {env}" in lines, env
    # the script is valid bash
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    no = slurm.render(script, [], slurm.SubmitOptions(requeue=False), run_id="r-0002",
                      job_dir="/j", python="py", store="/st", cwd="/w")
    assert "#SBATCH --no-requeue" in no and "export MLOPS_MAX_REQUEUES=0" in no
    assert "--gpus-per-node" not in no and "--partition" not in no and "--time" not in no


@pytest.mark.parametrize(("field", "value", "match"), [
    ("nodes", 0, "nodes must be an integer >= 1"),
    ("ntasks_per_node", -1, "ntasks_per_node"),
    ("gpus_per_node", 0, "gpus_per_node"),
    ("max_requeues", -1, "max_requeues must be an integer >= 0"),
    ("time", "ten minutes", "time must be a Slurm time limit"),
    ("mem", "lots", "mem must be a size"),
    ("signal", "KILL@60", "cannot be caught"),
    ("signal", "B:USR2@60", "batch shell only"),
    ("signal", "NOPE@60", "signal must look like USR2@90"),
    ("partition", "gpu; rm -rf /", "partition must be a word"),
])
def test_options_are_checked(field, value, match):
    with pytest.raises(ValueError, match=match):
        slurm.SubmitOptions(**{field: value}).check()


def test_defaults_from_config_file_then_environment(tmp_path, monkeypatch):
    ini = tmp_path / "slurm.ini"
    ini.write_text("[slurm]\npartition = cpu\ntime = 02:00:00\nmax-requeues = 7\nrequeue = no\n")
    monkeypatch.setenv("MLOPS_SLURM_CONFIG", str(ini))
    o = slurm.options()
    assert (o.partition, o.time, o.max_requeues, o.requeue) == ("cpu", "02:00:00", 7, False)
    monkeypatch.setenv("MLOPS_SLURM_PARTITION", "gpu")
    monkeypatch.setenv("MLOPS_SLURM_NODES", "3")
    o = slurm.options()
    assert (o.partition, o.nodes, o.time) == ("gpu", 3, "02:00:00")
    assert slurm.options(partition="big", nodes=None).partition == "big"  # the command line wins
    monkeypatch.setenv("MLOPS_SLURM_NODES", "three")
    with pytest.raises(ValueError, match="MLOPS_SLURM_NODES: expected an integer"):
        slurm.options()
    monkeypatch.delenv("MLOPS_SLURM_NODES")
    ini.write_text("[slurm]\nqueue = gpu\n")
    with pytest.raises(ValueError, match="unknown key 'queue'"):
        slurm.options()


def test_dry_run_prints_and_writes_nothing(script, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    assert main(["submit", "--dry-run", "--store", str(store), "-N", "2", "--ntasks-per-node",
                 "2", script, "--lr", "0.1"]) == 0
    text = capsys.readouterr().out
    assert "#SBATCH --nodes=2" in text and text.rstrip().endswith("exit $rc")
    assert f"{script} --lr 0.1" in text
    assert not store.exists()  # nothing written


def test_bad_input_exits_non_zero_and_submits_nothing(script, tmp_path, monkeypatch):
    store = str(tmp_path / "store")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = os.path.dirname(sys.executable)  # no sbatch
    run = lambda *a, **kw: subprocess.run([*MLOPS, *a], capture_output=True, text=True,  # noqa: E731
                                          env={**env, **kw.get("env", {})}, timeout=60)
    p = run("submit", "--store", store, script)
    assert p.returncode == 1 and "sbatch is not on PATH" in p.stderr
    assert "nothing was submitted" in p.stderr
    p = run("submit", "--store", store, "--nodes", "0", script)
    assert p.returncode == 2 and "--nodes" in p.stderr and "expected an integer >= 1" in p.stderr
    p = run("submit", "--store", store, str(tmp_path / "missing.py"))
    assert p.returncode == 2 and "no such script" in p.stderr
    p = run("submit", "--store", store, script, env={"SLURM_JOB_ID": "99"})
    assert p.returncode == 2 and "inside Slurm job 99" in p.stderr and "--allow-nested" in p.stderr
    p = run("submit", "--store", store, "--signal", "KILL", script)
    assert p.returncode == 2 and "cannot be caught" in p.stderr
    assert not os.path.exists(os.path.join(store, "jobs"))  # no job directory was left


def test_jobs_without_jobs_and_unknown_job(tmp_path, capsys):
    store = str(tmp_path / "store")
    assert main(["jobs", "--store", store]) == 0
    assert "no active jobs" in capsys.readouterr().out
    assert main(["jobs", "--all", "--json", "--store", store]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["jobs", "logs", "1234", "--store", store]) == 2
    assert "no job of the engine matches '1234'" in capsys.readouterr().err


def test_help_explains(capsys):
    with pytest.raises(SystemExit):
        main(["submit", "--help"])
    h = capsys.readouterr().out
    for word in ("srun --mpi=pmi2", "--max-requeues", "MLOPS_SLURM_", "slurm.ini", "--dry-run",
                 "NCCL", "--allow-nested"):
        assert word in h, word
    with pytest.raises(SystemExit):
        main(["jobs", "--help"])
    assert "scontrol show job" in capsys.readouterr().out


def test_the_mpich_wheel_gets_the_ofi_netmod_under_pmi2_and_nothing_else_does(script):
    line = "export MPIR_CVAR_CH4_NETMOD=${MPIR_CVAR_CH4_NETMOD:-ofi}"
    kw = dict(run_id="r-0003", job_dir="/j", python="py", store="/st", cwd="/w")
    pmi2 = slurm.SubmitOptions(mpi="pmi2").check()
    text = slurm.render(script, [], pmi2, wheel_mpich=True, **kw).splitlines()
    assert line in text and text.index(line) < next(
        i for i, t in enumerate(text) if t.startswith("srun "))
    assert line not in slurm.render(script, [], pmi2, wheel_mpich=False, **kw)  # a system MPI
    pmix = slurm.SubmitOptions(mpi="pmix").check()
    assert line not in slurm.render(script, [], pmix, wheel_mpich=True, **kw)
    # a value set before sbatch wins: the default applies only when it is unset
    out = subprocess.run(["bash", "-c", line + "; echo $MPIR_CVAR_CH4_NETMOD"], text=True,
                         capture_output=True, env={"MPIR_CVAR_CH4_NETMOD": "ucx"}).stdout
    assert out.strip() == "ucx"
    assert slurm.mpich_wheel()  # this test environment has the mpi extra


def test_the_example_batch_scripts_pick_the_ofi_netmod():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in ("cpu.sbatch", "gpu.sbatch"):
        text = open(os.path.join(root, "examples", "slurm", name)).read()
        assert "export MPIR_CVAR_CH4_NETMOD=${MPIR_CVAR_CH4_NETMOD:-ofi}" in text
        assert text.index("export MPIR_CVAR_CH4_NETMOD") < text.index("\nsrun --mpi=pmi2")
