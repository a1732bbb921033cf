"""engine.dist.preempt: Slurm's warning signal -> one agreed stop -> checkpoint -> requeue.

In-process tests run in a world of one: argument checks, handlers installed and put
back, a real signal sent to this process, ``stop()`` under a faked Slurm job (the
environment that ``engine.env`` reads; a fake ``scontrol`` on ``PATH`` for the automatic
requeue) with the tags on a real registry run, and a ``Checkpointer`` that stops on the
signal and resumes exactly. The tests at the end run real ranks (``mpiexec -n 2``,
tests/mpi/_dist_preempt_worker.py): only rank 1 gets SIGUSR2, both ranks stop after the
same step with one checkpoint and the same exit code, and a relaunch finishes with the
parameters of an uninterrupted run, byte for byte.
"""

# NumPy's legacy global generator is what checkpoints must restore: this file uses it.
# ruff: noqa: NPY002
from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest

from engine.dist import preempt
from engine.dist.checkpoint import Checkpointer
from engine.dist.preempt import EXIT_REQUEUED, EXIT_STOPPED, Preempted, Preemption
from engine.dist.world import World
from engine.registry import Registry

try:
    import torch
except ImportError:  # the Checkpointer tests need it
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
if torch is not None:
    torch.set_num_threads(1)

HANDLED = (signal.SIGUSR2, signal.SIGTERM)
_ENV = ("SLURM_JOB_ID", "SLURM_RESTART_COUNT", "MLOPS_PREEMPT_SIGNALS", "MLOPS_MAX_REQUEUES")


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    """No Slurm job and no preemption settings unless a test sets them; the signal
    handlers and the shared automatic Preemption as they were before the test."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    before = {s: signal.getsignal(s) for s in HANDLED}
    yield
    if preempt._AUTO is not None:
        preempt._AUTO.uninstall()
        preempt._AUTO = None
    for s, h in before.items():
        signal.signal(s, signal.SIG_DFL if h is None else h)


@pytest.fixture
def reg(tmp_path):
    r = Registry(str(tmp_path / "store"), index_path=":memory:")
    yield r
    r.close()


def fresh(reg):
    """The registry's store read again from its log (what another process would see)."""
    return Registry(reg.store.root, index_path=":memory:")


# ----------------------------------------------------------------------------- arguments


def test_defaults_and_environment(monkeypatch):
    p = Preemption()
    assert p.signals == ("USR2", "TERM") and p.max_requeues == 3 and p.requeue is None
    assert not p.installed and not p.requested and p.signal is None
    monkeypatch.setenv("MLOPS_PREEMPT_SIGNALS", " sigusr2, TERM ,usr2")
    monkeypatch.setenv("MLOPS_MAX_REQUEUES", "5")
    p = Preemption()
    assert p.signals == ("USR2", "TERM") and p.max_requeues == 5
    # arguments win over the environment; numbers and Signals work
    p = Preemption([int(signal.SIGUSR2), signal.SIGINT], max_requeues=0)
    assert p.signals == ("USR2", "INT") and p.max_requeues == 0
    assert Preemption("USR2,HUP").signals == ("USR2", "HUP")


@pytest.mark.parametrize("bad, match", [
    (["USR9"], "signals: unknown signal name 'USR9'"),
    (["KILL"], "SIGKILL cannot be caught"),
    (["USR2", "SIGSTOP"], "SIGSTOP cannot be caught"),
    ([int(signal.SIGKILL)], "SIGKILL cannot be caught"),
    ([], "at least one signal"),
    ([1.5], "signals: a signal must be a name"),
    ([""], "signals: a signal must be a name"),
    (["_DFL"], "unknown signal name"),
])
def test_bad_signals_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        Preemption(bad)


def test_bad_arguments_and_environment(monkeypatch):
    for bad in (-1, True, 1.0, "3"):
        with pytest.raises(ValueError, match="max_requeues must be an integer >= 0"):
            Preemption(max_requeues=bad)
    for bad in (True, "scontrol", 7):
        with pytest.raises(ValueError, match="requeue must be None"):
            Preemption(requeue=bad)
    with pytest.raises(TypeError, match="world must be"):
        Preemption(world="rank 0")
    monkeypatch.setenv("MLOPS_PREEMPT_SIGNALS", "USR2,BOGUS")
    with pytest.raises(ValueError, match="MLOPS_PREEMPT_SIGNALS: unknown signal name 'BOGUS'"):
        Preemption()
    monkeypatch.setenv("MLOPS_PREEMPT_SIGNALS", "KILL")
    with pytest.raises(ValueError, match="MLOPS_PREEMPT_SIGNALS: SIGKILL cannot be caught"):
        Preemption()
    monkeypatch.setenv("MLOPS_PREEMPT_SIGNALS", ",")
    with pytest.raises(ValueError, match="MLOPS_PREEMPT_SIGNALS must list"):
        Preemption()
    monkeypatch.delenv("MLOPS_PREEMPT_SIGNALS")
    for bad in ("-1", "three"):
        monkeypatch.setenv("MLOPS_MAX_REQUEUES", bad)
        with pytest.raises(ValueError, match="MLOPS_MAX_REQUEUES must be an integer >= 0"):
            Preemption()


# ----------------------------------------------------------------------------- handlers


def test_install_sets_flag_only_and_uninstall_restores_handlers():
    calls = []

    def mine(signum, frame):
        calls.append(signum)

    signal.signal(signal.SIGUSR2, mine)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    p = Preemption()
    assert p.install() is p and p.install() is p  # idempotent
    assert p.installed
    assert signal.getsignal(signal.SIGUSR2) not in (mine, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGUSR2)
    assert p.requested and p.signal == "USR2" and p.signalled_at is not None
    assert calls == []  # the handler only sets the flag
    first = p.signalled_at
    os.kill(os.getpid(), signal.SIGTERM)  # a second signal keeps the first one's record
    assert p.signal == "USR2" and p.signalled_at == first
    p.uninstall()
    assert signal.getsignal(signal.SIGUSR2) is mine
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    assert not p.installed and p.requested  # the flag stays
    p.uninstall()  # a second uninstall does nothing
    os.kill(os.getpid(), signal.SIGUSR2)
    assert calls == [signal.SIGUSR2]


def test_context_manager_and_sigterm():
    before = signal.getsignal(signal.SIGTERM)
    with Preemption(["TERM"]) as p:
        assert p.installed and not p.requested
        os.kill(os.getpid(), signal.SIGTERM)  # would end pytest without the handler
        assert p.requested and p.signal == "TERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_install_outside_the_main_thread_fails_clearly():
    p = Preemption(["USR2"])
    errors = []

    def target():
        try:
            p.install()
        except RuntimeError as exc:
            errors.append(str(exc))

    t = threading.Thread(target=target)
    t.start()
    t.join(30)
    assert len(errors) == 1 and "main thread" in errors[0]
    assert not p.installed


def test_agreed_in_a_world_of_one_is_the_local_flag():
    world = World(0, 1, 0, 1, 0, 1, ("h",), None, 60.0)
    with Preemption(["USR2"], world=world) as p:
        assert [p.agreed(s) for s in range(3)] == [False, False, False]
        os.kill(os.getpid(), signal.SIGUSR2)
        assert p.agreed(3) is True
    assert p.agreed(4) is True  # stays agreed, even uninstalled


# ----------------------------------------------------------------------------- stop


def signalled(**kw) -> Preemption:
    p = Preemption(["USR2"], **kw).install()
    os.kill(os.getpid(), signal.SIGUSR2)
    assert p.agreed(9)
    p.uninstall()
    return p


def test_stop_requeues_within_the_budget_and_tags_the_run(monkeypatch, reg):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    calls = []
    p = signalled(max_requeues=3, requeue=calls.append)
    run = reg.start_run("train")
    with pytest.raises(Preempted) as info:
        p.stop(run, "ck:v4")
    exc = info.value
    assert calls == ["7"]
    assert isinstance(exc, SystemExit) and exc.code == EXIT_REQUEUED == 0
    assert (exc.state, exc.step, exc.checkpoint, exc.signal) == ("requeued", 9, "ck:v4", "USR2")
    assert (exc.attempt, exc.max_requeues) == (2, 3)
    msg = str(exc)
    assert "SIGUSR2" in msg and "after step 9" in msg and "ck:v4" in msg
    assert "requeued job 7 as attempt 3 of at most 4" in msg and "at step 10" in msg
    run.end()
    tags = fresh(reg).get_run(run.id)["tags"]
    assert {k: v for k, v in tags.items() if k.startswith("slurm.") and k != "slurm.job_id"} \
        == {"slurm.state": "requeued", "slurm.attempt": "2", "slurm.preempted_at_step": "9",
            "slurm.checkpoint": "ck:v4", "slurm.signal": "USR2"}


@pytest.mark.parametrize("restarts", ["3", "4"])
def test_stop_with_the_budget_exhausted_does_not_requeue(monkeypatch, reg, restarts):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_RESTART_COUNT", restarts)
    calls = []
    p = signalled(max_requeues=3, requeue=calls.append)
    with reg.start_run("train") as run, pytest.raises(Preempted) as info:
        p.stop(run, "ck:v4", step=11)
    assert calls == []
    exc = info.value
    assert exc.code == EXIT_STOPPED == 3 and exc.state == "requeue-budget-exhausted"
    msg = str(exc)
    assert "budget is exhausted" in msg and f"after {restarts} requeue(s) of at most 3" in msg
    assert "submit the job again" in msg and "scontrol requeue 7" in msg and "ck:v4" in msg
    tags = fresh(reg).get_run(run.id)["tags"]
    assert tags["slurm.state"] == "requeue-budget-exhausted"
    assert tags["slurm.attempt"] == str(int(restarts) + 1)
    assert tags["slurm.preempted_at_step"] == "11"


def test_max_requeues_zero_never_requeues(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    calls = []
    with pytest.raises(Preempted) as info:
        signalled(max_requeues=0, requeue=calls.append).stop()
    assert calls == [] and info.value.code == 3
    assert info.value.state == "requeue-budget-exhausted"


def test_stop_without_a_way_to_requeue(monkeypatch, reg):
    run = reg.start_run("train")
    with pytest.raises(Preempted) as info:  # requeue=None outside Slurm: no scontrol
        signalled().stop(run, "ck:v1")
    assert info.value.code == 3 and info.value.state == "preempted"
    assert "not a Slurm job" in str(info.value)
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    with pytest.raises(Preempted) as info:
        signalled(requeue=False).stop(run, "ck:v1")
    assert info.value.code == 3 and "requeue=False" in str(info.value)
    assert fresh(reg).get_run(run.id)["tags"]["slurm.state"] == "preempted"


def test_stop_on_a_follower_rank_run_tags_nothing(monkeypatch, reg):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    run = reg.start_run("train")
    run.leader = False  # what the other ranks of a job hold
    with pytest.raises(Preempted):
        signalled(requeue=lambda job: None).stop(run, "ck:v1")
    assert not any(k.startswith("slurm.state") for k in fresh(reg).get_run(run.id)["tags"])


def test_a_failing_requeue_callable_is_reported(monkeypatch, reg):
    monkeypatch.setenv("SLURM_JOB_ID", "7")

    def broken(job):
        raise OSError("controller unreachable")

    with reg.start_run("train") as run, pytest.raises(Preempted) as info:
        signalled(requeue=broken).stop(run, "ck:v1")
    assert info.value.code == 3 and info.value.state == "requeue-failed"
    assert "controller unreachable" in str(info.value)
    assert fresh(reg).get_run(run.id)["tags"]["slurm.state"] == "requeue-failed"


def fake_scontrol(tmp_path, monkeypatch, code=0, say=""):
    """An ``scontrol`` first on PATH that logs its arguments and exits with ``code``."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "scontrol.log"
    exe = bindir / "scontrol"
    exe.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\necho "{say}" >&2\nexit {code}\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    return log


@pytest.mark.skipif(shutil.which("sh") is None, reason="no /bin/sh")
def test_automatic_requeue_runs_scontrol(tmp_path, monkeypatch):
    log = fake_scontrol(tmp_path, monkeypatch)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    with pytest.raises(Preempted) as info:
        signalled().stop(checkpoint="ck:v2")
    assert info.value.code == 0 and info.value.state == "requeued"
    assert log.read_text() == "requeue 4242\n"


@pytest.mark.skipif(shutil.which("sh") is None, reason="no /bin/sh")
def test_a_failing_scontrol_is_reported_with_what_it_said(tmp_path, monkeypatch):
    log = fake_scontrol(tmp_path, monkeypatch, code=1,
                        say="scontrol: error: Requested operation is presently disabled")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    with pytest.raises(Preempted) as info:
        signalled().stop(checkpoint="ck:v2")
    msg = str(info.value)
    assert info.value.code == 3 and info.value.state == "requeue-failed"
    assert "'scontrol requeue 4242' exited 1" in msg and "presently disabled" in msg
    assert "sbatch --requeue" in msg
    assert log.read_text() == "requeue 4242\n"


def test_missing_scontrol_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol there
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    with pytest.raises(Preempted) as info:
        signalled().stop()
    assert info.value.state == "requeue-failed" and "scontrol is not on PATH" in str(info.value)


# ----------------------------------------------------------------------------- Checkpointer

class Position:
    def __init__(self):
        self.position = 0

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]


def build():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Dropout(0.3),
                                torch.nn.Linear(8, 1)).double()
    return model, torch.optim.AdamW(model.parameters(), lr=0.05), Position()


def train(model, opt, loader, ckpt, start, stop, signal_at=None):
    g = torch.Generator().manual_seed(1234)
    x_all = torch.randn(24, 3, generator=g, dtype=torch.float64)
    y_all = torch.randn(24, 1, generator=g, dtype=torch.float64)
    for step in range(start, stop):
        loader.position = step + 1
        idx = torch.as_tensor(np.random.default_rng([5, step]).choice(24, 4, replace=False))
        x = x_all[idx] + torch.from_numpy(np.random.normal(0, 0.01, (4, 3)))
        loss = (1.0 + random.random()) * ((model(x) - y_all[idx]) ** 2).mean()
        loss.backward()
        if step == signal_at:
            os.kill(os.getpid(), signal.SIGUSR2)
        opt.step()
        opt.zero_grad()
        if ckpt is not None:
            ckpt.maybe_save(step, model, opt, loader)


def seed_all(s):
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)


@needs_torch
def test_checkpointer_stops_on_the_signal_and_resume_is_exact(reg):
    model, opt, loader = build()
    seed_all(1)
    train(model, opt, loader, None, 0, 12)
    want = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    model, opt, loader = build()
    seed_all(1)
    run = reg.start_run("train")
    ckpt = Checkpointer("pre", run=run, registry=reg, every_steps=4,
                        preemption=Preemption(["USR2"], requeue=False))
    assert ckpt.preemption.installed
    with run, pytest.raises(Preempted) as info:
        train(model, opt, loader, ckpt, 0, 12, signal_at=5)
    exc = info.value
    assert (exc.code, exc.step, exc.checkpoint, exc.state) == (3, 5, "pre:v2", "preempted")
    ckpt.preemption.uninstall()
    assert [mv.tags["step"] for mv in reg.versions("pre")] == ["4", "6"]
    tags = fresh(reg).get_run(run.id)["tags"]
    assert tags["slurm.checkpoint"] == "pre:v2" and tags["slurm.preempted_at_step"] == "5"

    model, opt, loader = build()  # a new process: other RNG states
    seed_all(99)
    again = Checkpointer("pre", registry=fresh(reg), every_steps=4, preemption=None)
    start = again.resume(model, opt, loader)
    assert start == 6
    train(model, opt, loader, again, start, 12)
    got = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert got.numpy().tobytes() == want.numpy().tobytes()


@needs_torch
def test_checkpointer_keeps_its_cadence_without_a_signal(reg):
    model, opt, _ = build()
    ckpt = Checkpointer("c", registry=reg, every_steps=3, preemption=Preemption(["USR2"]))
    assert [ckpt.maybe_save(s, model, opt) for s in range(6)] == [None, None, "c:v1",
                                                                   None, None, "c:v2"]
    ckpt.preemption.uninstall()


def test_checkpointer_auto_preemption(monkeypatch, reg):
    assert Checkpointer("a", registry=reg).preemption is None  # no Slurm, no setting
    assert Checkpointer("a", registry=reg, preemption=None).preemption is None
    monkeypatch.setenv("MLOPS_PREEMPT_SIGNALS", "USR2")
    one = Checkpointer("a", registry=reg).preemption
    two = Checkpointer("b", registry=reg, preemption="auto").preemption
    assert one is two and one.installed and one.signals == ("USR2",)  # one per process
    one.uninstall()
    preempt._AUTO = None
    monkeypatch.delenv("MLOPS_PREEMPT_SIGNALS")
    monkeypatch.setenv("SLURM_JOB_ID", "12")  # a Slurm job: the default signals
    p = Checkpointer("a", registry=reg).preemption
    assert p is not None and p.installed and p.signals == ("USR2", "TERM")
    with pytest.raises(TypeError, match="preemption must be 'auto', None or"):
        Checkpointer("a", registry=reg, preemption="yes")
    mine = Preemption(["USR2"])
    assert Checkpointer("a", registry=reg, preemption=mine).preemption is mine
    assert mine.installed  # installed by the Checkpointer
    mine.uninstall()


def test_exports():
    import engine.dist as dist

    assert dist.Preemption is Preemption and dist.Preempted is Preempted
    assert {"Preemption", "Preempted"} <= set(dist.__all__)


# ----------------------------------------------------------------------------- real ranks

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "mpi", "_dist_preempt_worker.py")
BIN = os.path.dirname(sys.executable)
MPIEXEC = shutil.which("mpiexec", path=BIN)
needs_mpi = pytest.mark.skipif(MPIEXEC is None or torch is None
                               or importlib.util.find_spec("mpi4py") is None,
                               reason="no mpiexec or torch (pip install mpich mpi4py torch)")


def mpirun(*args, tmp_path, env=None, timeout=120):
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k not in _ENV}
    base.update(OMP_NUM_THREADS="1", PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
                MLOPS_CACHE_DIR=str(tmp_path / "cache"), MLOPS_DIST_TIMEOUT="60",
                MLOPS_PREEMPT_SIGNALS="USR2")
    base.update(env or {})
    return subprocess.run([MPIEXEC, "-n", "2", sys.executable, WORKER, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=base,
                          cwd=os.path.dirname(HERE))


def stops(out) -> list[dict]:
    return [json.loads((out.parent / f"{out.name}.stop.{r}.json").read_text()) for r in (0, 1)]


def steps_run(out) -> list[int]:
    return [int(s) for s in (out.parent / f"{out.name}.steps").read_text().split()]


@needs_mpi
def test_signal_to_one_rank_stops_both_requeues_and_resume_is_exact(tmp_path):
    """Only rank 1 gets SIGUSR2, during step 5, in a (faked) Slurm job 4242: both ranks
    stop after step 5, one checkpoint (position 6) is saved, rank 0 requeues once (a
    fake requeue) and both exit 0. The relaunch (SLURM_RESTART_COUNT=1) resumes at step
    6 and ends with the parameters of an uninterrupted run, byte for byte."""
    store, out = tmp_path / "store", tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "requeued"
    ref = mpirun("train", store / "ref", out / "ref", 12, "-", "auto", tmp_path=tmp_path)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    job = {"SLURM_JOB_ID": "4242"}
    first = mpirun("train", store / "job", out / "job", 12, "5:1", marker, tmp_path=tmp_path,
                   env=job)
    assert first.returncode == 0, first.stdout + first.stderr
    assert not (out / "job.npy").exists()  # it stopped before the end
    r0, r1 = stops(out / "job")
    assert r1["requested"] and not r0["requested"]  # the signal reached rank 1 only
    for r in (r0, r1):
        assert (r["step"], r["exc_step"], r["code"], r["state"], r["signal"]) == \
            (5, 5, 0, "requeued", "USR2"), r
    assert r0["checkpoint"] == r1["checkpoint"] and r0["message"] == r1["message"]
    assert "requeued job 4242 as attempt 2 of at most 4" in r0["message"]
    assert "requeued job 4242" in first.stderr
    assert marker.read_text() == "4242\n"  # rank 0 requeued, once
    assert steps_run(out / "job") == list(range(6))
    with Registry(str(store / "job"), index_path=":memory:") as reg:
        assert [mv.tags["step"] for mv in reg.versions("preempt-test")] == ["4", "6"]
        assert reg.get(r0["checkpoint"]).tags["step"] == "6"
        tags = reg.runs()[0]["tags"]
        assert (tags["slurm.state"], tags["slurm.attempt"], tags["slurm.preempted_at_step"],
                tags["slurm.checkpoint"]) == ("requeued", "1", "5", r0["checkpoint"])

    again = mpirun("train", store / "job", out / "job", 12, "-", marker, tmp_path=tmp_path,
                   env={**job, "SLURM_RESTART_COUNT": "1"})
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resumed at step 6" in again.stdout
    assert steps_run(out / "job") == list(range(12))  # every step once
    assert marker.read_text() == "4242\n"
    a, b = np.load(out / "ref.npy"), np.load(out / "job.npy")
    assert a.tobytes() == b.tobytes()  # bit-identical
    with Registry(str(store / "job"), index_path=":memory:") as reg:
        runs = reg.runs()
        assert len(runs) == 1 and runs[0]["status"] == "FINISHED"


@needs_mpi
@pytest.mark.parametrize("case", ["no-slurm", "budget-exhausted"])
def test_signal_without_requeue_stops_both_ranks_with_code_3(tmp_path, case):
    """Outside Slurm (``preemption="auto"`` from MLOPS_PREEMPT_SIGNALS), or in a Slurm
    job that was requeued 3 times already: both ranks stop after step 2, checkpoint, and
    exit 3; nothing is requeued."""
    store, out = tmp_path / "store", tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "requeued"
    if case == "no-slurm":
        env, requeue, state = {}, "auto", "preempted"
    else:
        env = {"SLURM_JOB_ID": "99", "SLURM_RESTART_COUNT": "3"}
        requeue, state = marker, "requeue-budget-exhausted"
    r = mpirun("train", store, out / "job", 12, "2:1", requeue, tmp_path=tmp_path, env=env)
    assert r.returncode == 3, r.stdout + r.stderr
    for s in stops(out / "job"):
        assert (s["step"], s["code"], s["state"]) == (2, 3, state), s
    assert not marker.exists()
    assert steps_run(out / "job") == [0, 1, 2]
    with Registry(str(store), index_path=":memory:") as reg:
        assert [mv.tags["step"] for mv in reg.versions("preempt-test")] == ["3"]
        run = reg.runs()[0]
        assert run["tags"]["slurm.state"] == state and run["status"] == "KILLED"


def _term_preemption():
    p = Preemption(["TERM"], max_requeues=3).install()
    os.kill(os.getpid(), signal.SIGTERM)
    assert p.agreed(4)
    p.uninstall()
    return p


@pytest.mark.parametrize(("end", "state"), [
    ("2026-12-04T10:03:00", "cancelled"),        # ended 57 min before its 1 h limit: scancel
    ("2026-12-04T11:00:00", "requeue-failed"),   # at the limit: requeue (scontrol missing here)
])
def test_sigterm_requeues_only_at_the_time_limit(monkeypatch, end, state):
    from engine.dist import slurm

    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("PATH", "/nonexistent")  # no scontrol: a requeue attempt would fail
    info = {"JobId": "7", "JobState": "COMPLETING", "TimeLimit": "01:00:00",
            "StartTime": "2026-12-04T10:00:00", "EndTime": end}
    monkeypatch.setattr(slurm, "show_job", lambda job: info if job == "7" else None)
    with pytest.raises(Preempted) as exc:
        _term_preemption().stop(None, "ck:v1")
    assert exc.value.state == state and exc.value.code == EXIT_STOPPED
    if state == "cancelled":
        assert "the job was cancelled" in str(exc.value)
    else:
        assert "scontrol is not on PATH" in str(exc.value)


def test_durations_of_slurm_time_limits():
    assert [preempt._duration(t) for t in ("00:10:00", "1-00:00:00", "05:30", "2-03:04:05",
                                           "UNLIMITED", "", "Partition_Limit")] == \
        [600.0, 86400.0, 330.0, 183845.0, None, None, None]


def test_under_a_batch_script_rank_0_asks_it_to_requeue(monkeypatch, tmp_path):
    # mlops submit's batch script requeues after srun returns, when it finds this file
    marker = tmp_path / "requeue-7"
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("MLOPS_REQUEUE_MARKER", str(marker))
    monkeypatch.setenv("PATH", "/nonexistent")  # scontrol must not be needed
    with pytest.raises(Preempted) as exc:
        signalled(max_requeues=3).stop(None, "ck:v2")
    assert exc.value.code == EXIT_REQUEUED and exc.value.state == "requeued"
    assert marker.read_text() == "7\n"
    # a marker that cannot be written is a failed requeue, said as such
    monkeypatch.setenv("MLOPS_REQUEUE_MARKER", str(tmp_path / "no" / "such" / "dir" / "m"))
    with pytest.raises(Preempted) as exc:
        signalled(max_requeues=3).stop(None, "ck:v2")
    assert exc.value.state == "requeue-failed" and "requeue marker" in str(exc.value)
