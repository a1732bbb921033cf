"""Preemption of a data-parallel job: stop every rank at the same step, checkpoint, requeue.

Slurm warns a job before it ends it: ``sbatch --signal=USR2@90`` sends SIGUSR2 to every
task launched with ``srun`` 90 seconds before the time limit (``scancel --signal=USR2
JOB`` sends it by hand), and at the limit, on preemption or on ``scancel`` Slurm sends
SIGTERM, then SIGKILL after the cluster's ``KillWait`` (often 30 s). :class:`Preemption`
turns either signal into a clean stop:

1. **signal -> flag.** The handlers :meth:`Preemption.install` sets only record the
   signal and the time (:attr:`Preemption.requested`); nothing is done inside a handler.
   The signal may reach some ranks and not others, or reach them during different steps.
2. **flag -> agreement at the next step boundary.** Every rank calls
   :meth:`Preemption.agreed` after each step (:class:`~engine.dist.checkpoint.Checkpointer`
   does, in ``maybe_save``): one 1-element allreduce of the local flags. All ranks get
   the same answer at the same step, so they stop together; a rank that decided alone
   would leave the others waiting in the next collective. Once agreed, it stays True.
3. **checkpoint.** Every rank saves (``Checkpointer.save``: a collective) after that step.
4. **requeue.** :meth:`Preemption.stop`: rank 0 requeues the job (``scontrol requeue
   JOBID``; under a batch script of ``mlops submit``, by writing ``$MLOPS_REQUEUE_MARKER``
   for the script, which requeues once every rank has left MPI) if it runs as a Slurm
   job and the budget allows, tags the registry run
   (``slurm.state``, ``slurm.attempt``, ``slurm.preempted_at_step``,
   ``slurm.checkpoint``, ``slurm.signal``) and broadcasts what it did.
5. **exit.** Every rank raises :class:`Preempted` (a ``SystemExit``) with the same exit
   code: :data:`EXIT_REQUEUED` (0) when the job was requeued, :data:`EXIT_STOPPED` (3)
   when it was not (the budget is exhausted, there is no way to requeue, or the requeue
   failed). The message says what happened and how to resume.

A requeued job starts again from its batch script; ``Checkpointer.resume`` continues at
the step after the checkpoint, bit-identically on the same number of ranks.
``scontrol requeue`` ends the running attempt's steps (SIGTERM, SIGKILL after
``KillWait``); by then the ranks are past the checkpoint and only exchange the outcome.

**Requeue budget.** Slurm counts the requeues of a job in ``SLURM_RESTART_COUNT`` (0 on
the first attempt; read through ``engine.env.current().slurm_restart_count``). Rank 0
requeues only while it is below ``max_requeues`` (``MLOPS_MAX_REQUEUES``, default 3), so
a job that is preempted again and again gets at most ``1 + max_requeues`` attempts
instead of burning allocations forever; then it stops with exit code 3 and the run is
tagged ``slurm.state=requeue-budget-exhausted``.

**Why USR2.** NCCL and some MPI libraries may install a handler for SIGUSR1, so the
default warning signal is SIGUSR2 (``MLOPS_PREEMPT_SIGNALS``, default ``USR2,TERM``).
SIGTERM is handled the same way, as a last resort when no warning was configured: the
job then has only ``KillWait`` seconds for the step and the checkpoint. A plain
``scancel`` sends SIGTERM too: the ranks checkpoint, but rank 0 does not requeue a job
that was ended before its time limit (its ``EndTime`` in ``scontrol show job`` is then
well before ``StartTime + TimeLimit``): ``slurm.state=cancelled``, exit 3. So a SIGTERM
requeues only at the time limit; ``scancel --signal=KILL`` stops at once without a
checkpoint.

Examples
--------
>>> p = Preemption(["USR2"], max_requeues=2, requeue=False)
>>> p.signals, p.max_requeues, p.requested
(('USR2',), 2, False)
>>> with p:                                   # handlers installed, then restored
...     os.kill(os.getpid(), signal.SIGUSR2)
...     p.requested, p.signal, p.agreed()     # a world of one: the local flag
(True, 'USR2', True)
>>> try:
...     p.stop(step=41)                        # requeue=False: no way to requeue
... except Preempted as exc:
...     print(exc.code, exc.state)
3 preempted
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np

from ..env import current
from .world import allgather_object, allreduce_, broadcast_object, get_world

__all__ = ["Preemption", "Preempted", "EXIT_REQUEUED", "EXIT_STOPPED", "DEFAULT_SIGNALS",
           "DEFAULT_MAX_REQUEUES", "SCONTROL_TIMEOUT", "auto_preemption"]

#: exit code of every rank when rank 0 requeued the job
EXIT_REQUEUED = 0
#: exit code of every rank when the job was not requeued (budget exhausted, no Slurm job,
#: ``requeue=False`` or a failed ``scontrol requeue``)
EXIT_STOPPED = 3
#: the signals handled when neither ``signals`` nor ``MLOPS_PREEMPT_SIGNALS`` is given
DEFAULT_SIGNALS = ("USR2", "TERM")
#: requeues allowed when neither ``max_requeues`` nor ``MLOPS_MAX_REQUEUES`` is given
DEFAULT_MAX_REQUEUES = 3
#: seconds ``scontrol requeue`` may take before it counts as failed
SCONTROL_TIMEOUT = 30.0
#: The file a batch script that requeues the job itself after ``srun`` asks rank 0 to write
#: instead of calling ``scontrol requeue`` (see ``Preemption._requeue``).
REQUEUE_MARKER = "MLOPS_REQUEUE_MARKER"

_UNCATCHABLE = ("KILL", "STOP")


class Preempted(SystemExit):
    """Raised on every rank by :meth:`Preemption.stop`: the job stops after its checkpoint.

    A ``SystemExit``, so an uncaught one ends the process with :attr:`code` (the same on
    every rank) and without a traceback; ``str(exc)`` is the message.

    Attributes
    ----------
    code : int
        :data:`EXIT_REQUEUED` (0) or :data:`EXIT_STOPPED` (3).
    state : str
        ``"requeued"``, ``"requeue-budget-exhausted"``, ``"preempted"`` (no way to
        requeue) or ``"requeue-failed"``; also the run's ``slurm.state`` tag.
    step : int or None
        The step after which the ranks stopped (the checkpoint resumes at ``step + 1``).
    checkpoint : str or None
        The checkpoint's reference (``name:vN``).
    signal : str or None
        The signal that started it (``USR2``, ``TERM``), on whichever rank got it first.
    attempt, max_requeues : int
        This attempt (``SLURM_RESTART_COUNT + 1``) and the requeue budget.
    message : str
    """

    def __init__(self, message: str, code: int, *, state: str, step=None, checkpoint=None,
                 signal=None, attempt: int = 1, max_requeues: int = DEFAULT_MAX_REQUEUES):
        super().__init__(code)
        self.message = message
        self.state = state
        self.step = step
        self.checkpoint = checkpoint
        self.signal = signal
        self.attempt = attempt
        self.max_requeues = max_requeues

    def __str__(self) -> str:
        return self.message


def _signal_number(s, what: str) -> tuple[int, str]:
    """``(number, name without SIG)`` of a signal given as a name or a number."""
    if isinstance(s, signal.Signals):
        num = int(s)
    elif isinstance(s, int) and not isinstance(s, bool):
        try:
            num = int(signal.Signals(s))
        except ValueError:
            raise ValueError(f"{what}: {s} is not a signal number of this system") from None
    elif isinstance(s, str) and s.strip():
        name = s.strip().upper()
        name = name[3:] if name.startswith("SIG") else name
        sig = getattr(signal, "SIG" + name, None)
        if not isinstance(sig, signal.Signals) or name.startswith("_"):
            raise ValueError(f"{what}: unknown signal name {s!r}; use names such as USR2 or "
                             "TERM (SIGUSR2 and numbers work too)")
        num = int(sig)
    else:
        raise ValueError(f"{what}: a signal must be a name such as 'USR2' or a number, "
                         f"got {s!r}")
    name = signal.Signals(num).name[3:]
    if name in _UNCATCHABLE:
        raise ValueError(f"{what}: SIG{name} cannot be caught, so the job could not "
                         "checkpoint; use USR2 (sbatch --signal=USR2@90) and TERM")
    return num, name


def _parse_signals(signals) -> tuple[tuple[int, ...], tuple[str, ...]]:
    if signals is None:
        env = os.environ.get("MLOPS_PREEMPT_SIGNALS", "").strip()
        what = "MLOPS_PREEMPT_SIGNALS"
        items = [x for x in env.split(",") if x.strip()] if env else list(DEFAULT_SIGNALS)
        if env and not items:
            raise ValueError(f"MLOPS_PREEMPT_SIGNALS must list signal names such as "
                             f"'USR2,TERM', got {env!r}")
    else:
        what = "signals"
        if isinstance(signals, (str, int, signal.Signals)):
            items = [signals] if not isinstance(signals, str) else \
                [x for x in signals.split(",") if x.strip()]
        else:
            try:
                items = list(signals)
            except TypeError:
                raise ValueError(f"signals must be signal names or numbers (such as "
                                 f"['USR2', 'TERM']) or None, got {signals!r}") from None
        if not items:
            raise ValueError("signals must name at least one signal, such as ['USR2', 'TERM']")
    nums, names = [], []
    for s in items:
        num, name = _signal_number(s, what)
        if num not in nums:
            nums.append(num)
            names.append(name)
    return tuple(nums), tuple(names)


def _max_requeues(value) -> int:
    if value is None:
        env = os.environ.get("MLOPS_MAX_REQUEUES", "").strip()
        if not env:
            return DEFAULT_MAX_REQUEUES
        if not env.isdigit():
            raise ValueError(f"MLOPS_MAX_REQUEUES must be an integer >= 0, got {env!r}")
        return int(env)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"max_requeues must be an integer >= 0 (or None: "
                         f"$MLOPS_MAX_REQUEUES, else {DEFAULT_MAX_REQUEUES}), got {value!r}")
    return value


class Preemption:
    """Turn Slurm's warning signal into a stop of every rank at the same step.

    See the module docstring for the protocol. A
    :class:`~engine.dist.checkpoint.Checkpointer` uses one by itself (``preemption=``);
    use it directly in a loop of your own:

    .. code-block:: python

        with Preemption() as pre:                      # handlers installed
            for step, batch in loader.iterate(start):
                ...                                    # forward, backward, opt.step()
                if pre.agreed(step):                   # every rank, every step
                    ref = ckpt.save(step, model, opt, loader)
                    pre.stop(run, ref, step=step)      # raises Preempted on every rank

    Parameters
    ----------
    signals : sequence of str or int, optional
        The signals that request a stop: names (``"USR2"``, ``"SIGTERM"``) or numbers.
        Default ``$MLOPS_PREEMPT_SIGNALS`` (comma-separated, ``USR2,TERM``), else
        ``("USR2", "TERM")``. SIGKILL and SIGSTOP cannot be caught and are refused.
        Avoid USR1: NCCL (and some MPI libraries) may use it.
    max_requeues : int, optional
        How many times the job may requeue itself (compared with ``SLURM_RESTART_COUNT``).
        Default ``$MLOPS_MAX_REQUEUES``, else 3.
    requeue : None, False or callable
        None (automatic): ``scontrol requeue JOBID`` when running as a Slurm job, no
        requeue otherwise. False: never requeue. A callable ``requeue(job_id)`` replaces
        ``scontrol`` (tests; ``job_id`` is None outside Slurm); what it raises counts as a
        failed requeue.
    world : World, optional
        Default ``engine.dist.get_world()`` when first needed.

    Raises
    ------
    ValueError
        A signal name that does not exist, SIGKILL or SIGSTOP, a negative
        ``max_requeues``, or a bad ``MLOPS_PREEMPT_SIGNALS``/``MLOPS_MAX_REQUEUES``.
    """

    def __init__(self, signals=None, *, max_requeues: int | None = None, requeue=None,
                 world=None):
        self._nums, self.signals = _parse_signals(signals)
        self.max_requeues = _max_requeues(max_requeues)
        if not (requeue is None or requeue is False or callable(requeue)):
            raise ValueError(f"requeue must be None (automatic: scontrol under Slurm), False "
                             f"(never) or a callable requeue(job_id), got {requeue!r}")
        self.requeue = requeue
        if world is not None and not (hasattr(world, "rank") and hasattr(world, "size")):
            raise TypeError(f"world must be an engine.dist.World or None, got {world!r}")
        self._world = world
        self._previous: dict[int, object] | None = None  # set while installed
        self._signal: int | None = None
        self._when: float | None = None
        self._agreed = False
        self._step: int | None = None

    def __repr__(self) -> str:
        state = "installed" if self.installed else "not installed"
        flag = ", agreed" if self._agreed else ", requested" if self.requested else ""
        return (f"Preemption(signals={list(self.signals)}, max_requeues={self.max_requeues}, "
                f"{state}{flag})")

    @property
    def world(self):
        if self._world is None:
            self._world = get_world()
        return self._world

    # ------------------------------------------------------------------ signals
    @property
    def installed(self) -> bool:
        return self._previous is not None

    def install(self) -> Preemption:
        """Install the handlers (they only record the signal); returns ``self``.

        Idempotent. The handlers that were there are kept and :meth:`uninstall` puts them
        back. Python runs signal handlers in the main thread only, so this must be called
        from it.
        """
        if self._previous is not None:
            return self
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("Preemption.install() must be called from the main thread "
                               "(Python delivers signals to the main thread only); create "
                               "the Preemption or Checkpointer there")
        previous: dict[int, object] = {}
        try:
            for num in self._nums:
                previous[num] = signal.signal(num, self._handle)
        except BaseException:
            for num, prev in previous.items():
                signal.signal(num, signal.SIG_DFL if prev is None else prev)
            raise
        self._previous = previous
        return self

    def uninstall(self) -> None:
        """Put back the handlers :meth:`install` replaced (nothing if not installed). The
        flag stays as it is."""
        if self._previous is None:
            return
        for num, prev in self._previous.items():
            # None: a handler not installed from Python; the default is the closest
            signal.signal(num, signal.SIG_DFL if prev is None else prev)
        self._previous = None

    def __enter__(self) -> Preemption:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.uninstall()

    def _handle(self, signum, frame) -> None:
        if self._signal is None:
            self._signal, self._when = signum, time.time()

    @property
    def requested(self) -> bool:
        """Whether this rank received one of the signals (local; no communication)."""
        return self._signal is not None

    @property
    def signal(self) -> str | None:
        """The first signal this rank received (``"USR2"``), or None."""
        return None if self._signal is None else signal.Signals(self._signal).name[3:]

    @property
    def signalled_at(self) -> float | None:
        """When this rank received it (``time.time()``), or None."""
        return self._when

    # ------------------------------------------------------------------ agreement
    def agreed(self, step: int | None = None) -> bool:
        """Whether any rank received a signal: every rank gets the same answer.

        A collective: every rank calls it at the same step boundary (after step ``step``,
        given for the messages and tags). One allreduce of a 1-element array (the sum of
        the flags is > 0 when any is set, the MAX of the flags); in a world of one it is
        :attr:`requested`. Once True it stays True, without communication.
        """
        if self._agreed:
            return True
        w = self.world
        if w.size == 1:
            hit = self.requested
        else:
            what = "preemption: agree to stop" + ("" if step is None else f" after step {step}")
            flags = allreduce_(np.array([1 if self.requested else 0], np.int64), what, w)
            hit = int(flags[0]) > 0
        if hit:
            self._agreed = True
            self._step = step
        return hit

    # ------------------------------------------------------------------ stop
    def stop(self, run=None, checkpoint: str | None = None, *, step: int | None = None):
        """Requeue (rank 0), tag the run (rank 0), then raise :class:`Preempted` on every
        rank with the same exit code. Call it on every rank after the checkpoint is saved.

        Parameters
        ----------
        run : Run, optional
            The registry run to tag (on rank 0, through ``run.registry.tag``, so it works
            whatever the run's status).
        checkpoint : str, optional
            The reference of the checkpoint just saved.
        step : int, optional
            The step after which the ranks stopped (default: the one given to
            :meth:`agreed`).

        Raises
        ------
        Preempted
            Always, on every rank: code 0 when requeued, :data:`EXIT_STOPPED` otherwise.
        """
        w = self.world
        step = self._step if step is None else step
        where = current()
        # which signal started it: the first rank to get one (all ranks learn the same)
        got = allgather_object((self._when, self.signal), "preemption: signals received", w)
        got = sorted((t, s) for t, s in got if s is not None)
        sig = got[0][1] if got else None
        outcome = None
        if w.rank == 0:
            outcome = self._decide(where, run, checkpoint, step, sig)
            sys.stderr.write(f"engine.dist: {outcome[2]}\n")
            sys.stderr.flush()
        code, state, message = broadcast_object(outcome, 0, "preemption: outcome", w)
        raise Preempted(message, code, state=state, step=step, checkpoint=checkpoint,
                        signal=sig, attempt=where.slurm_restart_count + 1,
                        max_requeues=self.max_requeues)

    def _decide(self, where, run, checkpoint, step, sig) -> tuple[int, str, str]:
        """Rank 0: requeue if possible and within budget, tag the run; never raises."""
        job, restarts, budget = where.slurm_job_id, where.slurm_restart_count, self.max_requeues
        attempt = restarts + 1
        at = "" if step is None else f" after step {step}"
        head = (f"preempted ({'SIG' + sig if sig else 'no signal'}){at}; checkpoint "
                f"{checkpoint or '(none given)'}")
        resume = (f"Checkpointer.resume() continues from {checkpoint}"
                  + ("" if step is None else f" at step {step + 1}") if checkpoint
                  else "Checkpointer.resume() continues from the latest checkpoint")
        by_hand = "" if job is None else f" or 'scontrol requeue {job}'"
        can = callable(self.requeue) or (self.requeue is None and job is not None)
        if not can:
            state, code = "preempted", EXIT_STOPPED
            why = ("requeue=False" if self.requeue is False
                   else "not a Slurm job (no SLURM_JOB_ID)")
            message = (f"{head}; not requeued ({why}). Launch the job again to resume: "
                       f"{resume}")
        elif sig == "TERM" and self.requeue is None and _cancelled(job):
            state, code = "cancelled", EXIT_STOPPED
            message = (f"{head}; not requeued: the job was cancelled (it ended before its "
                       f"time limit: scancel, or a preemption that cancels). Submit it again "
                       f"to resume: {resume}")
        elif restarts >= budget:
            state, code = "requeue-budget-exhausted", EXIT_STOPPED
            message = (f"{head}; not requeued: the requeue budget is exhausted (attempt "
                       f"{attempt}, after {restarts} requeue(s) of at most {budget}; "
                       f"MLOPS_MAX_REQUEUES). To resume by hand, submit the job again (a new "
                       f"job starts with a fresh budget){by_hand}: {resume}")
        else:
            error = self._requeue(job)
            if error is None:
                state, code = "requeued", EXIT_REQUEUED
                message = (f"{head}; requeued job {job} as attempt {attempt + 1} of at most "
                           f"{budget + 1} (requeue {restarts + 1} of {budget}); {resume}")
            else:
                state, code = "requeue-failed", EXIT_STOPPED
                message = (f"{head}; the requeue failed: {error}. Submit the job again"
                           f"{by_hand} to resume: {resume}")
        if run is not None and getattr(run, "leader", True):
            tags = {"slurm.state": state, "slurm.attempt": str(attempt)}
            if step is not None:
                tags["slurm.preempted_at_step"] = str(step)
            if checkpoint is not None:
                tags["slurm.checkpoint"] = checkpoint
            if sig is not None:
                tags["slurm.signal"] = sig
            try:
                run.registry.tag(f"run:{run.id}", **tags)
            except Exception as exc:  # noqa: BLE001 - the ranks must still agree and exit
                message += f" (tagging run {run.id} failed: {type(exc).__name__}: {exc})"
        return code, state, message

    def _requeue(self, job) -> str | None:
        """Requeue ``job``; None when done, else what went wrong.

        Under a batch script that asks for it (``$MLOPS_REQUEUE_MARKER``, set by
        ``mlops submit``), rank 0 only writes that file, and the batch script requeues
        the job once ``srun`` has returned, when every rank has left MPI cleanly. A rank
        still finalizing when ``scontrol requeue`` ends the step would be killed and leave
        MPICH's shared-memory segment of the job's step behind, and the requeued
        attempt, with the same job and step id on the same node, would fail in MPI_Init.
        """
        if callable(self.requeue):
            try:
                self.requeue(job)
            except Exception as exc:  # noqa: BLE001 - reported in the message
                return f"requeue({job!r}) raised {type(exc).__name__}: {exc}"
            return None
        marker = os.environ.get(REQUEUE_MARKER, "").strip()
        if marker:
            try:
                tmp = f"{marker}.tmp{os.getpid()}"
                with open(tmp, "w") as f:
                    f.write(f"{job}\n")
                os.replace(tmp, marker)
            except OSError as exc:
                return f"could not write the requeue marker {marker} for the batch script: {exc}"
            return None
        exe = shutil.which("scontrol")
        if exe is None:
            return "scontrol is not on PATH (is this a Slurm node?)"
        cmd = [exe, "requeue", str(job)]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=SCONTROL_TIMEOUT)
        except subprocess.TimeoutExpired:
            return f"'scontrol requeue {job}' did not return within {SCONTROL_TIMEOUT:g} s"
        except OSError as exc:
            return f"'scontrol requeue {job}' could not run: {exc}"
        if r.returncode != 0:
            said = (r.stderr.strip() or r.stdout.strip() or "no output")[-500:]
            hint = (" (submit with 'sbatch --requeue', or ask for JobRequeue=1)"
                    if "disabled" in said.lower() else "")
            return f"'scontrol requeue {job}' exited {r.returncode}: {said}{hint}"
        return None


def _cancelled(job) -> bool:
    """Whether ``job`` was ended before its time limit (``scancel``, or a preemption
    that cancels): a SIGTERM then is not the time limit's last warning, and must not
    bring the job back. Slurm shows such a job as ``COMPLETING`` whatever ended it, but
    its ``EndTime`` is then the moment it was ended, not ``StartTime + TimeLimit``."""
    from .slurm import show_job

    try:
        info = show_job(str(job))
    except (OSError, subprocess.SubprocessError):
        return False
    if info is None:
        return False
    if info.get("JobState", "").startswith("CANCELLED"):
        return True
    limit = _duration(info.get("TimeLimit", ""))
    start, end = _when(info.get("StartTime", "")), _when(info.get("EndTime", ""))
    if start is None or end is None:
        return False
    if limit is None:  # UNLIMITED: no time limit ever sends SIGTERM
        return True
    return end < start + limit - EARLY_MARGIN


#: Seconds before ``StartTime + TimeLimit`` under which a SIGTERM's end time counts as early.
EARLY_MARGIN = 30.0


def _duration(text: str) -> float | None:
    """Seconds of a Slurm time limit (``[D-]HH:MM:SS``, ``MM:SS``); None: UNLIMITED or
    unreadable."""
    days, _, hms = text.rpartition("-")
    parts = hms.split(":")
    if not text or not all(p.isdigit() for p in parts) or (days and not days.isdigit()):
        return None
    secs = 0
    for p in parts:
        secs = secs * 60 + int(p)
    if len(parts) == 2:  # MM:SS
        secs = int(parts[0]) * 60 + int(parts[1])
    return float(secs + 86400 * int(days or 0))


def _when(text: str) -> float | None:
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


_AUTO: Preemption | None = None


def auto_preemption(world=None) -> Preemption | None:
    """The process's shared, installed :class:`Preemption` when running as a Slurm job
    (``SLURM_JOB_ID``) or when ``MLOPS_PREEMPT_SIGNALS`` is set; else None.

    What ``Checkpointer(preemption="auto")`` uses: one instance per process, so that
    several checkpointers share one set of handlers. Outside the main thread it cannot
    install handlers: it warns and returns None.
    """
    global _AUTO
    if _AUTO is not None:
        return _AUTO.install()
    if current().slurm_job_id is None and not os.environ.get("MLOPS_PREEMPT_SIGNALS", "").strip():
        return None
    if threading.current_thread() is not threading.main_thread():
        warnings.warn("preemption handling is off: signal handlers can only be installed "
                      "from the main thread (create the Checkpointer there)", stacklevel=3)
        return None
    _AUTO = Preemption(world=world).install()
    return _AUTO
