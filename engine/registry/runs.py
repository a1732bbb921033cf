"""Training runs: params, metric series, tags, inputs and outputs.

A run is two commits (``run_start`` and ``run_end``) plus one per input and per
output version. Metric points never go through the log: ``log_metric`` appends to
memory (about a microsecond a point), and the buffer is flushed as an immutable
Arrow file ``registry/runs/<run id>/metrics-<n>.arrow`` every
``FLUSH_POINTS`` points, every ``FLUSH_SECONDS`` seconds, and when the run ends, so
a preempted job loses at most the last few seconds of points. The ``run_end``
commit carries a summary (last, min, max, count and last step per key) for
searches and promotion gates.

One run per training job, not one per rank: a *run coordinator*
(:func:`set_run_coordinator`, installed by ``engine.dist`` when a world has several
ranks) makes every rank's ``start_run`` agree on rank 0's run id. Only the leader (rank
0) commits; on the other ranks the :class:`Run` has the same id and everything that
would write to the registry is a no-op. The registry knows nothing of MPI: the
coordinator is a plain callable handed down from the layer above.
"""

from __future__ import annotations

import math
import re
import subprocess
import time
import uuid
from collections.abc import Callable

import pyarrow as pa

from ..env import current as current_env
from ..store.arrow_build import table_from_columns
from ..store.store import now_iso
from .errors import RegistryCorruption, RunFinished
from .models import json_value

FLUSH_POINTS = 100_000
FLUSH_SECONDS = 30.0
METRIC_SCHEMA = pa.schema([("key", pa.string()), ("step", pa.int64()), ("value", pa.float64()),
                           ("time", pa.float64())])


def read_segment(fs, key: str, *, keep_metadata: bool = False) -> pa.Table:
    """The points of one metric segment file, checked (schema, buffer bounds, at most 64x
    its size uncompressed); :class:`RegistryCorruption` naming the file otherwise."""
    from ..store.ipc import read_ipc

    data = fs.read_bytes(key)
    where = f"metric segment {fs.path(key)}"
    t = read_ipc(data, where, file=True, schema=METRIC_SCHEMA, compressed=True,
                 max_raw=64 * len(data) + (64 << 20), error=RegistryCorruption)
    want = (t.schema.metadata or {}).get(DIGEST_KEY)
    if want is not None and want.decode("ascii", "replace") != segment_digest(t):
        raise RegistryCorruption(f"{where} fails its checksum: a value was changed after it "
                                 "was written")
    return t if keep_metadata else t.replace_schema_metadata(None)


#: The schema metadata key of a segment's checksum (segments written before it have none).
DIGEST_KEY = b"mlops.blake3"


def segment_digest(t: pa.Table) -> str:
    """BLAKE3 (hex) of a segment's points: keys, then steps, values and times as little-endian
    int64/float64 (a null as NaN), so that any changed point is seen."""
    import blake3
    import numpy as np

    h = blake3.blake3()
    for k in t.column("key").to_pylist():
        h.update(b"\x01" + k.encode() if k is not None else b"\x00")
    for name, dt in (("step", "<i8"), ("value", "<f8"), ("time", "<f8")):
        col = t.column(name)
        arr = col.to_numpy() if col.null_count == 0 else np.asarray(
            [float("nan") if v is None else v for v in col.to_pylist()], dtype="<f8")
        h.update(np.ascontiguousarray(arr, dtype=dt if col.null_count == 0 else "<f8").tobytes())
    return h.hexdigest()
STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")


def metrics_dir(run_id: str) -> str:
    return f"registry/runs/{run_id}"


def git_info(cwd: str | None = None) -> tuple[str | None, bool | None]:
    """(HEAD commit, dirty) of the git work tree containing ``cwd``; (None, None) outside one."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None, None
        st = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                            capture_output=True, text=True, timeout=30)
        return head.stdout.strip(), bool(st.stdout.strip()) if st.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None, None


def world_info() -> dict:
    """World size and rank of this process, from its launcher (:mod:`engine.env`), and
    its Slurm job and attempt (``slurm_job_id`` None outside Slurm)."""
    where = current_env()
    return {"world_size": where.size, "rank": where.rank, "slurm_job_id": where.slurm_job_id,
            "slurm_attempt": where.slurm_restart_count + 1}


#: The run id ``Registry.start_run`` uses when none is given: ``mlops submit`` sets it in
#: the job's environment, so that every attempt of a requeued job continues one run.
RUN_ID_VARIABLE = "MLOPS_RUN_ID"


#: ``fn(proposed_run_id) -> (agreed_run_id, is_leader)``, or None (every process leads)
RunCoordinator = Callable[[str], "tuple[str, bool]"]
_COORDINATOR: RunCoordinator | None = None
_RUN_ID = re.compile(r"[0-9A-Za-z-]{4,64}")


def set_run_coordinator(fn: RunCoordinator | None) -> RunCoordinator | None:
    """Install how the processes of one job agree on one run; returns the previous one.

    ``fn(proposed_run_id)`` is called by ``Registry.start_run`` in every process of the
    job (it is a collective: every process must start the run) with the id this process
    would use; it returns ``(run_id, is_leader)``: the id all processes use (rank 0's)
    and whether this process writes the run to the registry. ``None`` removes it: each
    process then starts a run of its own (the behaviour without ``engine.dist``).
    ``engine.dist`` installs one when its world has more than one rank.

    Examples
    --------
    >>> prev = set_run_coordinator(lambda proposed: ("0123456789abcdef", False))
    >>> set_run_coordinator(prev) is not None
    True
    """
    global _COORDINATOR
    if fn is not None and not callable(fn):
        raise TypeError(f"fn must be a callable (proposed run id) -> (run id, is leader) or "
                        f"None, got {fn!r}")
    prev, _COORDINATOR = _COORDINATOR, fn
    return prev


def run_coordinator() -> RunCoordinator | None:
    """The installed run coordinator (:func:`set_run_coordinator`), or None."""
    return _COORDINATOR


def check_run_id(run_id) -> str:
    """A run id given by the caller: 4 to 64 letters, digits or ``-``."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run_id must be 4 to 64 letters, digits or '-', got {run_id!r}")
    return run_id


def _check_key(key, what: str) -> str:
    if not isinstance(key, str) or not key or len(key) > 250:
        raise ValueError(f"{what} must be a non-empty string of at most 250 characters, got {key!r}")
    return key


class Run:
    """A training run; use as a context manager (``with reg.start_run(...) as run``).

    On a normal exit the run ends ``FINISHED``; on an exception ``FAILED`` (on
    KeyboardInterrupt or SystemExit ``KILLED``), and the exception propagates. Logging
    anything to a run that has ended raises :class:`~engine.registry.RunFinished`.

    ``leader`` is False on the ranks of a distributed job other than rank 0 (see
    :func:`set_run_coordinator`): there the run has the job's id (``run_id``) but
    ``log_metric(s)``, ``log_param(s)``, ``set_tag``, ``log_input``, ``log_model``,
    ``log_checkpoint``, ``flush`` and ``end`` write nothing (the log and model calls
    return None), so a script run on every rank records everything once.
    """

    def __init__(self, registry, name: str, run_id: str, params: dict, rank: int,
                 leader: bool = True):
        self.registry = registry
        self.name = name
        self.id = run_id
        self.params = dict(params)
        self.rank = rank
        self.leader = bool(leader)
        self.status = "RUNNING"
        self._new_params: dict = {}
        self._tags: dict = {}
        self._keys: list[str] = []
        self._steps: list[int] = []
        self._values: list[float] = []
        self._times: list[float] = []
        self._summary: dict[str, dict] = {}
        self._segments = 0
        self._last_flush = time.monotonic()
        self._auto_step: dict[str, int] = {}

    def __repr__(self) -> str:
        follower = "" if self.leader else ", follower"
        return f"Run({self.name!r}, id={self.id!r}, status={self.status}{follower})"

    @property
    def run_id(self) -> str:
        """The run's id (the same on every rank of a distributed job)."""
        return self.id

    def _continue_series(self) -> None:
        """Continue a re-attached run: its summary, next steps and segment numbers from
        the metric segments that earlier processes of the run flushed."""
        fs = self.registry.store.fs
        d = metrics_dir(self.id)
        for f in fs.list(d):
            if not (f.startswith("metrics-") and f.endswith(".arrow")):
                continue
            cols = read_segment(fs, f"{d}/{f}").to_pydict()
            for key, step, v in zip(cols["key"], cols["step"], cols["value"]):
                v = float("nan") if v is None else v
                self._auto_step[key] = step + 1
                s = self._summary.get(key)
                if s is None:
                    self._summary[key] = {"last": v, "step": step, "min": v, "max": v, "count": 1}
                    continue
                s["last"], s["step"], s["count"] = v, step, s["count"] + 1
                if v < s["min"] or s["min"] != s["min"]:
                    s["min"] = v
                if v > s["max"] or s["max"] != s["max"]:
                    s["max"] = v
            self._segments += 1

    # ------------------------------------------------------------------ logging
    def check_running(self) -> None:
        """Raise :class:`~engine.registry.RunFinished` if the run has ended.

        An ended run's summary is committed: what comes after would be lost, so it is refused.
        """
        if self.status != "RUNNING":
            raise RunFinished(f"run {self.id} ({self.name}) is {self.status}: nothing more can "
                              "be logged to it; start a new run (Registry.start_run)")

    def log_metric(self, key: str, value, step: int | None = None) -> None:
        """Append one point of metric ``key`` (``step`` defaults to the key's next step)."""
        self.check_running()
        if not self.leader:
            return
        if key not in self._summary:
            _check_key(key, "metric key")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {key!r}: value must be a number, got {value!r}") from None
        if step is None:
            step = self._auto_step.get(key, 0)
        elif isinstance(step, bool) or not isinstance(step, int):
            if not (hasattr(step, "item") and isinstance(step.item(), int)):
                raise TypeError(f"metric {key!r}: step must be an integer, got {step!r}")
            step = step.item()
        self._auto_step[key] = step + 1
        now = time.time()
        self._keys.append(key)
        self._steps.append(step)
        self._values.append(v)
        self._times.append(now)
        s = self._summary.get(key)
        if s is None:
            self._summary[key] = {"last": v, "step": step, "min": v, "max": v, "count": 1}
        else:
            s["last"], s["step"], s["count"] = v, step, s["count"] + 1
            if v < s["min"] or s["min"] != s["min"]:
                s["min"] = v
            if v > s["max"] or s["max"] != s["max"]:
                s["max"] = v
        if len(self._keys) >= FLUSH_POINTS or time.monotonic() - self._last_flush > FLUSH_SECONDS:
            self.flush()

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        self.check_running()
        if not self.leader:
            return
        for k, v in metrics.items():
            self.log_metric(k, v, step)

    def log_param(self, key: str, value) -> None:
        self.check_running()
        if not self.leader:
            return
        self._new_params[_check_key(key, "param key")] = json_value(value, f"param {key!r}")
        self.params[key] = self._new_params[key]

    def log_params(self, params: dict) -> None:
        self.check_running()
        if not self.leader:
            return
        for k, v in params.items():
            self.log_param(k, v)

    def set_tag(self, key: str, value) -> None:
        self.check_running()
        if not self.leader:
            return
        self._tags[_check_key(key, "tag key")] = str(value)

    def log_input(self, ref) -> str | None:
        """Record a dataset version or registry version this run reads; returns its node
        (None on a follower rank)."""
        return self._edge("run_input", ref)

    def log_output(self, ref) -> str | None:
        """Record an existing dataset version or registry version this run points to
        (lineage ``run -> ref``: what it produced or, for a retrain signal, the data to
        retrain on); returns its node (None on a follower rank). Versions the run
        registers itself (:meth:`log_model`) are linked without it."""
        return self._edge("run_output", ref)

    def _edge(self, op: str, ref) -> str | None:
        self.check_running()
        if not self.leader:
            return None
        n = self.registry.lineage_node(ref)
        self.registry.commit(lambda: [{"op": op, "run_id": self.id, "node": n}])
        return n

    def log_model(self, name: str, obj, kind: str = "model", **kw):
        """Register ``obj`` (path, bytes, state dict, ...) as an output version of this run
        (on a follower rank: nothing, returns None)."""
        if not self.leader:
            self.check_running()
            return None
        return self.registry.register(name, obj, kind=kind, run=self, **kw)

    def log_checkpoint(self, name: str, obj, **kw):
        return self.log_model(name, obj, kind="checkpoint", **kw)

    # ------------------------------------------------------------------ persistence
    def flush(self) -> None:
        """Write the buffered metric points as one immutable segment file."""
        self._last_flush = time.monotonic()
        if not self._keys or not self.leader:
            return
        t = table_from_columns({"key": self._keys, "step": self._steps, "value": self._values,
                                "time": self._times}, METRIC_SCHEMA)
        t = t.replace_schema_metadata({DIGEST_KEY: segment_digest(t).encode()})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, t.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
            w.write_table(t)
        fs = self.registry.store.fs
        d = metrics_dir(self.id)
        fs.makedirs(d)
        while not fs.create_exclusive(f"{d}/metrics-{self._segments + 1:06d}.arrow",
                                      sink.getvalue().to_pybytes()):
            self._segments += 1  # a segment of an earlier process of this run (requeue)
        self._segments += 1
        self._keys, self._steps, self._values, self._times = [], [], [], []

    def summary(self) -> dict:
        """Per metric key: last value, its step, min, max and count (NaN-safe JSON)."""
        return {k: {f: (None if isinstance(v, float) and not math.isfinite(v) else v)
                    for f, v in s.items()} for k, s in self._summary.items()}

    def end(self, status: str = "FINISHED") -> None:
        if status not in STATUSES[1:]:
            raise ValueError(f"status must be one of {STATUSES[1:]}, got {status!r}")
        if self.status != "RUNNING":
            return
        if not self.leader:
            self.status = status
            return
        self.flush()
        self.registry.commit(lambda: [{
            "op": "run_end", "run_id": self.id, "status": status, "end": now_iso(),
            "params": self._new_params, "tags": self._tags, "metrics": self.summary()}])
        self.status = status

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.end("FINISHED")
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            self.end("KILLED")
        else:
            self.end("FAILED")


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]
