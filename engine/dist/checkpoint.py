"""Checkpoints of a data-parallel training job in the registry, and exact resume.

A checkpoint is one registry version of kind ``checkpoint`` (linked to the run) holding
everything a job needs to continue as if it had never stopped:

- the model's ``state_dict()`` and the optimizer's (a ``DistributedOptimizer`` gives its
  wrapped optimizer's), the scheduler's when one is given;
- every rank's RNG states (torch CPU, CUDA of the current device when CUDA is in use,
  NumPy's global generator, Python's ``random``), gathered to rank 0;
- the loader's ``state_dict()``, the position (``step``) and the world size.

**Step convention.** ``maybe_save(step, ...)`` and ``save(step, ...)`` are called *after*
step ``step`` ran; the checkpoint records the next step to run, ``step + 1``, which is
what :meth:`Checkpointer.resume` returns, so ``loader.iterate(start)`` continues exactly
there. ``maybe_save`` saves when ``(step + 1) % every_steps == 0``: with
``every_steps=500``, after steps 499, 999, ... (positions 500, 1000, ...).

**Layout** (``checkpoint.safetensors``, ``format_version`` 1): one file in the published
safetensors layout. Every tensor and NumPy array of the state is a tensor of the file,
named by its path (``model/fc.weight``, ``optimizer/state/0/exp_avg``,
``rng/1/numpy/1``), laid out in name order; the rest of the structure (numbers, strings,
tuples, dicts with int keys, param groups, the loader position) is JSON in the header's
``__metadata__["mlops_checkpoint"]``, each tensor referenced by name. No pickle: loading
runs no code. Because tensors sit at the same offsets each time and the store cuts
content-defined chunks, a save where the weights did not change stores only the chunks
of the header and the RNG states (a few hundred KiB whatever the model's size).
:func:`load_checkpoint` reads one back as the nested dict.

**Only rank 0 touches the store.** It writes the checkpoint; at resume it reads it and
broadcasts the bytes to the other ranks (one read of the shared store, and ranks on nodes
that do not mount it still resume). Every call is a collective: every rank calls
``maybe_save``/``save``/``resume`` at the same step. A failure on rank 0 (a full disk, a
finished run) is raised on every rank, after which all ranks return together.

**RNG at resume.** On the same number of ranks, each rank restores its own states, after
the model, optimizer, scheduler and loader are loaded (so a loader that draws from the
global RNG while it fast-forwards does not shift them): training continues bit-identically.
On a different number of ranks the saved per-rank streams cannot be mapped to the new
ranks; each rank instead reseeds torch, NumPy and ``random`` from
``numpy.random.SeedSequence([seed, step, rank])``, where ``seed`` is rank 0's
``torch.initial_seed()`` when it saved (the value given to ``torch.manual_seed``):
deterministic, different per rank, different per resume position.

**Retention.** ``keep_last=N`` keeps the newest N live versions of the checkpoint name:
after each save, older versions that no alias points at are deleted with registry
``delete_version`` commits (the log says ``checkpoint keep_last=N``); their chunks are
freed by the store's next gc (``Registry.gc()`` or ``mlops data gc``, after its grace
period), chunks still used by the kept versions stay.

**The run** (leader only, at the first save or at resume): tags ``dist.world_size``,
``dist.hosts``, ``dist.launcher`` on the run (committed at once, so a killed job keeps
them) and the loader's dataset version (``loader.source_ref``) as a run input. Every save
also flushes the run's buffered metric points, so those logged up to a checkpoint survive
a killed job; a job resumed on the same run (``start_run(..., run_id=...)``) logs the
steps after the checkpoint again (points a periodic flush wrote between the checkpoint
and the kill then appear twice in the series).

**Preemption** (:mod:`engine.dist.preempt`). ``Checkpointer(preemption="auto")`` (the
default) installs the process's :class:`~engine.dist.preempt.Preemption` when it runs as
a Slurm job (``SLURM_JOB_ID``) or when ``MLOPS_PREEMPT_SIGNALS`` is set. Then
``maybe_save`` also asks, at every step, whether any rank received the warning signal
(SIGUSR2, or SIGTERM): one 1-element allreduce, which is why every rank must call
``maybe_save`` after every step. When one did, every rank saves a checkpoint after that
same step, rank 0 requeues the job within its budget and tags the run, and every rank
raises :class:`~engine.dist.preempt.Preempted` (a ``SystemExit``: exit code 0 when
requeued, 3 when not). The next attempt's ``resume`` continues at the following step.
"""

from __future__ import annotations

import json
import operator
import struct

import numpy as np

from ..registry import tensors
from ..registry.errors import RegistryCorruption
from ..registry.runs import set_run_coordinator
from ..store.store import check_name
from .preempt import Preemption, auto_preemption
from .world import (
    DistError,
    allgather_object,
    allreduce_,
    broadcast_array_,
    broadcast_object,
    get_world,
    wait,
)

__all__ = ["Checkpointer", "CheckpointError", "load_checkpoint", "log_metrics", "share_runs",
           "dumps", "loads", "check_state", "capture_rng", "restore_rng", "reseed_rng",
           "FORMAT_VERSION"]

#: version of the checkpoint layout written by this module
FORMAT_VERSION = 1
FILENAME = "checkpoint.safetensors"
_META = "mlops_checkpoint"
_REDUCE = ("mean", "sum", "max")


# ----------------------------------------------------------------------------- runs


def share_runs(world=None) -> None:
    """Make ``Registry.start_run`` start one run per job in ``world`` (rank 0 leads).

    Installs a registry run coordinator that broadcasts rank 0's run id, so every rank's
    ``start_run`` returns a run with the same id, committed once; on the other ranks the
    run's logging is a no-op. ``world`` None or of size 1 removes it. ``engine.dist.init``
    calls it.
    """
    if world is None or world.size <= 1:
        set_run_coordinator(None)
        return

    def coordinate(proposed: str) -> tuple[str, bool]:
        agreed = broadcast_object(proposed, 0, "start_run: agree on the run id", world)
        return agreed, world.rank == 0

    set_run_coordinator(coordinate)


def log_metrics(run, metrics: dict, step: int | None = None, reduce: str | None = None,
                world=None) -> dict:
    """Log ``metrics`` on rank 0, reduced across the ranks first when ``reduce`` is given.

    A collective when ``reduce`` is given: every rank calls it with the same keys.

    Parameters
    ----------
    run : Run
        The run (on other ranks than 0 it is not written to).
    metrics : dict
        Metric name -> number.
    step : int, optional
        The step of the points.
    reduce : {"mean", "sum", "max"}, optional
        Reduce each value over the ranks (in float64) before logging; None logs rank 0's.

    Returns
    -------
    dict
        The values logged (the reduced ones; rank 0's own without ``reduce``).

    Examples
    --------
    >>> log_metrics(None, {"loss": 0.25}, reduce="mean")   # a world of one, no run
    {'loss': 0.25}
    """
    if reduce is not None and reduce not in _REDUCE:
        raise ValueError(f"reduce must be one of {', '.join(_REDUCE)} or None, got {reduce!r}")
    if not isinstance(metrics, dict):
        raise TypeError(f"metrics must be a dict of name -> number, got {type(metrics).__name__}")
    w = world or get_world()
    out = dict(metrics)
    if reduce is not None:
        keys = sorted(metrics)
        try:
            buf = np.array([float(metrics[k]) for k in keys], np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"metrics must be numbers to reduce, got {metrics!r}") from None
        if w.size > 1:
            if reduce == "max":
                from mpi4py import MPI

                wait(w.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.MAX), "log_metrics (max)", w)
            else:
                allreduce_(buf, f"log_metrics ({reduce})", w)
                if reduce == "mean":
                    buf /= w.size
        out = {k: float(v) for k, v in zip(keys, buf)}
    if w.rank == 0 and run is not None:
        run.log_metrics(out, step)
    return out


# ----------------------------------------------------------------------------- RNG


def capture_rng() -> dict:
    """This process's RNG states (torch CPU, CUDA of the current device when CUDA is in
    use, NumPy's global generator, Python's ``random``), as NumPy arrays and numbers."""
    import random

    import torch

    version, internal, gauss = random.getstate()
    st = {"python": (version, np.array(internal, np.uint32), gauss),
          "numpy": np.random.get_state(),  # noqa: NPY002 - the global one is the state
          "torch": torch.get_rng_state().numpy().copy(),
          "torch_seed": int(torch.initial_seed())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state().numpy().copy()
    return st


def restore_rng(st: dict) -> None:
    """Set this process's RNG states to ``st`` (from :func:`capture_rng`)."""
    import random

    import torch

    version, internal, gauss = st["python"]
    random.setstate((version, tuple(int(x) for x in internal), gauss))
    np.random.set_state(tuple(st["numpy"]))  # noqa: NPY002
    torch.set_rng_state(torch.from_numpy(np.array(st["torch"], np.uint8)))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state(torch.from_numpy(np.array(st["cuda"], np.uint8)))


def reseed_rng(seed: int, step: int, rank: int) -> None:
    """Seed torch, NumPy and ``random`` from ``SeedSequence([seed, step, rank])``."""
    import random

    import torch

    words = np.random.SeedSequence([int(seed), int(step), int(rank)]).generate_state(4, np.uint32)
    s64 = int(words[0]) << 32 | int(words[1])
    torch.manual_seed(s64)  # CUDA generators too
    np.random.seed(words)  # noqa: NPY002
    random.seed(s64 ^ int(words[2]) << 32 ^ int(words[3]))


# ----------------------------------------------------------------------------- layout


def _check_tensor(x, path: str):
    import torch

    if x.dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64,
                   torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool):
        return
    raise TypeError(f"checkpoint: {path} is a torch tensor of dtype {x.dtype}, which the "
                    "checkpoint layout cannot hold (float64/32/16, bfloat16, int64/32/16/8, "
                    "uint8, bool)")


def _encode(obj, path: str, flat: dict):
    """``obj`` as JSON, with every tensor and array moved into ``flat`` under its path."""
    import sys

    torch = sys.modules.get("torch")

    def put(x):
        name = path or "root"
        while name in flat:  # paths are unique unless a key holds a "/"
            name += "'"
        flat[name] = x
        return name

    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.generic):
        a = np.asarray(obj)
        return {"__ckpt_npscalar__": put(_np_checked(a, path))}
    if isinstance(obj, (int, float)):
        return obj
    if torch is not None and isinstance(obj, torch.Tensor):
        _check_tensor(obj, path)
        return {"__ckpt_tensor__": put(obj.detach()),
                "dtype": str(obj.dtype).removeprefix("torch.")}
    if isinstance(obj, np.ndarray):
        return {"__ckpt_ndarray__": put(_np_checked(obj, path))}
    if isinstance(obj, tuple):
        return {"__ckpt_tuple__": [_encode(v, f"{path}/{i}", flat) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{path}/{i}", flat) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__ckpt_") for k in obj):
            return {k: _encode(v, f"{path}/{k}" if path else k, flat) for k, v in obj.items()}
        for k in obj:
            if k is not None and not isinstance(k, (bool, int, float, str, tuple)):
                raise TypeError(f"checkpoint: {path or 'the state'} has a key of type "
                                f"{type(k).__name__}; keys must be str, int, float, bool, "
                                "None or tuples of them")
        return {"__ckpt_dict__": [[_encode(k, f"{path}/key{i}", flat),
                                   _encode(v, f"{path}/{k}", flat)]
                                  for i, (k, v) in enumerate(obj.items())]}
    raise TypeError(f"checkpoint: {path or 'the state'} is a {type(obj).__name__}; a checkpoint "
                    "holds tensors, NumPy arrays, numbers, strings, None, and lists, tuples "
                    "and dicts of them")


def _np_checked(a: np.ndarray, path: str) -> np.ndarray:
    if a.dtype.newbyteorder("=") in (np.dtype(t) for t in (
            np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8,
            np.uint64, np.uint32, np.uint16, np.uint8, np.bool_)):
        return a
    raise TypeError(f"checkpoint: {path} is a NumPy array of dtype {a.dtype}, which the "
                    "checkpoint layout cannot hold (numbers and bool)")


class CheckpointError(ValueError):
    """A file that is not a checkpoint of this layout, or a damaged one; the message names
    it (the registry reference it was read from)."""


def _decode(obj, arrays: dict, where: str):
    """The state that the JSON tree ``obj`` describes, its tensors taken from ``arrays``.
    The tree comes from a file: every reference and structure is checked
    (:class:`CheckpointError` naming ``where``)."""
    if isinstance(obj, list):
        return [_decode(v, arrays, where) for v in obj]
    if not isinstance(obj, dict):
        return obj

    def array(key):
        name = obj[key]
        if not isinstance(name, str) or name not in arrays:
            raise CheckpointError(f"{where}: its state refers to a tensor {str(name)[:80]!r} "
                                  "the file does not hold")
        return arrays[name]

    if "__ckpt_tensor__" in obj:
        import torch

        t = torch.from_numpy(array("__ckpt_tensor__"))
        if obj.get("dtype") == "bfloat16":
            if t.dtype != torch.int16 and t.dtype != torch.uint16:
                raise CheckpointError(f"{where}: a bfloat16 tensor is not stored as 16-bit words")
            return t.view(torch.bfloat16)
        return t
    if "__ckpt_ndarray__" in obj:
        return array("__ckpt_ndarray__")
    if "__ckpt_npscalar__" in obj:
        a = array("__ckpt_npscalar__")
        if a.ndim != 0:
            raise CheckpointError(f"{where}: a NumPy scalar is stored with shape {a.shape}")
        return a[()]
    if "__ckpt_tuple__" in obj:
        items = obj["__ckpt_tuple__"]
        if not isinstance(items, list):
            raise CheckpointError(f"{where}: a tuple of its state is not a list")
        return tuple(_decode(v, arrays, where) for v in items)
    if "__ckpt_dict__" in obj:
        pairs = obj["__ckpt_dict__"]
        if not (isinstance(pairs, list) and all(isinstance(p, list) and len(p) == 2
                                                for p in pairs)):
            raise CheckpointError(f"{where}: a dict of its state is not a list of pairs")
        out = {}
        for k, v in pairs:
            key = _hashable(_decode(k, arrays, where))
            try:
                hash(key)
            except TypeError:
                raise CheckpointError(f"{where}: a dict of its state has a key of type "
                                      f"{type(key).__name__}") from None
            out[key] = _decode(v, arrays, where)
        return out
    return {k: _decode(v, arrays, where) for k, v in obj.items()}


def _hashable(k):
    return tuple(_hashable(x) for x in k) if isinstance(k, (list, tuple)) else k


def layout(state: dict) -> tensors.TensorFile:
    """The checkpoint file of ``state``, laid out over its tensors (not yet written): the
    registry writes it on the host, or, for tensors in GPU memory, on the device, where it
    is chunked and hashed before anything is copied to the host."""
    flat: dict = {}
    tree = _encode(state, "", flat)
    meta = json.dumps({"format_version": FORMAT_VERSION, "state": tree}, separators=(",", ":"))
    return tensors.layout(flat, metadata={_META: meta})


def dumps(state: dict) -> bytes:
    """The checkpoint file of ``state`` (a dict of tensors, arrays and plain values)."""
    return layout(state).to_bytes()


def loads(data, where: str = "checkpoint") -> dict:
    """The state dict of a checkpoint file (torch tensors where torch tensors were saved).

    Raises :class:`CheckpointError` (a ``ValueError``) naming ``where`` for bytes that are
    not a checkpoint of this layout or are damaged; it allocates at most the file's size
    again (the tensors' copies) besides the Python objects of its header.
    """
    view = memoryview(data).cast("B")
    if len(view) < 8:
        raise CheckpointError(f"{where}: {len(view)} bytes is too short for a checkpoint file")
    (n,) = struct.unpack("<Q", view[:8])
    if n > tensors.MAX_HEADER or 8 + n > len(view):
        raise CheckpointError(f"{where}: its header length {n} does not fit in its "
                              f"{len(view)} bytes")
    try:
        meta = json.loads(bytes(view[8:8 + n]))["__metadata__"][_META]
        doc = json.loads(meta)
    except (ValueError, KeyError, TypeError, RecursionError):
        raise CheckpointError(f"{where} is not an engine.dist checkpoint (no {_META!r} metadata "
                              "in its safetensors header)") from None
    if not isinstance(doc, dict) or doc.get("format_version") != FORMAT_VERSION:
        version = doc.get("format_version") if isinstance(doc, dict) else None
        raise CheckpointError(f"{where} has checkpoint format_version {version!r}; this version "
                              f"of mlops-engine reads {FORMAT_VERSION}")
    if "state" not in doc:
        raise CheckpointError(f"{where} holds no state")
    try:
        arrays = tensors.loads(view, "np", where)
    except RegistryCorruption as exc:
        raise CheckpointError(str(exc)) from None
    except (TypeError, ValueError, OverflowError) as exc:
        # a tensor whose header passed tensors' checks but whose shape NumPy refuses
        raise CheckpointError(f"{where}: a tensor has a malformed shape ({exc})") from None
    try:
        return _decode(doc["state"], arrays, where)
    except RecursionError:
        raise CheckpointError(f"{where}: its state is nested too deeply") from None


def check_state(state, where: str) -> None:
    """Raise :class:`CheckpointError` unless ``state`` (from :func:`loads`) has what
    :meth:`Checkpointer.resume` reads: ``step``, ``world_size``, ``model``, ``optimizer``,
    ``scheduler``, ``loader`` and one RNG state per rank."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: its state is a {type(state).__name__}, not a dict")
    for key in ("step", "world_size", "model", "optimizer", "scheduler", "loader", "rng"):
        if key not in state:
            raise CheckpointError(f"{where}: its state has no {key!r}")
    step, size, rngs = state["step"], state["world_size"], state["rng"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{where}: its step {step!r} is not an integer >= 0")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise CheckpointError(f"{where}: its world_size {size!r} is not an integer >= 1")
    if not (isinstance(rngs, list) and len(rngs) == size
            and all(isinstance(r, dict) and {"python", "numpy", "torch", "torch_seed"} <= r.keys()
                    for r in rngs)):
        raise CheckpointError(f"{where}: its RNG states are not one per rank of its "
                              f"{size} ranks")


def load_checkpoint(registry, ref) -> dict:
    """A registered checkpoint (``"name:v3"``, ``"name@latest"``) as its state dict:
    ``step``, ``world_size``, ``model``, ``optimizer``, ``scheduler``, ``loader``, ``rng``
    (one dict per rank)."""
    mv = registry.get(ref)
    return loads(registry.read_bytes(mv.ref), mv.ref)


# ----------------------------------------------------------------------------- Checkpointer


def _positive_int(x, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x < 1:
        raise ValueError(f"{what} must be a positive integer, got {x!r}")
    return x


def _step(step) -> int:
    try:
        s = operator.index(step)
    except TypeError:
        raise TypeError(f"step must be an integer, got {step!r}") from None
    if isinstance(step, bool) or s < 0:
        raise ValueError(f"step must be an integer >= 0, got {step!r}")
    return s


def _has(obj, *methods) -> bool:
    return all(callable(getattr(obj, m, None)) for m in methods)


class Checkpointer:
    """Save a training job's state into the registry every ``every_steps`` steps, resume it.

    Parameters
    ----------
    name : str
        The checkpoint artifact's name in the registry (kind ``checkpoint``).
    run : Run, optional
        The run the checkpoints belong to (each version is linked to it); its registry is
        used unless ``registry`` is given.
    every_steps : int
        ``maybe_save(step, ...)`` saves when ``(step + 1) % every_steps == 0``.
    keep_last : int or None
        Keep the content of the newest ``keep_last`` checkpoint versions of ``name``
        (older unaliased versions are deleted); None keeps all.
    registry : Registry, optional
        Default: the run's, else ``Registry()`` (``$MLOPS_HOME`` or ``./.mlops``).
    scheduler : optional
        A learning-rate scheduler (anything with ``state_dict``/``load_state_dict``).
    world : World, optional
        Default ``engine.dist.get_world()``.
    preemption : "auto", None or Preemption
        ``"auto"``: when running as a Slurm job (``SLURM_JOB_ID``) or when
        ``MLOPS_PREEMPT_SIGNALS`` is set, the process's shared
        :class:`~engine.dist.preempt.Preemption`, installed (its handlers catch SIGUSR2
        and SIGTERM); otherwise none. None: no preemption handling. A ``Preemption``:
        that one (installed here if it is not yet).

    Notes
    -----
    With a preemption, :meth:`maybe_save` is also a collective at *every* step (one
    1-element allreduce: did any rank get the warning signal?), so every rank must call
    it after every step, as the loop above does. When the ranks agree, it saves after
    that step, whatever the cadence, then calls ``preemption.stop(run, ref)``, which
    requeues the job (rank 0, within ``MLOPS_MAX_REQUEUES``), tags the run and raises
    :class:`~engine.dist.preempt.Preempted` on every rank (exit code 0 when requeued,
    3 when not). The requeued job's :meth:`resume` continues at the next step.

    Examples
    --------
    >>> import tempfile, torch
    >>> from engine.registry import Registry
    >>> reg = Registry(tempfile.mkdtemp() + "/store", index_path=":memory:")
    >>> model = torch.nn.Linear(2, 1); opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> ckpt = Checkpointer("demo", registry=reg, every_steps=2)
    >>> ckpt.resume(model, opt)
    0
    >>> [ckpt.maybe_save(step, model, opt) for step in range(4)]
    [None, 'demo:v1', None, 'demo:v2']
    >>> ckpt.resume(model, opt)
    4
    """

    def __init__(self, name: str, run=None, every_steps: int = 500, keep_last: int | None = 3,
                 *, registry=None, scheduler=None, world=None, preemption="auto"):
        self.name = check_name(name, "name")
        if run is not None and not (isinstance(getattr(run, "id", None), str)
                                    and hasattr(run, "registry")):
            raise TypeError(f"run must be a registry Run (Registry.start_run) or None, got {run!r}")
        self.run = run
        self.every_steps = _positive_int(every_steps, "every_steps")
        self.keep_last = None if keep_last is None else _positive_int(keep_last, "keep_last")
        if scheduler is not None and not _has(scheduler, "state_dict", "load_state_dict"):
            raise TypeError("scheduler must have state_dict() and load_state_dict(), got "
                            f"{type(scheduler).__name__}")
        self.scheduler = scheduler
        if world is not None and not (hasattr(world, "rank") and hasattr(world, "size")):
            raise TypeError(f"world must be an engine.dist.World or None, got {world!r}")
        self.world = world if world is not None else get_world()
        self._registry = registry if registry is not None else getattr(run, "registry", None)
        self._recorded = False
        if isinstance(preemption, str) and preemption == "auto":
            preemption = auto_preemption(self.world)
        elif preemption is not None and not isinstance(preemption, Preemption):
            raise TypeError(f"preemption must be 'auto', None or an engine.dist.Preemption, "
                            f"got {preemption!r}")
        elif preemption is not None:
            preemption.install()
        #: the :class:`~engine.dist.preempt.Preemption` in use, or None
        self.preemption: Preemption | None = preemption
        #: the reference of the last checkpoint saved or resumed from (every rank)
        self.last_ref: str | None = None

    def __repr__(self) -> str:
        return (f"Checkpointer({self.name!r}, every_steps={self.every_steps}, "
                f"keep_last={self.keep_last})")

    @property
    def registry(self):
        """The registry checkpoints go to (rank 0 opens it; created on first use)."""
        if self._registry is None:
            from ..registry import Registry

            self._registry = Registry()
        return self._registry

    # ------------------------------------------------------------------ saving
    def maybe_save(self, step, model, opt, loader=None) -> str | None:
        """Save if ``(step + 1) % every_steps == 0`` (after step ``step`` ran); returns the
        new checkpoint's reference (``name:vN``), else None. Every rank calls it, after
        every step.

        With a preemption (see the class notes) it first asks whether any rank received
        the warning signal; if so it saves now and raises
        :class:`~engine.dist.preempt.Preempted` on every rank.
        """
        s = _step(step)
        if self.preemption is not None and self.preemption.agreed(s):
            ref = self.save(s, model, opt, loader)
            self.preemption.stop(self.run, ref, step=s)
        if (s + 1) % self.every_steps:
            return None
        return self.save(s, model, opt, loader)

    def save(self, step, model, opt, loader=None) -> str:
        """Save now, after step ``step`` ran (the checkpoint's position is ``step + 1``);
        returns its reference (``name:vN``) on every rank, when rank 0 has stored it.

        A collective: every rank calls it at the same step. Raises on every rank if
        rank 0 failed to store the checkpoint.
        """
        s = _step(step)
        self._check_objects(model, opt, loader)
        w = self.world
        rngs = allgather_object(capture_rng(), f"checkpoint {self.name}: gather RNG states", w)
        status, error = None, None
        if w.rank == 0:
            try:
                status = ("ok", self._store(s + 1, model, opt, loader, rngs))
            except Exception as exc:  # noqa: BLE001 - reported to every rank, re-raised here
                error = exc
                status = ("error", f"{type(exc).__name__}: {exc}")
        status = broadcast_object(status, 0, f"checkpoint {self.name}: saved", w)
        if status[0] == "error":
            if error is not None:
                raise error
            raise DistError(f"checkpoint {self.name} at step {s + 1} failed on rank 0: "
                            f"{status[1]}")
        self.last_ref = status[1]
        return status[1]

    def _check_objects(self, model, opt, loader) -> None:
        if not _has(model, "state_dict", "load_state_dict"):
            raise TypeError(f"model must be a torch module (state_dict/load_state_dict), got "
                            f"{type(model).__name__}")
        if opt is not None and not _has(opt, "state_dict", "load_state_dict"):
            raise TypeError(f"opt must be an optimizer (state_dict/load_state_dict) or None, "
                            f"got {type(opt).__name__}")
        if loader is not None and not _has(loader, "state_dict", "load_state_dict"):
            raise TypeError(f"loader must have state_dict() and load_state_dict() (a "
                            f"ShardedLoader) or be None, got {type(loader).__name__}")

    def _store(self, position: int, model, opt, loader, rngs) -> str:
        """Rank 0: write the checkpoint, link it to the run, apply retention."""
        state = {"step": position, "world_size": self.world.size,
                 "model": model.state_dict(),
                 "optimizer": None if opt is None else opt.state_dict(),
                 "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                 "loader": None if loader is None else loader.state_dict(),
                 "rng": rngs}
        data = layout(state)
        if not data.on_device():
            data = data.to_bytes()
        self._record_run(loader)
        if self.run is not None and getattr(self.run, "leader", True):
            self.run.flush()  # the metric points up to the checkpoint survive a kill
        tags = {"step": position, "world_size": self.world.size}
        reg = self.registry
        if self.run is not None:
            mv = reg.register(self.name, data, kind="checkpoint", run=self.run, tags=tags,
                              params={"step": position}, filename=FILENAME)
        else:
            mv = reg.register(self.name, data, kind="checkpoint", tags=tags,
                              params={"step": position}, filename=FILENAME)
        if self.keep_last is not None:
            self._retain(reg)
        return mv.ref

    def _retain(self, reg) -> None:
        """Delete the live versions of ``name`` older than the newest ``keep_last``, except
        those an alias points at. Built against the log's head (compare-and-set), so an
        alias set meanwhile is respected."""
        keep = self.keep_last

        def doomed():
            newest = list(reversed(reg.versions(self.name)))
            return [{"op": "delete_version", "name": self.name, "version": mv.version,
                     "reason": f"checkpoint keep_last={keep}"}
                    for mv in newest[keep:] if not any(a != "latest" for a in mv.aliases)]

        reg.commit(doomed)

    def _record_run(self, loader) -> None:
        """Rank 0, once: world size, hosts and launcher on the run, and the dataset read."""
        if self._recorded or self.run is None or not getattr(self.run, "leader", True):
            return
        w = self.world
        self.registry.tag(f"run:{self.run.id}", **{
            "dist.world_size": str(w.size), "dist.hosts": ",".join(w.hosts),
            "dist.launcher": w.launcher or "none"})
        ref = getattr(loader, "source_ref", None) if loader is not None else None
        if isinstance(ref, str) and not ref.startswith("data:"):
            ref = "data:" + ref  # a dataset version, even where an artifact has its name
        if ref is not None:
            self.run.log_input(ref)
        self._recorded = True

    # ------------------------------------------------------------------ resuming
    def latest(self) -> str | None:
        """Rank 0's choice to resume from: the newest checkpoint of ``name`` made by this
        run, else the newest of ``name`` (a requeued job with a new run), else None."""
        reg = self.registry
        try:
            reg.refresh()
        except FileNotFoundError:  # no store yet: nothing saved
            return None
        kind = reg.kind_of(self.name)
        if kind is None:
            return None
        if kind != "checkpoint":
            raise ValueError(f"{self.name!r} is a {kind} artifact in {reg}, not checkpoints; "
                             "give the Checkpointer another name")
        live = reg.versions(self.name)
        if not live:
            return None
        mine = [mv for mv in live if self.run is not None and mv.run_id == self.run.id]
        return (mine or live)[-1].ref

    def resume(self, model, opt, loader=None, *, ref: str | None = None) -> int:
        """Load the latest checkpoint (or ``ref``) into ``model``, ``opt``, the scheduler,
        ``loader`` and the RNGs; returns the step to continue from (0 if there is none).

        A collective: every rank calls it. Rank 0 reads the checkpoint and broadcasts it.
        See the module docstring for what happens to RNG states when the number of ranks
        changed.
        """
        self._check_objects(model, opt, loader)
        w = self.world
        head, data, error = None, None, None
        if w.rank == 0:
            try:
                found = ref if ref is not None else self.latest()
                if found is not None:
                    mv = self.registry.get(found)
                    data = self.registry.read_bytes(mv.ref)
                    head = ("ok", mv.ref, len(data))
                self._record_run(loader)
            except Exception as exc:  # noqa: BLE001 - reported to every rank, re-raised here
                error = exc
                head = ("error", f"{type(exc).__name__}: {exc}")
        head = broadcast_object(head, 0, f"checkpoint {self.name}: resume", w)
        if head is not None and head[0] == "error":
            if error is not None:
                raise error
            raise DistError(f"resuming checkpoint {self.name} failed on rank 0: {head[1]}")
        if head is None:
            return 0
        _, found, nbytes = head
        if w.size > 1:
            buf = np.frombuffer(data, np.uint8).copy() if w.rank == 0 else np.empty(nbytes, np.uint8)
            broadcast_array_(buf, 0, f"checkpoint {self.name}: broadcast {found}", w)
            data = buf
        state = loads(data, found)
        check_state(state, found)
        self._load(state, found, model, opt, loader)
        self.last_ref = found
        return int(state["step"])

    def _load(self, state: dict, found: str, model, opt, loader) -> None:
        model.load_state_dict(state["model"])
        if opt is not None:
            if state["optimizer"] is None:
                raise ValueError(f"{found} holds no optimizer state; pass opt=None")
            opt.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            if state["scheduler"] is None:
                raise ValueError(f"{found} holds no scheduler state; it was saved by a "
                                 "Checkpointer without scheduler=")
            self.scheduler.load_state_dict(state["scheduler"])
        if loader is not None:
            if state["loader"] is None:
                raise ValueError(f"{found} holds no loader state; pass loader=None")
            loader.load_state_dict(state["loader"])
        # RNG last: after the loader fast-forwarded
        w, rngs = self.world, state["rng"]
        try:
            if state["world_size"] == w.size:
                restore_rng(rngs[w.rank])
            else:
                reseed_rng(rngs[0]["torch_seed"], state["step"], w.rank)
        except (TypeError, ValueError, RuntimeError, KeyError, IndexError) as exc:
            # the RNG states come from the file: random, NumPy and torch refuse bad ones
            raise CheckpointError(f"{found}: its RNG state for rank {w.rank} is damaged "
                                  f"({type(exc).__name__}: {exc})") from None
