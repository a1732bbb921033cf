"""``mlops submit`` and ``mlops jobs`` on a real Slurm cluster (two slurmd nodes on this host).

The cluster (tests/slurm_cluster.py) is started once for this module and stopped after
it, by the pids it started. The jobs run real ``srun --mpi=pmi2`` ranks of the pip
``mpich`` wheel. Without root or without Slurm the tests skip, except in CI, where
``.ci/run`` installs ``slurm-wlm`` and ``munge`` and they must run.
"""

import json
import os
import re
import subprocess
import sys
import time

import pytest
from slurm_cluster import CRED_EXPIRE, SlurmCluster, unavailable

HERE = os.path.dirname(os.path.abspath(__file__))
JOBS = os.path.join(HERE, "slurm_jobs")
MLOPS = [sys.executable, "-m", "engine.cli"]

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def cluster():
    why = unavailable()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Slurm tests: {why}")
        pytest.skip(why)
    c = SlurmCluster(nodes=2, cpus=2).start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def home(tmp_path):
    d = tmp_path / "store"
    return str(d)


def mlops(cluster, home, *args, env=None, timeout=120):
    e = {"MLOPS_HOME": home, "PYTHONUNBUFFERED": "1", **(env or {})}
    e = {k: v for k, v in e.items() if v is not None}
    return cluster.run([*MLOPS, *args], check=False, timeout=timeout, env=e)


def submit(cluster, home, *args, **kw) -> str:
    p = mlops(cluster, home, "submit", *args, **kw)
    assert p.returncode == 0, p.stderr
    job = p.stdout.strip()
    assert job.isdigit(), p.stdout
    return job


def jobs(cluster, home, *args) -> list:
    p = mlops(cluster, home, "jobs", "--json", *args)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_two_tasks_on_two_nodes_agree_and_the_run_has_the_job(cluster, home, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    job = submit(cluster, home, "--nodes", "2", "--ntasks-per-node", "1", "--time", "00:05:00",
                 os.path.join(JOBS, "_world_job.py"), str(out))
    assert job in [j["job_id"] for j in jobs(cluster, home)] or cluster.job(job)
    j = cluster.wait_job(job)
    assert j["JobState"] == "COMPLETED", open(jobs(cluster, home, "--all")[0]["log"]).read()
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert {r["size"] for r in ranks} == {2} and {r["nodes"] for r in ranks} == {2}
    assert {r["node"] for r in ranks} == {0, 1}  # one rank on each slurmd node
    assert {r["job"] for r in ranks} == {job} and len({r["run"] for r in ranks}) == 1
    # the registry: one run for the job, with the job id and the attempt
    from engine.registry import Registry

    run = Registry(home).get_run(ranks[0]["run"])
    assert run["slurm_job_id"] == job and run["world_size"] == 2 and run["status"] == "FINISHED"
    assert run["tags"]["slurm.job_id"] == job and run["tags"]["slurm.attempt"] == "1"
    assert run["metrics"]["rank_sum"]["last"] == 1.0
    # mlops jobs --all: the job, its state, attempts and log, found by job id and run id
    (info,) = [x for x in jobs(cluster, home, "--all") if x["job_id"] == job]
    assert info["run_id"] == ranks[0]["run"] and info["state"] == "COMPLETED"
    assert info["attempts"] == 1 and info["exit_code"] == 0 and os.path.exists(info["log"])
    assert info["log"].endswith(f"slurm-{job}.out")
    p = mlops(cluster, home, "jobs", "logs", job)
    assert p.returncode == 0 and f"job {job} attempt 1" in p.stdout
    assert mlops(cluster, home, "jobs", "logs", info["run_id"]).stdout == p.stdout
    # the script as submitted is kept beside the log
    sbatch = os.path.join(os.path.dirname(info["log"]), "job.sbatch")
    assert "srun --mpi=pmi2" in open(sbatch).read()


def test_a_failing_script_shows_its_failure_and_log(cluster, home):
    job = submit(cluster, home, os.path.join(JOBS, "_fail_job.py"))
    j = cluster.wait_job(job)
    assert j["JobState"] == "FAILED"
    (info,) = [x for x in jobs(cluster, home, "--all") if x["job_id"] == job]
    assert info["state"] == "FAILED" and info["exit_code"] == 1
    assert "the training data is missing" in open(info["log"]).read()
    table = mlops(cluster, home, "jobs", "--all").stdout
    row = next(line for line in table.splitlines() if line.startswith(job))
    assert "FAILED" in row and info["log"] in row
    assert job not in [x["job_id"] for x in jobs(cluster, home)]  # not active


def test_ranks_without_pmi_fail_fast_with_the_fix(cluster, home, tmp_path):
    # srun --mpi=none: two singletons that each think they are the whole world
    out = tmp_path / "out"
    out.mkdir()
    t0 = time.monotonic()
    job = submit(cluster, home, "--ntasks-per-node", "2", "--mpi", "none",
                 os.path.join(JOBS, "_world_job.py"), str(out))
    j = cluster.wait_job(job, timeout=90)
    assert j["JobState"] == "FAILED"
    assert time.monotonic() - t0 < 60  # fails at init(), not at a collective's timeout
    log = open(jobs(cluster, home, "--all")[-1]["log"]).read()
    assert "MPI sees a world of 1" in log and "srun --mpi=pmi2" in log
    assert not list(out.iterdir())  # no rank went on as a world of one


def test_bad_input_submits_nothing(cluster, home, tmp_path):
    script = os.path.join(JOBS, "_world_job.py")
    before = cluster.queue()
    p = mlops(cluster, home, "submit", "--partition", "nosuchpartition", script, str(tmp_path))
    assert p.returncode == 1 and "sbatch refused the job" in p.stderr
    assert "nosuchpartition" in p.stderr or "partition" in p.stderr.lower()
    p = mlops(cluster, home, "submit", "--nodes", "0", script)
    assert p.returncode == 2 and "expected an integer >= 1" in p.stderr
    p = mlops(cluster, home, "submit", str(tmp_path / "nope.py"))
    assert p.returncode == 2 and "no such script" in p.stderr
    p = mlops(cluster, home, "submit", script, env={"SLURM_JOB_ID": "12345"})
    assert p.returncode == 2 and "--allow-nested" in p.stderr
    p = mlops(cluster, home, "submit", script, env={"PATH": os.path.dirname(sys.executable)})
    assert p.returncode == 1 and "sbatch is not on PATH" in p.stderr
    assert cluster.queue() == before  # squeue: nothing was submitted
    assert jobs(cluster, home, "--all") == []


def test_monitor_watch_on_signal_submits_a_retraining_job(cluster, home, tmp_path):
    from test_monitor_watch import WINDOW, make_dir

    make_dir(tmp_path, shift=1.5)
    out = tmp_path / "retrain"
    out.mkdir()
    cmd = (f"{sys.executable} -m engine.cli submit --time 00:05:00 "
           f"{os.path.join(JOBS, '_retrain_job.py')} {out}")
    p = mlops(cluster, home, "monitor", "watch", str(tmp_path / "src"), "--reference",
              str(tmp_path / "ref.parquet"), "--window", str(WINDOW), "--ert", "100", "--json",
              "--on-signal", cmd)
    assert p.returncode == 1, p.stderr  # drift: the watch's own exit status
    signals = [json.loads(x) for x in p.stdout.splitlines() if '"signal"' in x]
    (sig,) = [s for s in signals if s["event"] == "signal"]
    (info,) = jobs(cluster, home, "--all")  # exactly one job was submitted
    assert info["job_id"] in p.stderr  # mlops submit's output went to the watch's stderr
    assert cluster.wait_job(info["job_id"])["JobState"] == "COMPLETED"
    got = json.loads((out / "retrain.json").read_text())
    assert got["job"] == info["job_id"]
    assert got["signal"] == {k: v for k, v in sig.items() if k != "event"}
    assert got["signal"]["cause"] == "drift"


TRAIN = os.path.join(JOBS, "_train_job.py")
STEPS, PAUSE = 24, 0.3
CRED_WAIT = CRED_EXPIRE + 5


def steps_run(out) -> list:
    p = out / "steps.txt"
    if not p.exists():
        return []
    return [tuple(map(int, line.split())) for line in p.read_text().splitlines() if line]


def job_logs(home) -> str:
    """Every job log under ``home``'s jobs directory, for failure messages."""
    logs = ""
    root = os.path.join(home, "jobs")
    for d in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        for n in sorted(os.listdir(os.path.join(root, d))):
            if n.endswith(".out"):
                with open(os.path.join(root, d, n), errors="replace") as f:
                    logs += f"\n--- {n}\n" + f.read()[-6000:]
    return logs


def wait_for(pred, timeout, what, home=None, cluster=None, job=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.3)
    logs = job_logs(home) if home is not None else ""  # what the job printed, to see why
    if cluster is not None and job is not None:
        j = cluster.job(job)
        logs += f"\n--- scontrol show job {job}\n{j}" + cluster.diagnose(j)
    raise TimeoutError(f"waited {timeout} s for {what}{logs}")


def uninterrupted(tmp_path) -> bytes:
    """The same training on 2 ranks of mpiexec, never signalled: the reference."""
    out = tmp_path / "reference"
    out.mkdir()
    bindir = os.path.dirname(sys.executable)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "MLOPS_", "PMI_"))}
    env.update(MLOPS_HOME=str(tmp_path / "reference-store"),
               PATH=bindir + os.pathsep + env.get("PATH", ""))
    subprocess.run([os.path.join(bindir, "mpiexec"), "-n", "2", sys.executable, TRAIN,
                    str(out), str(STEPS), "0"], env=env, check=True, timeout=180,
                   capture_output=True)
    return (out / "final.npy").read_bytes()


def test_preempted_job_checkpoints_requeues_and_resumes_exactly(cluster, home, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    job = submit(cluster, home, "--nodes", "2", "--ntasks-per-node", "1", "--time", "00:10:00",
                 TRAIN, str(out), str(STEPS), str(PAUSE))
    wait_for(lambda: len(steps_run(out)) >= 5, 120, "five steps of attempt 1", home, cluster, job)
    cluster.run(["scancel", "--signal=USR2", job])  # what --signal=USR2@90 sends the ranks
    j = cluster.wait_job(job, timeout=240)
    log = open(os.path.join(home, "jobs", os.listdir(os.path.join(home, "jobs"))[0],
                            f"slurm-{job}.out")).read()
    assert j["JobState"] == "COMPLETED" and j["Restarts"] == "1", log
    ran = steps_run(out)
    first = [s for a, s in ran if a == 1]
    second = [s for a, s in ran if a == 2]
    assert first and second and {a for a, _ in ran} == {1, 2}
    # no step repeated or skipped: attempt 2 starts right after the checkpointed step
    assert first == list(range(len(first))) and second == list(range(len(first), STEPS))
    assert f"resuming at step {len(first)}" in log and "attempt 2" in log
    assert (out / "final.npy").read_bytes() == uninterrupted(tmp_path)  # bit for bit
    (info,) = [x for x in jobs(cluster, home, "--all") if x["job_id"] == job]
    assert info["attempts"] == 2 and info["state"] == "COMPLETED" and info["exit_code"] == 0
    from engine.registry import Registry

    run = Registry(home).get_run(info["run_id"])
    assert run["status"] == "FINISHED" and run["tags"]["slurm.attempt"] == "2"
    assert run["tags"]["slurm.preempted_at_step"] == str(len(first) - 1)


def test_a_job_past_its_requeue_budget_stops_with_a_clear_state(cluster, home, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # one rank on each node: two ranks on one node under srun failed MPI_Init now and then
    # on this machine (UCX "failed to unpack address"; docs/slurm.md, troubleshooting)
    job = submit(cluster, home, "--max-requeues", "1", "--nodes", "2", "--ntasks-per-node", "1",
                 "--time", "00:10:00", TRAIN, str(out), str(STEPS * 4), str(PAUSE))
    for attempt in (1, 2):
        wait_for(lambda a=attempt: len([s for b, s in steps_run(out) if b == a]) >= 3, 180,
                 f"three steps of attempt {attempt}", home, cluster, job)
        cluster.run(["scancel", "--signal=USR2", job])
    j = cluster.wait_job(job, timeout=120)
    assert j["JobState"] == "FAILED" and j["ExitCode"].startswith("3:"), (j, job_logs(home))
    assert j["Restarts"] == "1"  # requeued once, then stopped
    assert max(s for _, s in steps_run(out)) < STEPS * 4 - 1  # it did stop early
    (info,) = [x for x in jobs(cluster, home, "--all") if x["job_id"] == job]
    assert info["state"] == "FAILED" and info["attempts"] == 2 and info["exit_code"] == 3
    assert "requeue budget exhausted" in info["reason"]
    from engine.registry import Registry

    tags = Registry(home).get_run(info["run_id"])["tags"]
    assert tags["slurm.state"] == "requeue-budget-exhausted" and tags["slurm.attempt"] == "2"
    log = open(info["log"]).read()
    assert "budget" in log and info["log"].endswith(f"slurm-{job}.out")


def test_the_cpu_example_batch_script_runs(cluster, home, tmp_path):
    root = os.path.dirname(HERE)
    p = cluster.run(["sbatch", "--parsable", "--nodes=2", "--ntasks-per-node=1",
                     "--cpus-per-task=1", "--time=00:05:00", f"--chdir={root}",
                     f"--output={tmp_path}/slurm-%j.out",
                     os.path.join(root, "examples", "slurm", "cpu.sbatch")],
                    env={"MLOPS_HOME": home, "PYTHON": sys.executable, "STEPS": "20"})
    job = p.stdout.strip().split(";")[0]
    j = cluster.wait_job(job, timeout=180)
    log = (tmp_path / f"slurm-{job}.out").read_text()
    assert j["JobState"] == "COMPLETED", log
    assert "2 rank(s)" in log and "done: accuracy" in log
    from engine.registry import Registry

    reg = Registry(home)
    (run,) = reg.runs()
    assert run["run_id"] == f"slurm-{job}" and run["slurm_job_id"] == job
    assert [mv.ref for mv in reg.versions("mnist")] == ["mnist:v1"]  # --every 20: step 20


def test_a_cancelled_job_checkpoints_and_stays_cancelled(cluster, home, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    job = submit(cluster, home, "--time", "00:10:00", TRAIN, str(out), str(STEPS * 4),
                 str(PAUSE))
    wait_for(lambda: len(steps_run(out)) >= 3, 120, "three steps", home, cluster, job)
    cluster.run(["scancel", job])  # SIGTERM, as at the time limit, but from a person
    j = cluster.wait_job(job, timeout=60, states=("CANCELLED",))
    time.sleep(CRED_WAIT)  # a requeued job would be back by now
    j = cluster.job(job)
    assert j["JobState"] == "CANCELLED" and j["Restarts"] == "0", j
    assert {a for a, _ in steps_run(out)} == {1}
    from engine.registry import Registry

    (info,) = [x for x in jobs(cluster, home, "--all") if x["job_id"] == job]
    tags = Registry(home).get_run(info["run_id"])["tags"]
    assert tags["slurm.state"] == "cancelled" and tags["slurm.signal"] == "TERM"
    assert tags["slurm.checkpoint"].startswith("slurm-train-ckpt:v")  # it did checkpoint


def test_the_time_limit_signal_requeues_and_the_job_finishes(cluster, home, tmp_path):
    # --signal TERM@20: the last-resort signal, 20 s before a one-minute limit; the early-end
    # check must not take it for a scancel
    out = tmp_path / "out"
    out.mkdir()
    steps = 150  # about 50 s of steps: more than one attempt can do before its warning
    job = submit(cluster, home, "--time", "00:01:00", "--signal", "TERM@20", TRAIN, str(out),
                 str(steps), str(PAUSE))
    j = cluster.wait_job(job, timeout=300)
    ran = steps_run(out)
    assert j["JobState"] == "COMPLETED" and int(j["Restarts"]) >= 1, (j, job_logs(home))
    assert [s for _, s in ran] == list(range(steps))  # every step once, across attempts
    (info,) = [x for x in jobs(cluster, home, "--all") if x["job_id"] == job]
    assert info["attempts"] == int(j["Restarts"]) + 1
    assert "preempted (SIGTERM)" in open(info["log"]).read()


def test_the_demo_trains_through_mlops_submit(cluster, tmp_path):
    pytest.importorskip("torch")
    wd = tmp_path / "demo"
    p = cluster.run([*MLOPS, "demo", "--fast", "--slurm", "--dir", str(wd)], check=False,
                    timeout=900, env={"PYTHONUNBUFFERED": "1"})
    assert p.returncode == 0, p.stdout + p.stderr + job_logs(str(wd / ".mlops"))
    submitted = re.findall(r"submitted Slurm job (\d+)", p.stdout)
    assert len(submitted) == 2  # the training, and the retraining
    assert f"glucose:v1 on 2 rank(s) (Slurm job {submitted[0]}, 2 nodes x 1 rank" in p.stdout
    assert "a Russian note rejected: note: unseen_script" in p.stdout
    assert "1 RetrainSignal(s)" in p.stdout and "-> glucose:v2 @production" in p.stdout
    from engine.registry import Registry

    reg = Registry(str(wd / ".mlops"))
    try:
        run = reg.get_run(reg.get("glucose:v1").run_id)
        assert run["slurm_job_id"] == submitted[0] and run["world_size"] == 2
    finally:
        reg.close()
