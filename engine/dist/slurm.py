"""Slurm jobs: render a batch script, submit it with ``sbatch``, and list the engine's jobs.

:func:`submit` (``mlops submit``) turns a training script and :class:`SubmitOptions`
into a batch script that launches one rank per task with ``srun --mpi=pmi2`` (or the
MPI plugin configured), saves it in the job's directory beside its log, submits it
with ``sbatch --parsable`` and writes a job record (``job.json``). :func:`list_jobs`
(``mlops jobs``) reads the records back and asks Slurm for their state.

The job's directory is ``<jobs root>/<run id>/`` (the jobs root is ``<store>/jobs``
for a local store, see :func:`jobs_root`) and holds

* ``job.sbatch``: the batch script as submitted (``sbatch job.sbatch`` submits it again),
* ``slurm-<job id>.out``: the output of every attempt of the job, appended
  (``--open-mode=append``: a requeued attempt does not erase the one before),
* ``job.json``: the record (job id, run id, script, arguments, options, paths),
* ``exit-<job id>-<attempt>.json``: written by the batch script when ``srun`` returns
  (exit code and time),
* ``requeue-<job id>``: while it exists, rank 0 has asked for a requeue (see below).

Inside the job, the batch script exports ``MLOPS_HOME`` (the store, so the script's
``Registry()`` is the submitter's), ``MLOPS_RUN_ID`` (``Registry.start_run`` re-attaches
to that run on every attempt, so the job's attempts are one run), and for
:mod:`engine.dist.preempt` ``MLOPS_PREEMPT_SIGNALS`` (the warning signal, and TERM),
``MLOPS_MAX_REQUEUES`` and ``MLOPS_REQUEUE_MARKER``: a preempted job's rank 0 writes that
file instead of calling ``scontrol requeue`` itself, and the batch script requeues the
job after ``srun`` returns, when every rank has left MPI cleanly (a rank killed while it
finalizes leaves MPICH's shared-memory segment of the step behind, and the next attempt,
with the same job and step id on the same node, fails in ``MPI_Init``).

Defaults
--------
Every option not given comes from the environment (``MLOPS_SLURM_PARTITION``,
``MLOPS_SLURM_ACCOUNT``, ``MLOPS_SLURM_TIME``, ``MLOPS_SLURM_MEM``,
``MLOPS_SLURM_SIGNAL``, ``MLOPS_SLURM_MPI``, ``MLOPS_SLURM_MAX_REQUEUES``,
``MLOPS_SLURM_CPUS_PER_TASK``, ``MLOPS_SLURM_GPUS_PER_NODE``,
``MLOPS_SLURM_NTASKS_PER_NODE``, ``MLOPS_SLURM_NODES``, ``MLOPS_SLURM_REQUEUE``),
then from the ``[slurm]`` section of the config file (``$MLOPS_SLURM_CONFIG``, else
``$XDG_CONFIG_HOME/mlops-engine/slurm.ini``, else ``~/.config/mlops-engine/slurm.ini``;
keys as the options, with underscores), then from :class:`SubmitOptions`.

Examples
--------
>>> opts = SubmitOptions(nodes=2, ntasks_per_node=4, time="01:00:00").check()
>>> text = render("train.py", ["--lr", "0.1"], opts, run_id="r-1234", job_dir="/j",
...               python="/venv/bin/python", store="/store", cwd="/work")
>>> [line for line in text.splitlines() if line.startswith("srun")]
['srun --mpi=pmi2 --kill-on-bad-exit=1 /venv/bin/python train.py --lr 0.1']
"""

from __future__ import annotations

import configparser
import datetime
import json
import os
import re
import shlex
import shutil
import signal as _signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field, fields

from ..env import current

#: Signals a job may not ask for as its warning: they cannot be caught.
UNCATCHABLE = frozenset({"KILL", "STOP"})
_TIME = re.compile(r"^(?:\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+(?::\d{1,2}(?::\d{1,2})?)?)$")
_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)
_SIGNAL = re.compile(r"^(B:)?(?:SIG)?([A-Z0-9]+)(?:@(\d+))?$")
_WORD = re.compile(r"^[A-Za-z0-9_.,:+-]+$")
SQUEUE_TIMEOUT = 30.0


class SlurmError(RuntimeError):
    """A Slurm command failed or is missing; the message says which and what it printed."""


@dataclass
class SubmitOptions:
    """What ``mlops submit`` asks Slurm for (see the module docstring for defaults).

    Attributes
    ----------
    nodes, ntasks_per_node : int
        Nodes, and ranks (tasks) per node: ``nodes * ntasks_per_node`` ranks in all.
    gpus_per_node, cpus_per_task : int or None
        GPUs per node and CPUs per rank (None: Slurm's default).
    time : str or None
        Time limit in a Slurm format (``MM``, ``HH:MM:SS``, ``D-HH:MM``, ...).
    partition, account, mem : str or None
        Passed as ``--partition``, ``--account`` and ``--mem`` (``64G``).
    signal : str
        The warning signal and how many seconds before the time limit Slurm sends it
        to the ranks (``USR2@90``). USR2 rather than USR1, which NCCL may use.
    requeue : bool
        Whether the job may be requeued (``--requeue``/``--no-requeue``).
    max_requeues : int
        How many times a preempted job requeues itself before it stops (default 3).
    mpi : str
        ``srun --mpi=`` plugin: ``pmi2`` (default; the pip ``mpich`` wheel speaks it) or
        ``pmix`` where the cluster's Slurm has it (``srun --mpi=list``).
    job_name : str or None
        Default: the script's name.
    """

    nodes: int = 1
    ntasks_per_node: int = 1
    gpus_per_node: int | None = None
    cpus_per_task: int | None = None
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    mem: str | None = None
    signal: str = "USR2@90"
    requeue: bool = True
    max_requeues: int = 3
    mpi: str = "pmi2"
    job_name: str | None = None

    def check(self) -> SubmitOptions:
        """Validate every field (a ValueError names the option); returns ``self``."""
        for name in ("nodes", "ntasks_per_node"):
            _positive(getattr(self, name), name)
        for name in ("gpus_per_node", "cpus_per_task"):
            if getattr(self, name) is not None:
                _positive(getattr(self, name), name)
        m = self.max_requeues
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            raise ValueError(f"max_requeues must be an integer >= 0, got {m!r}")
        if not isinstance(self.requeue, bool):
            raise ValueError(f"requeue must be True or False, got {self.requeue!r}")
        if self.time is not None and not _TIME.match(str(self.time)):
            raise ValueError(f"time must be a Slurm time limit such as 30, 01:00:00 or "
                             f"1-12:00:00, got {self.time!r}")
        if self.mem is not None and not _MEM.match(str(self.mem)):
            raise ValueError(f"mem must be a size such as 4000, 64G or 512M, got {self.mem!r}")
        signal_name(self.signal)
        for name in ("partition", "account", "mpi", "job_name"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not _WORD.match(v)):
                raise ValueError(f"{name} must be a word of letters, digits and _.,:+-, "
                                 f"got {v!r}")
        if not self.mpi:
            raise ValueError("mpi must name an srun MPI plugin such as pmi2 or pmix")
        return self

    @property
    def ntasks(self) -> int:
        return self.nodes * self.ntasks_per_node


def _positive(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    return v


def signal_name(spec: str) -> str:
    """The signal of a ``--signal`` spec (``USR2@90``, ``SIGTERM@60``), checked.

    ``B:`` (the batch shell only) is refused: the warning must reach the ranks.

    Examples
    --------
    >>> signal_name("USR2@90"), signal_name("SIGTERM")
    ('USR2', 'TERM')
    """
    m = _SIGNAL.match(str(spec).upper())
    if not m or not hasattr(_signal, "SIG" + m.group(2)) or m.group(2).isdigit():
        raise ValueError(f"signal must look like USR2@90 (a signal name, then @ and the "
                         f"seconds before the time limit), got {spec!r}")
    name = m.group(2)
    if m.group(1):
        raise ValueError(f"signal {spec!r}: 'B:' sends the signal to the batch shell only, "
                         "never to the ranks, so they could not checkpoint; drop the 'B:'")
    if name in UNCATCHABLE:
        raise ValueError(f"signal {name} cannot be caught, so the job could not checkpoint; "
                         "use USR2 (the default) or TERM")
    return name


# --------------------------------------------------------------------------- defaults
_ENV_KEYS = {f.name: "MLOPS_SLURM_" + f.name.upper() for f in fields(SubmitOptions)
             if f.name != "job_name"}


def config_path(environ=None) -> str:
    """The config file read for defaults (it need not exist)."""
    env = os.environ if environ is None else environ
    if env.get("MLOPS_SLURM_CONFIG"):
        return env["MLOPS_SLURM_CONFIG"]
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "mlops-engine", "slurm.ini")


def _convert(name: str, text: str, where: str):
    kind = {f.name: f.type for f in fields(SubmitOptions)}[name]
    t = text.strip()
    if "bool" in str(kind):
        if t.lower() in ("1", "true", "yes", "on"):
            return True
        if t.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{where}: expected yes or no, got {text!r}")
    if "int" in str(kind):
        try:
            return int(t)
        except ValueError:
            raise ValueError(f"{where}: expected an integer, got {text!r}") from None
    return t


def defaults(environ=None) -> dict:
    """Option values from the config file, overridden by ``MLOPS_SLURM_*`` variables."""
    env = os.environ if environ is None else environ
    out: dict = {}
    path = config_path(env)
    if os.path.isfile(path):
        cp = configparser.ConfigParser()
        try:
            cp.read(path)
        except configparser.Error as exc:
            raise ValueError(f"{path}: not a valid config file: {exc}") from None
        if cp.has_section("slurm"):
            for key, value in cp.items("slurm"):
                name = key.replace("-", "_")
                if name not in _ENV_KEYS:
                    raise ValueError(f"{path}: [slurm] has an unknown key {key!r}; keys are "
                                     f"{', '.join(sorted(_ENV_KEYS))}")
                out[name] = _convert(name, value, f"{path}: [slurm] {key}")
    for name, var in _ENV_KEYS.items():
        if env.get(var, "").strip():
            out[name] = _convert(name, env[var], var)
    return out


def options(environ=None, **given) -> SubmitOptions:
    """:class:`SubmitOptions` from ``given`` (None: not given), else the defaults, checked."""
    values = defaults(environ)
    values.update({k: v for k, v in given.items() if v is not None})
    return SubmitOptions(**values).check()


# --------------------------------------------------------------------------- the script
def jobs_root(store: str | None = None) -> str:
    """Where job directories go: ``$MLOPS_JOBS_DIR``, else ``<store>/jobs`` for a local
    store (``$MLOPS_HOME`` or ``./.mlops``)."""
    if os.environ.get("MLOPS_JOBS_DIR"):
        return os.path.abspath(os.environ["MLOPS_JOBS_DIR"])
    from ..config import store_root

    root = store if store is not None else store_root()
    if "://" in root:
        raise ValueError(f"the store {root!r} is not a local directory, so job logs cannot go "
                         "beside it: set $MLOPS_JOBS_DIR to a directory the nodes can write")
    return os.path.join(os.path.abspath(root), "jobs")


def mpich_wheel() -> bool:
    """Whether this Python's MPI is the pip ``mpich`` wheel (the ``mpi`` extra)."""
    from importlib import metadata

    try:
        metadata.distribution("mpich")
        return True
    except metadata.PackageNotFoundError:
        return False


#: The MPICH network module a batch script picks for the pip ``mpich`` wheel under
#: ``srun --mpi=pmi2`` (see :func:`render`).
WHEEL_NETMOD = "ofi"


def render(script: str, args, opts: SubmitOptions, *, run_id: str, job_dir: str, python: str,
           store: str, cwd: str, wheel_mpich: bool = False) -> str:
    """The batch script of one job (see the module docstring).

    ``wheel_mpich``: the ranks' MPI is the pip ``mpich`` wheel. Under ``--mpi=pmi2`` the
    script then exports ``MPIR_CVAR_CH4_NETMOD=ofi`` unless it is set: with the wheel's
    default network module (UCX), each rank sends its UCX worker address through
    Slurm's PMI in ``put`` lines that can be longer than the 1,024 bytes Slurm's pmi2
    plugin reads as one request (the length varies with the address's bytes), and
    ``MPI_Init`` then fails now and then ("mpi/pmi2: value not properly terminated",
    then UCX "failed to unpack address"). The OFI module's addresses are short.
    """
    sig = signal_name(opts.signal)
    q = shlex.quote
    lines = ["#!/bin/bash",
             f"# Rendered by mlops submit on {_now()} for {current().user}@{current().host}.",
             f"# Submit it again with: sbatch {q(os.path.join(job_dir, 'job.sbatch'))}",
             f"#SBATCH --job-name={opts.job_name or _job_name(script)}",
             f"#SBATCH --nodes={opts.nodes}",
             f"#SBATCH --ntasks-per-node={opts.ntasks_per_node}"]
    if opts.cpus_per_task is not None:
        lines.append(f"#SBATCH --cpus-per-task={opts.cpus_per_task}")
    if opts.gpus_per_node is not None:
        lines.append(f"#SBATCH --gpus-per-node={opts.gpus_per_node}")
    for name in ("time", "partition", "account", "mem"):
        v = getattr(opts, name)
        if v is not None:
            lines.append(f"#SBATCH --{name}={v}")
    lines += [f"#SBATCH --signal={opts.signal.upper().removeprefix('SIG')}",
              "#SBATCH --requeue" if opts.requeue else "#SBATCH --no-requeue",
              "#SBATCH --open-mode=append",
              f"#SBATCH --output={os.path.join(job_dir, 'slurm-%j.out')}",
              f"#SBATCH --chdir={cwd}",
              "",
              "# what the training script's engine.dist and Registry read",
              f"export MLOPS_HOME={q(store)}",
              f"export MLOPS_RUN_ID={q(run_id)}",
              f"export MLOPS_JOB_DIR={q(job_dir)}",
              f"export MLOPS_PREEMPT_SIGNALS={sig if sig == 'TERM' else sig + ',TERM'}",
              f"export MLOPS_MAX_REQUEUES={opts.max_requeues if opts.requeue else 0}",
              "# rank 0 asks for a requeue with this file; the job is requeued below, once",
              "# every rank has left MPI (a rank killed mid-exit leaves MPICH's shared memory",
              "# of the step behind, and the next attempt of the same job id would not start)",
              'export MLOPS_REQUEUE_MARKER="$MLOPS_JOB_DIR/requeue-$SLURM_JOB_ID"',
              'rm -f "$MLOPS_REQUEUE_MARKER"',
              "# SIGTERM (time limit, scancel) is the ranks' to handle: this shell waits for",
              "# srun and then requeues if asked",
              "trap 'true' TERM",
              ""]
    if wheel_mpich and opts.mpi == "pmi2":
        lines += ["# the pip mpich wheel under srun --mpi=pmi2: the OFI network module, whose",
                  "# addresses fit Slurm's PMI requests (UCX's may not: MPI_Init fails now and",
                  "# then); set MPIR_CVAR_CH4_NETMOD=ucx before sbatch to keep UCX",
                  f"export MPIR_CVAR_CH4_NETMOD=${{MPIR_CVAR_CH4_NETMOD:-{WHEEL_NETMOD}}}",
                  ""]
    lines += ['attempt=$(( ${SLURM_RESTART_COUNT:-0} + 1 ))',
              'echo "mlops: job $SLURM_JOB_ID attempt $attempt on $SLURM_JOB_NODELIST at '
              '$(date -Is)"',
              " ".join(["srun", f"--mpi={opts.mpi}", "--kill-on-bad-exit=1", q(python),
                        q(script), *(q(a) for a in args)]),
              "rc=$?",
              'echo "mlops: job $SLURM_JOB_ID attempt $attempt exited with $rc at $(date -Is)"',
              'f="$MLOPS_JOB_DIR/exit-$SLURM_JOB_ID-$attempt.json"',
              'printf \'{"job_id": "%s", "attempt": %d, "exit_code": %d, "end": "%s"}\\n\' '
              '"$SLURM_JOB_ID" "$attempt" "$rc" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$f.tmp" '
              '&& mv "$f.tmp" "$f"',
              'if [ -e "$MLOPS_REQUEUE_MARKER" ]; then',
              '    rm -f "$MLOPS_REQUEUE_MARKER"',
              '    echo "mlops: requeueing job $SLURM_JOB_ID (attempt $attempt was preempted)"',
              '    scontrol requeue "$SLURM_JOB_ID"',
              "fi",
              "exit $rc", ""]
    return "\n".join(lines)


def _job_name(script: str) -> str:
    base = os.path.splitext(os.path.basename(script))[0] or "job"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", base)[:64]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Submission:
    """A submitted job (or, with ``dry_run``, the script that would be)."""

    job_id: str | None
    run_id: str
    job_dir: str | None
    script: str
    log: str | None
    text: str = field(repr=False, default="")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("text")
        return d


def _sbatch() -> str:
    exe = shutil.which("sbatch")
    if exe is None:
        raise SlurmError("sbatch is not on PATH: mlops submit needs a Slurm client (run it on "
                         "a login node of the cluster, or load the Slurm module); nothing was "
                         "submitted")
    return exe


def submit(script: str, args=(), opts: SubmitOptions | None = None, *, store: str | None = None,
           dry_run: bool = False, allow_nested: bool = False, python: str | None = None,
           run_id: str | None = None) -> Submission:
    """Render, save and submit a job running ``script args`` on ``opts.ntasks`` ranks.

    Raises ValueError for bad input (a script that does not exist, a nested submission
    without ``allow_nested``), :class:`SlurmError` when ``sbatch`` is missing or refuses
    the job; in every such case nothing is submitted and no job directory is left.
    """
    from ..config import store_root
    from ..registry.runs import check_run_id, new_run_id

    opts = (opts or SubmitOptions()).check()
    args = [str(a) for a in args]
    if not isinstance(script, str) or not script:
        raise ValueError(f"script must be a path, got {script!r}")
    if not os.path.isfile(script):
        raise FileNotFoundError(f"no such script: {script!r}; nothing was submitted")
    where = current()
    if where.slurm_job_id and not allow_nested:
        raise ValueError(f"this runs inside Slurm job {where.slurm_job_id}: a job that submits "
                         "jobs is usually a mistake (a requeued job would submit again); pass "
                         "--allow-nested (allow_nested=True) if it is meant; nothing was "
                         "submitted")
    store = os.path.abspath(store if store is not None else store_root())
    run_id = check_run_id(run_id) if run_id is not None else new_run_id()
    root = jobs_root(store)
    job_dir = os.path.join(root, run_id)
    python = python or sys.executable
    text = render(os.path.abspath(script), args, opts, run_id=run_id, job_dir=job_dir,
                  python=python, store=store, cwd=os.getcwd(),
                  wheel_mpich=os.path.realpath(python) == os.path.realpath(sys.executable)
                  and mpich_wheel())
    path = os.path.join(job_dir, "job.sbatch")
    if dry_run:
        return Submission(None, run_id, None, path, None, text)
    exe = _sbatch()
    os.makedirs(job_dir, exist_ok=False)
    try:
        _write(path, text)
        os.chmod(path, 0o755)
        proc = subprocess.run([exe, "--parsable", path], capture_output=True, text=True,
                              timeout=SQUEUE_TIMEOUT)
        if proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip() or f"exit status {proc.returncode}"
            raise SlurmError(f"sbatch refused the job: {msg}; nothing was submitted")
        job_id = proc.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise SlurmError(f"sbatch printed {proc.stdout.strip()!r}, not a job id")
    except BaseException:
        shutil.rmtree(job_dir, ignore_errors=True)
        raise
    log = os.path.join(job_dir, f"slurm-{job_id}.out")
    record = {"format": "mlops-engine job", "format_version": 1, "job_id": job_id,
              "run_id": run_id, "script": os.path.abspath(script), "args": args,
              "options": asdict(opts), "submitted": _now(), "store": store,
              "job_dir": job_dir, "sbatch": path, "log": log, "cwd": os.getcwd(),
              "user": where.user, "host": where.host}
    _write(os.path.join(job_dir, "job.json"), json.dumps(record, indent=1) + "\n")
    return Submission(job_id, run_id, job_dir, path, log, text)


def _write(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary, fsynced, renamed)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------- listing
@dataclass
class JobInfo:
    """One job of the engine, as :func:`list_jobs` sees it.

    ``state`` is Slurm's (``PENDING``, ``RUNNING``, ``COMPLETED``, ``FAILED``, ...) while
    Slurm remembers the job, else from the job's exit files and its registry run;
    ``attempts`` counts the starts (1 + requeues); ``source`` says where the state came
    from (``squeue``, ``scontrol``, ``exit file``, ``registry``, ``unknown``).
    """

    job_id: str
    run_id: str
    name: str
    state: str
    attempts: int
    exit_code: int | None
    reason: str
    log: str
    submitted: str
    source: str
    run_status: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


ACTIVE = frozenset({"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                    "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING", "SIGNALING",
                    "STAGE_OUT", "STOPPED"})


def _records(root: str) -> list[dict]:
    out = []
    if not os.path.isdir(root):
        return out
    for name in sorted(os.listdir(root)):
        p = os.path.join(root, name, "job.json")
        try:
            with open(p) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            continue  # a job directory being written, or not ours
        if isinstance(rec, dict) and rec.get("format") == "mlops-engine job":
            out.append(rec)
    return out


def _squeue(ids: list[str]) -> dict:
    """``{job id: (state, reason)}`` of the jobs squeue still lists."""
    exe = shutil.which("squeue")
    if exe is None or not ids:
        return {}
    proc = subprocess.run([exe, "-h", "-j", ",".join(ids), "-o", "%i|%T|%r"],
                          capture_output=True, text=True, timeout=SQUEUE_TIMEOUT)
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            out[parts[0]] = (parts[1], parts[2])
    return out


def show_job(job_id: str) -> dict | None:
    """``scontrol show job -o JOB`` as a dict (None when Slurm no longer knows the job)."""
    exe = shutil.which("scontrol")
    if exe is None:
        return None
    proc = subprocess.run([exe, "show", "job", "-o", str(job_id)], capture_output=True,
                          text=True, timeout=SQUEUE_TIMEOUT)
    if proc.returncode != 0 or "JobId=" not in proc.stdout:
        return None
    d = {}
    for tok in proc.stdout.split():
        k, eq, v = tok.partition("=")
        if eq and k not in d:
            d[k] = v
    return d


def _exit_files(job_dir: str, job_id: str) -> list[dict]:
    out = []
    try:
        names = os.listdir(job_dir)
    except OSError:
        return out
    for n in names:
        if n.startswith(f"exit-{job_id}-") and n.endswith(".json"):
            try:
                with open(os.path.join(job_dir, n)) as f:
                    out.append(json.load(f))
            except (OSError, ValueError):
                continue
    return sorted(out, key=lambda d: d.get("attempt", 0))


def _run_of(registries: dict, store: str, run_id: str) -> dict | None:
    """The registry run of a job (None when there is no store or no run yet); one
    ``Registry`` per store, kept in ``registries``."""
    try:
        if store not in registries:
            from ..registry import Registry

            registries[store] = Registry(store, create=False)
        return registries[store].get_run(run_id)
    except Exception:  # noqa: BLE001 - no store, no run yet (the job has not started)
        return None


def list_jobs(all: bool = False, store: str | None = None) -> list[JobInfo]:
    """The engine's jobs under :func:`jobs_root`, oldest first: active ones only, unless
    ``all``. Asks ``squeue`` once, then ``scontrol show job`` for the jobs it no
    longer lists, then the job's exit files and registry run (``sacct`` is not needed)."""
    recs = _records(jobs_root(store))
    queued = _squeue([r["job_id"] for r in recs])
    out, registries = [], {}
    for r in recs:
        jid = r["job_id"]
        exits = _exit_files(r["job_dir"], jid)
        run = _run_of(registries, r["store"], r["run_id"])
        tags = (run or {}).get("tags") or {}
        attempts = max([e.get("attempt", 1) for e in exits] + [1])
        if str(tags.get("slurm.attempt", "")).isdigit():
            attempts = max(attempts, int(tags["slurm.attempt"]))
        exit_code = exits[-1].get("exit_code") if exits else None
        reason = ""
        if jid in queued:
            state, reason = queued[jid]
            source = "squeue"
            if reason in ("None", "(null)"):
                reason = ""
        else:
            sj = show_job(jid)
            if sj is not None:
                state, source = sj.get("JobState", "UNKNOWN"), "scontrol"
                reason = "" if sj.get("Reason") in (None, "None") else sj["Reason"]
                if sj.get("Restarts", "").isdigit():
                    attempts = max(attempts, int(sj["Restarts"]) + 1)
                code = sj.get("ExitCode", "")
                if code.split(":")[0].isdigit():
                    exit_code = int(code.split(":")[0])
            elif exits:
                state = "COMPLETED" if exit_code == 0 else "FAILED"
                source = "exit file"
            elif run is not None:
                state, source = run["status"], "registry"
            else:
                state, source = "UNKNOWN", "unknown"
        if tags.get("slurm.state") == "requeue-budget-exhausted" and state not in ACTIVE:
            reason = "requeue budget exhausted" + (f" ({reason})" if reason else "")
        info = JobInfo(jid, r["run_id"], os.path.basename(r["script"]), state, attempts,
                       exit_code, reason, r["log"], r["submitted"], source,
                       None if run is None else run["status"])
        if all or info.active:
            out.append(info)
    for reg in registries.values():
        reg.close()
    return out


def find_job(job: str, store: str | None = None) -> dict:
    """The record of a job given by its Slurm job id or its run id (or a unique prefix)."""
    recs = _records(jobs_root(store))
    hits = [r for r in recs if job in (r["job_id"], r["run_id"])]
    if not hits:
        hits = [r for r in recs if r["run_id"].startswith(job)]
    if len(hits) != 1:
        known = ", ".join(f"{r['job_id']} ({r['run_id']})" for r in recs[-10:]) or "none"
        what = "no job" if not hits else f"{len(hits)} jobs"
        raise ValueError(f"{what} of the engine matches {job!r} under {jobs_root(store)}; "
                         f"known jobs: {known}")
    return hits[0]


__all__ = ["ACTIVE", "JobInfo", "SlurmError", "SubmitOptions", "Submission", "config_path",
           "defaults", "find_job", "jobs_root", "list_jobs", "options", "render", "show_job",
           "signal_name", "submit"]
