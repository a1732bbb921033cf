"""A real, throw-away Slurm cluster on this machine, for the tests (tests/test_slurm.py).

:class:`SlurmCluster` starts ``munged``, ``slurmctld`` and one ``slurmd`` per node from
Debian's ``slurm-wlm`` and ``munge`` packages, all as root, in a fresh temporary
directory with a generated ``slurm.conf``: the nodes are named ``n1``, ``n2``, ... and
all run on this host (``slurmd -N NAME``, each on its own port), ports are picked free
on 127.0.0.1, ``cred_expire`` is short so that a requeued job restarts within seconds,
and ``ProctrackType=proctrack/linuxproc``, ``TaskPlugin=task/none``,
``SelectType=select/cons_tres`` with a partition that may be oversubscribed (the
machine has 2 cores). :meth:`stop` cancels every job, then stops the daemons by the pids
it started (SIGTERM, then SIGKILL), and removes the directory.

Clients (``sbatch``, ``squeue``, ``srun`` inside jobs) find the cluster through
``SLURM_CONF`` in :attr:`env`.

``.ci/run`` installs the packages; :func:`unavailable` says why a machine cannot run
the cluster (not root, packages missing), and tests skip with that reason only outside
CI.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

DAEMONS = ("munged", "slurmctld", "slurmd")
CRED_EXPIRE = 10  # seconds; Slurm's default 120 would make every requeue wait two minutes


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")


def unavailable() -> str | None:
    """Why a cluster cannot start here, or None."""
    if os.name != "posix" or os.geteuid() != 0:
        return "the test cluster runs slurmctld, slurmd and munged as root; not root here"
    missing = [d for d in DAEMONS + ("sbatch", "squeue", "scontrol", "srun", "scancel")
               if _which(d) is None]
    if missing:
        return (f"Slurm is not installed ({', '.join(missing)} missing): "
                "apt-get install slurm-wlm munge (.ci/run does)")
    return None


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class SlurmCluster:
    """A one-host Slurm cluster of ``nodes`` nodes with ``cpus`` CPUs each."""

    def __init__(self, nodes: int = 2, cpus: int = 2):
        self.nodes = [f"n{i + 1}" for i in range(nodes)]
        self.cpus = cpus
        self.dir = tempfile.mkdtemp(prefix="mlops-slurm-")
        self.host = socket.gethostname()
        self.pids: dict[str, int] = {}
        self.conf = os.path.join(self.dir, "slurm.conf")
        # PYTHONFAULTHANDLER: a job's Python ranks print every thread's stack on SIGABRT,
        # which wait_job sends them when a job overstays (see diagnose)
        self.env = dict(os.environ, SLURM_CONF=self.conf, PYTHONFAULTHANDLER="1")
        self.env.pop("SLURM_JOB_ID", None)

    # ------------------------------------------------------------------ config
    def _epilog(self) -> str:
        path = os.path.join(self.dir, "epilog.sh")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n"
                    "# remove MPICH shared memory that no live process maps (killed ranks')\n"
                    "for f in /dev/shm/mpich_shm_*; do\n"
                    "  [ -e \"$f\" ] || continue\n"
                    "  grep -qsF \"$f\" /proc/[0-9]*/maps || rm -f \"$f\"\n"
                    "done\n"
                    "exit 0\n")
        os.chmod(path, 0o755)
        return path

    def _write_conf(self) -> None:
        d = self.dir
        ctld, *node_ports = _free_ports(1 + len(self.nodes))
        for sub in ("state", "spool", "log", "munge", "run"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        os.chmod(os.path.join(d, "munge"), 0o700)
        lines = [
            "ClusterName=mlopstest",
            # job ids that no earlier test cluster used: MPICH names its shared-memory
            # segments after the PMI job id ("1.0"), and a segment left by a killed job of an
            # earlier cluster breaks MPI_Init of a new job of that id ("Out of memory", UCX
            # address errors). SystemRandom: tests seed the random module, and a seeded id
            # repeats across runs (it did: 51165754 twice)
            f"FirstJobId={random.SystemRandom().randrange(10_000, 60_000_000)}",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={ctld}",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge",
            f"AuthInfo=socket={d}/munge/munge.sock,cred_expire={CRED_EXPIRE}",
            f"StateSaveLocation={d}/state",
            f"SlurmdSpoolDir={d}/spool/%n",
            f"SlurmctldPidFile={d}/run/slurmctld.pid",
            f"SlurmdPidFile={d}/run/slurmd-%n.pid",
            f"SlurmctldLogFile={d}/log/slurmctld.log",
            f"SlurmdLogFile={d}/log/slurmd-%n.log",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/backfill", "SchedulerParameters=sched_interval=1",
            "MpiDefault=none", "ReturnToService=2", "JobRequeue=1",
            "MinJobAge=600", "KillWait=5", "SlurmctldTimeout=30", "SlurmdTimeout=30",
            "InactiveLimit=0", "Waittime=0", "SlurmctldDebug=info", "SlurmdDebug=info",
            "JobCompType=jobcomp/none", "AccountingStorageType=accounting_storage/none",
            # A requeued job keeps its id, so its next attempt's MPICH would attach to the
            # shared-memory segments that the preempted attempt's killed ranks left behind
            # (same PMI job id "<id>.0": broken PMI requests, UCX "addr version" asserts).
            # Real clusters clean /dev/shm per job (job_container/tmpfs or an epilog);
            # this one does it in an epilog, sparing segments a live process maps.
            f"Epilog={self._epilog()}",
        ]
        for name, port in zip(self.nodes, node_ports):
            lines.append(f"NodeName={name} NodeHostname={self.host} NodeAddr=127.0.0.1 "
                         f"Port={port} CPUs={self.cpus} RealMemory=2000 State=UNKNOWN")
        lines.append(f"PartitionName=debug Nodes={','.join(self.nodes)} Default=YES "
                     "MaxTime=INFINITE State=UP OverSubscribe=YES")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        key = os.path.join(d, "munge", "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)

    # ------------------------------------------------------------------ life
    def _start(self, name: str, argv: list[str], pidfile: str) -> None:
        subprocess.run(argv, env=self.env, check=True, timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(100):
            try:
                with open(pidfile) as f:
                    self.pids[name] = int(f.read().strip())
                return
            except (OSError, ValueError):
                time.sleep(0.05)
        raise RuntimeError(f"{name} wrote no pid file {pidfile}; see {self.dir}/log")

    def start(self, timeout: float = 60.0) -> SlurmCluster:
        """Start the daemons and wait until every node is idle."""
        self._write_conf()
        d = self.dir
        try:
            self._start("munged", [_which("munged"), "-f", f"--key-file={d}/munge/munge.key",
                                   f"--socket={d}/munge/munge.sock",
                                   f"--pid-file={d}/munge/munged.pid",
                                   f"--log-file={d}/munge/munged.log",
                                   f"--seed-file={d}/munge/seed"], f"{d}/munge/munged.pid")
            self._start("slurmctld", [_which("slurmctld"), "-f", self.conf],
                        f"{d}/run/slurmctld.pid")
            for n in self.nodes:
                self._start(f"slurmd-{n}", [_which("slurmd"), "-f", self.conf, "-N", n],
                            f"{d}/run/slurmd-{n}.pid")
            self.wait_idle(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        states = ""
        while time.monotonic() < deadline:
            p = self.run(["sinfo", "-h", "-N", "-o", "%N %t"], check=False)
            states = p.stdout.strip()
            lines = [ln.split() for ln in states.splitlines()]
            if len(lines) == len(self.nodes) and all(s in ("idle", "mix") for _, s in lines):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the test cluster's nodes did not become idle in {timeout:.0f} s "
                           f"(sinfo: {states!r}); logs in {self.dir}/log")

    def stop(self) -> None:
        """Cancel every job, stop the daemons this object started, remove the directory."""
        if self.pids.get("slurmctld"):
            self.run(["scancel", "--full", "--quiet", "-u", "root"], check=False, timeout=10)
        for name in sorted(self.pids, key=lambda n: ("slurmd" not in n, n != "slurmctld")):
            _terminate(self.pids[name])
        self.pids.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ use
    def run(self, argv: list[str], check: bool = True, timeout: float = 60.0, **kw):
        """Run a Slurm client (or anything) against this cluster."""
        return subprocess.run(argv, env={**self.env, **kw.pop("env", {})}, capture_output=True,
                              text=True, check=check, timeout=timeout, **kw)

    def job(self, job_id: str) -> dict:
        """``scontrol show job`` of ``job_id`` as a dict ({} when Slurm forgot it)."""
        p = self.run(["scontrol", "show", "job", "-o", str(job_id)], check=False)
        d: dict = {}
        for tok in p.stdout.split():
            k, eq, v = tok.partition("=")
            if eq and k not in d:
                d[k] = v
        return d

    def wait_job(self, job_id: str, timeout: float = 120.0, states=("COMPLETED", "FAILED",
                 "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED")) -> dict:
        """Wait until the job is in one of ``states``; its ``scontrol show job``."""
        deadline = time.monotonic() + timeout
        j: dict = {}
        while time.monotonic() < deadline:
            j = self.job(job_id)
            if j.get("JobState") in states:
                return j
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} is still {j.get('JobState')!r} after {timeout:.0f} s "
                           f"(reason {j.get('Reason')!r}){self.diagnose(j)}")

    def diagnose(self, j: dict) -> str:
        """What a stuck job is doing, for the failure message (the cluster's directory is
        removed when the tests end): its processes, every Python rank's stacks (SIGABRT to
        the ranks under slurmstepd; PYTHONFAULTHANDLER prints them into the job's output),
        the tail of that output and of the daemons' logs."""
        out = []
        ps = subprocess.run(["ps", "-eo", "pid,ppid,stat,etimes,wchan:24,args"],
                            capture_output=True, text=True).stdout.splitlines()
        rows = {}
        for line in ps[1:]:
            f = line.split(None, 5)
            if len(f) == 6:
                rows[int(f[0])] = (int(f[1]), line)

        def under_stepd(pid: int) -> bool:
            seen = 0
            while pid in rows and seen < 64:
                pid = rows[pid][0]
                if pid in rows and "slurmstepd" in rows[pid][1]:
                    return True
                seen += 1
            return False

        job_procs = [pid for pid in rows if under_stepd(pid)]
        out.append("--- processes under slurmstepd\n" + "\n".join(
            [ps[0]] + [rows[p][1] for p in sorted(job_procs)]))
        for pid in job_procs:
            if "python" in rows[pid][1]:
                try:
                    os.kill(pid, signal.SIGABRT)
                except OSError:
                    pass
        if job_procs:
            time.sleep(3)
        path = j.get("StdOut", "")
        try:
            with open(path, errors="replace") as f:
                out.append(f"--- {path} (tail)\n" + f.read()[-6000:])
        except OSError as e:
            out.append(f"--- job output {path!r} unreadable: {e}")
        for name in ["slurmctld"] + [f"slurmd-{n}" for n in self.nodes]:
            out.append(f"--- {name}.log (tail)\n" + self.log(name)[-2500:])
        return "\n" + "\n".join(out)

    def queue(self) -> list[str]:
        """Job ids squeue lists."""
        return self.run(["squeue", "-h", "-o", "%i"]).stdout.split()

    def log(self, name: str = "slurmctld") -> str:
        try:
            with open(os.path.join(self.dir, "log", f"{name}.log")) as f:
                return f.read()
        except OSError:
            return ""


def _terminate(pid: int, grace: float = 10.0) -> None:
    """SIGTERM ``pid``, then SIGKILL if it is still there after ``grace`` seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
