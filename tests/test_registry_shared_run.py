"""One registry run per training job: the run coordinator, follower runs, re-attaching.

``engine.registry.runs.set_run_coordinator`` lets the ranks of one job agree on one run
(``engine.dist`` installs it when its world has several ranks). In-process tests use
fake coordinators (a leader and a follower in one process); the last test runs
``mpiexec -n 2`` with the real one (tests/mpi/_dist_resume_worker.py shared-run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from engine.registry import Registry, RunFinished
from engine.registry.runs import run_coordinator, set_run_coordinator


@pytest.fixture(autouse=True)
def _no_coordinator():
    prev = set_run_coordinator(None)
    yield
    set_run_coordinator(prev)


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "store")


def test_leader_and_follower_share_one_run(store):
    proposals = []

    def leader(proposed):
        proposals.append(proposed)
        return proposed, True

    set_run_coordinator(leader)
    reg = Registry(store, index_path=":memory:")
    run0 = reg.start_run("train", params={"lr": 0.1})
    assert run0.leader and run0.run_id == run0.id == proposals[0]

    set_run_coordinator(lambda proposed: (run0.run_id, False))  # rank 1 gets rank 0's id
    follower_reg = Registry(store, index_path=":memory:")
    head = reg.refresh()
    run1 = follower_reg.start_run("train", params={"lr": 0.1}, inputs=["no-such:v9"])
    assert not run1.leader and run1.run_id == run0.run_id and "follower" in repr(run1)
    run1.log_metric("loss", 9.0, step=0)
    run1.log_metrics({"acc": 0.1})
    run1.log_param("rank", 1)
    run1.log_params({"x": 1})
    run1.set_tag("rank", "1")
    assert run1.log_input("whatever:v1") is None
    assert run1.log_model("m", b"weights") is None
    assert run1.log_checkpoint("c", b"state") is None
    run1.flush()
    run1.end()
    assert run1.status == "FINISHED"
    with pytest.raises(RunFinished):
        run1.log_metric("loss", 1.0)
    assert reg.refresh() == head  # the follower committed nothing

    with run0:
        run0.log_metric("loss", 1.0, step=0)
        run0.set_tag("rank", "0")
    runs = reg.runs()
    assert len(runs) == 1 and runs[0]["run_id"] == run0.run_id
    assert runs[0]["metrics"]["loss"]["count"] == 1 and runs[0]["tags"] == {"rank": "0"}
    assert "m" not in [a["name"] for a in reg.artifacts()]


def test_follower_touches_no_store(tmp_path):
    set_run_coordinator(lambda proposed: ("abcd1234abcd1234", False))
    path = tmp_path / "nothing-here"
    with Registry(str(path), index_path=":memory:").start_run("train") as run:
        run.log_metric("loss", 1.0)
    assert run.run_id == "abcd1234abcd1234"
    assert not path.exists()


def test_coordinator_checks(store):
    with pytest.raises(TypeError, match="fn must be a callable"):
        set_run_coordinator("rank0")
    set_run_coordinator(lambda proposed: ("bad id!", True))
    with pytest.raises(ValueError, match="run_id must be 4 to 64 letters"):
        Registry(store, index_path=":memory:").start_run("train")
    fn = lambda proposed: (proposed, True)  # noqa: E731
    set_run_coordinator(fn)
    assert run_coordinator() is fn
    assert set_run_coordinator(None) is fn and run_coordinator() is None


def test_bad_arguments_fail_before_coordinating(store):
    calls = []
    set_run_coordinator(lambda proposed: calls.append(proposed) or (proposed, True))
    reg = Registry(store, index_path=":memory:")
    with pytest.raises(ValueError, match="run name"):
        reg.start_run("bad name!")
    with pytest.raises(ValueError, match="run_id must be"):
        reg.start_run("train", run_id="x")
    assert calls == []  # every rank fails alike, none waits in the collective


def test_without_coordinator_every_call_is_its_own_run(store):
    reg = Registry(store, index_path=":memory:")
    a, b = reg.start_run("train"), reg.start_run("train")
    assert a.leader and b.leader and a.run_id != b.run_id
    a.end()
    b.end()
    assert len(reg.runs()) == 2


def test_reattach_by_id_continues_the_run(store):
    reg = Registry(store, index_path=":memory:")
    reg.register("base", b"weights")
    run = reg.start_run("train", params={"lr": 0.1}, run_id="slurm-4242")
    for step in range(3):
        run.log_metric("loss", 3.0 - step)
    run.flush()
    del run  # the job is killed: no run_end

    reg2 = Registry(store, index_path=":memory:")  # the requeued job
    again = reg2.start_run("train", params={"lr": 0.1, "requeued": True}, tags={"try": "2"},
                           run_id="slurm-4242", inputs=["base:v1"])
    assert again.run_id == "slurm-4242" and again.params == {"lr": 0.1, "requeued": True}
    again.log_metric("loss", 0.5)  # continues at step 3
    again.end()
    runs = reg2.runs()
    assert len(runs) == 1
    r = reg2.get_run("slurm-4242")
    assert r["status"] == "FINISHED"
    assert r["params"] == {"lr": 0.1, "requeued": True} and r["tags"] == {"try": "2"}
    assert r["metrics"]["loss"] == {"last": 0.5, "step": 3, "min": 0.5, "max": 3.0, "count": 4}
    assert r["inputs"] == ["base:v1"]
    hist = reg2.metric_history("slurm-4242", "loss").to_pydict()
    assert hist["step"] == [0, 1, 2, 3] and hist["value"] == [3.0, 2.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="run slurm-4242 is named 'train', not 'eval'"):
        reg2.start_run("eval", run_id="slurm-4242")
    assert reg2.get_run("slurm-4242")["inputs"] == ["base:v1"]


def test_run_id_from_the_environment_and_slurm_attempts(store, monkeypatch):
    # what `mlops submit` puts in a job: the run id, and Slurm's job id and restart count
    monkeypatch.setenv("MLOPS_RUN_ID", "sub-0001")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    reg = Registry(store, index_path=":memory:")
    first = reg.start_run("train")
    assert first.run_id == "sub-0001"
    assert reg.get_run("sub-0001")["tags"] == {"slurm.job_id": "77", "slurm.attempt": "1"}
    del first  # preempted: no run_end
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    again = Registry(store, index_path=":memory:").start_run("train")
    # the attempt shows at once, before the attempt ends (it may never end)
    assert reg.get_run("sub-0001")["tags"]["slurm.attempt"] == "3"
    again.end()
    assert len(reg.runs()) == 1 and reg.get_run("sub-0001")["status"] == "FINISHED"
    # a given run_id wins over the environment
    with reg.start_run("train", run_id="other-1") as r:
        assert r.run_id == "other-1"


def test_new_run_with_a_chosen_id(store):
    reg = Registry(store, index_path=":memory:")
    with reg.start_run("train", run_id="job-1") as run:
        assert run.run_id == "job-1"
    assert reg.get_run("job-1")["name"] == "train"


HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "mpi", "_dist_resume_worker.py")
BIN = os.path.dirname(sys.executable)
MPIEXEC = shutil.which("mpiexec", path=BIN)


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")
def test_two_real_ranks_make_one_run(tmp_path):
    pytest.importorskip("mpi4py")
    pytest.importorskip("torch")
    env = dict(os.environ, OMP_NUM_THREADS="1", MLOPS_CACHE_DIR=str(tmp_path / "cache"),
               PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run([MPIEXEC, "-n", "2", sys.executable, WORKER, "shared-run",
                        str(tmp_path / "store")], capture_output=True, text=True, timeout=120,
                       env=env, cwd=os.path.dirname(HERE))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 ranks: OK" in r.stdout
    with Registry(str(tmp_path / "store"), index_path=":memory:") as reg:
        assert len(reg.runs()) == 1
