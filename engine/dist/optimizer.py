"""Data-parallel gradient averaging for any torch optimizer: :class:`DistributedOptimizer`
and :func:`broadcast_state`.

The design, in the order a training step meets it:

**Bucket plan.** The parameters that require grad are taken in reverse registration
order (the order backward produces their gradients) and packed into fusion buckets: the
first about ``first_bucket_mb`` MiB (so communication starts early), the rest up to
``bucket_mb`` MiB, one dtype and device per bucket (a parameter joins the open bucket of
its dtype). A parameter larger than the cap gets a bucket of its own. The plan depends
only on the model and the settings, so it is the same on every rank; at construction
every rank exchanges a SHA-256 fingerprint of the parameters (names, shapes, dtypes) and
of the plan, and where ranks disagree every rank raises :class:`DistError` naming the
ranks and the differences (``rank 1 has parameter fc.weight of shape (4, 8), rank 0
(8, 4)``).

**Zero-copy buffers.** A bucket of several parameters owns one flat contiguous tensor;
MPI gets its NumPy view (no pickling, one message per bucket). When a bucket is sent,
each gradient is scaled by ``1/size`` into its slot (the copy and the averaging are one
pass) and ``p.grad`` becomes a view into the slot. With ``zero_grad(set_to_none=False)``
backward then accumulates straight into the bucket and nothing is copied; with the
default ``set_to_none=True`` autograd hands over a fresh gradient every step and the
hook copies it in once. A bucket of one parameter (every parameter larger than
``bucket_mb``) needs no buffer: its gradient is scaled and reduced where it lies, so the
large matrices of a model are never copied at all. As with torch DDP's
``gradient_as_bucket_view``, a reference kept to a ``p.grad`` is overwritten by the next
step's averaging; clone it to keep it. Sparse gradients are refused (a ``DistError``).

**Launch and overlap.** A ``register_post_accumulate_grad_hook`` on every parameter
counts the bucket's gradients; when a bucket is complete, and every bucket before it in
the plan has been sent (non-blocking collectives must start in the same order on every
rank), it starts a sum ``Iallreduce`` (:func:`engine.dist.world.iallreduce`). MPICH moves a
non-blocking collective only inside MPI calls, and while backward runs nothing calls MPI,
so every hook also calls ``MPI.Request.Testall`` on the requests in flight (microseconds):
the collectives advance between layers. ``progress="thread"`` adds a Python thread that
polls the requests while any is in flight (and sleeps otherwise), for ranks that have a
spare core. At the end of the backward pass (an autograd engine callback, as torch DDP
does) the remaining buckets are sent and every request is completed, polling with a
deadline (the world's timeout; :class:`CollectiveTimeout` names the wait): after
``loss.backward()`` returns, ``p.grad`` is the average over ranks, so gradient clipping
and logging between ``backward()`` and ``step()`` see averaged gradients. ``step()``
then only steps the wrapped optimizer; it averages first where no backward did (the
backward ran under :meth:`DistributedOptimizer.no_sync`, or produced no gradient on this
rank).

Whether the overlap is real is what ``bench/bench_dist.py`` measures (``make bench-dist``;
numbers in ``docs/benchmarks.md``). On the 2-core CI machine, with two ranks both cores
compute during backward and MPICH's shared-memory allreduce needs a core to copy and add,
so nothing is hidden (overlap -0.06 to 0.03) and the best step is compute + allreduce.
Where a core is free (the benchmark's stand-in backward that sleeps instead of
computing), the hook polls move the collectives only at layer boundaries (overlap -0.05
to 0.07 in three runs), ``progress="thread"`` keeps them moving (0.19 to 0.45; that model
allows about half: its largest gradients come last in backward), and MPICH's own progress
thread (``MPIR_CVAR_ASYNC_PROGRESS=1``) spins all the time (-0.01 to 0.12, and it made
compute 2x slower when the ranks fill the cores). Use the default ``"hooks"`` when the ranks fill
the cores, ``"thread"`` when every rank has a core to spare (a GPU job, fewer ranks than
cores).

Two passes over the gradients are inherent: scaling by ``1/size`` (torch DDP divides
too) and, for buckets of several parameters that got fresh gradients, the copy into the
bucket (one pass: scaling and copying are one ``torch.mul(..., out=slot)``). On 117 MB
of float32 gradients the scaling alone took about 10 ms on one core of the development
machine (a probe, not the benchmark), next to about 57 ms for the raw allreduce.
Completing the requests at the end of backward polls without pausing (``os.sched_yield``
between polls) for up to :data:`SPIN_S` seconds and only then hands over to
:func:`engine.dist.world.wait`, whose 1 ms sleeps made a 32 MiB allreduce take 15 ms
instead of 9 ms in a probe on that machine.

**Unused parameters.** A parameter that gets no gradient on a rank would hold its bucket
back forever; at the end of backward (or in ``step()``) every bucket not yet sent is
sent with what the parameters hold: a rank that did not use a parameter contributes
zeros (or the gradient it accumulated earlier), and ``p.grad`` becomes the average over
all ranks, as in single-process training on the union of the batches. One small integer
allreduce per step counts the ranks that had a gradient for each parameter: a parameter
that no rank used keeps ``p.grad = None``, so optimizers skip it exactly as they would in
one process. Every rank must run the same number of synchronized backward passes per
step.

**Gradient accumulation.** Under :meth:`~DistributedOptimizer.no_sync` the hooks send
nothing and gradients accumulate locally; the next synchronized backward (or ``step()``)
averages the sums.

**Compression.** ``compression="fp16"`` or ``"bf16"`` casts each bucket (already scaled
by ``1/size``, which keeps fp16 sums from overflowing) into a preallocated half-precision
buffer, sums it across ranks in half precision and casts back. MPICH 5 has no bfloat16
type (``MPI.BFLOAT16_T`` is null) and its ``MPI.FLOAT16_T`` sum took 24 ms for 8 MB in a
probe on the development machine, against 1.6 ms for a user-defined MPI operation that
adds with torch; so both half types are summed by such an operation: half the bytes on
the wire, about 3 significant digits kept for fp16 and 2 for bf16 (the tests hold them to
4e-3 and 3e-2 of the largest gradient). Whether that beats sending float32 depends on
the interconnect: on shared memory the two casts cost about as much as the bytes saved. A callable ``compression(bucket) -> tensor`` returns the tensor to sum
(dtype float16, bfloat16, float32, float64, int32 or int64; the same shape on every
rank); an optional ``compression.decompress(summed, bucket) -> tensor`` maps the sum
back (default: cast to the bucket's dtype). The bucket it gets is already scaled by
``1/size``, so the sum is the average; the compression must commute with summation
(casts, fixed scalings, quantization to a shared grid), not be a per-rank selection such
as top-k.

**GPUs.** Buckets of CUDA parameters live on the GPU; each is staged through a pinned
host buffer for MPI (copied when sent, copied back when complete), so any MPI works,
including 2 ranks sharing one GPU. NCCL through ``torch.distributed`` would be faster on
nodes with several GPUs (NVLink) but needs one GPU per rank, a second rendezvous and a
second communication stack with its own failure modes; host staging keeps one path that
is tested on every machine, and the world's deadlines apply to it.

Examples
--------
>>> import torch, engine.dist as dist
>>> model = torch.nn.Linear(4, 2)
>>> opt = dist.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), model)
>>> [b.names for b in opt.buckets]
[('bias', 'weight')]
>>> model(torch.ones(3, 4)).sum().backward(); opt.step(); opt.zero_grad()
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import threading
import time
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from .world import (
    DistError,
    World,
    allgather_object,
    broadcast_array_,
    broadcast_object,
    get_world,
    iallreduce,
    wait,
)

__all__ = ["DistributedOptimizer", "broadcast_state", "plan_buckets", "Bucket"]

MiB = 1 << 20
#: seconds step() polls without pause before handing the wait to world.wait (1 ms sleeps)
SPIN_S = 2.0
_HALF = (torch.float16, torch.bfloat16)
_WIRE_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int32,
                torch.int64)


@dataclass(frozen=True)
class Bucket:
    """One fusion bucket of the plan: its parameters in the order backward fills them."""

    names: tuple
    dtype: str
    numel: int
    nbytes: int


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or value != value or value == float("inf"):
        raise ValueError(f"{name} must be a positive number of MiB, got {value!r}")
    return float(value)


def plan_buckets(named_params, bucket_mb: float = 25, first_bucket_mb: float = 1) -> list[list[int]]:
    """Pack parameters into fusion buckets: reverse order, one dtype and device each.

    Parameters
    ----------
    named_params : sequence of (name, tensor)
        The parameters in registration order.
    bucket_mb, first_bucket_mb : float
        The cap of every bucket and of the first one, in MiB (the first cap is at most
        ``bucket_mb``). A parameter larger than the cap gets a bucket of its own.

    Returns
    -------
    list of list of int
        Indices into ``named_params``, bucket by bucket in launch order.

    Examples
    --------
    >>> import torch
    >>> ps = [("a", torch.zeros(256)), ("b", torch.zeros(256)), ("c", torch.zeros(512))]
    >>> plan_buckets(ps, bucket_mb=3 / 1024, first_bucket_mb=2 / 1024)  # 3 KiB, 2 KiB
    [[2], [1, 0]]
    """
    cap = _positive("bucket_mb", bucket_mb) * MiB
    first = min(_positive("first_bucket_mb", first_bucket_mb) * MiB, cap)
    buckets: list[list[int]] = []
    open_: dict = {}  # (dtype, device) -> [indices, bytes, cap]
    for i in range(len(named_params) - 1, -1, -1):
        p = named_params[i][1]
        key, nb = (p.dtype, p.device), p.numel() * p.element_size()
        b = open_.get(key)
        if b is None or (b[0] and b[1] + nb > b[2]):
            b = [[], 0, first if not buckets else cap]
            buckets.append(b[0])
            open_[key] = b
        b[0].append(i)
        b[1] += nb
    return buckets


class _Slots:
    """A bucket at run time: its parameters, buffers and the state of this round."""

    __slots__ = ("index", "params", "offsets", "numel", "dtype", "flat", "half", "host",
                 "current", "payload", "request", "pending", "launched")

    def __init__(self, index, params, dtype, device, numel, offsets, half_dtype):
        self.index, self.params, self.dtype = index, params, dtype
        self.offsets, self.numel = offsets, numel
        # several parameters: one flat buffer whose slices become the p.grad views
        self.flat = torch.zeros(numel, dtype=dtype, device=device) if len(params) > 1 else None
        self.half = (torch.empty(numel, dtype=half_dtype, device=device)
                     if half_dtype is not None and half_dtype != dtype else None)
        self.host = None  # pinned staging buffer of a CUDA bucket, made when first sent
        self.current = self.payload = self.request = None
        self.pending, self.launched = len(params), False


_HALF_SUM: dict = {}


def _half_sum_op(dtype):
    """A user-defined MPI sum over float16/bfloat16 buffers, adding with torch."""
    op = _HALF_SUM.get(dtype)
    if op is None:
        from mpi4py import MPI

        def add(inbuf, outbuf, _datatype, _dtype=dtype):
            torch.frombuffer(outbuf, dtype=_dtype).add_(torch.frombuffer(inbuf, dtype=_dtype))

        op = _HALF_SUM[dtype] = MPI.Op.Create(add, commute=True)
    return op


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A NumPy view of a contiguous CPU tensor (half types as 16-bit integers)."""
    if t.dtype in _HALF:
        return t.view(torch.int16).numpy()
    if t.dtype == torch.bool:
        return t.view(torch.uint8).numpy()
    return t.numpy()


def _complete(requests, what: str, world: World) -> None:
    """Complete ``requests``: poll without pause for up to SPIN_S (the rank has nothing else
    to do, and every poll moves the transfer), then with world.wait's deadline."""
    from mpi4py import MPI

    reqs = [r for r in requests if r is not None]
    end = time.monotonic() + SPIN_S
    while not MPI.Request.Testall(reqs):
        if time.monotonic() > end:
            wait(reqs, what, world)
            return
        os.sched_yield()


def _fingerprint_differences(descs: list) -> str:
    """What differs between each rank's description and rank 0's, in words."""
    lines = []
    ref = descs[0]
    noun = ref.get("noun", "parameter")
    ref_params = {n: (s, d) for n, s, d in ref["params"]}
    for r, desc in enumerate(descs[1:], start=1):
        if desc == ref:
            continue
        found = []
        mine = {n: (s, d) for n, s, d in desc["params"]}
        for n, s, d in desc["params"]:
            if n not in ref_params:
                found.append(f"rank {r} has {noun} {n} {tuple(s)} {d}, rank 0 has none")
            elif ref_params[n][0] != s:
                found.append(f"rank {r} has {noun} {n} of shape {tuple(s)}, "
                             f"rank 0 {tuple(ref_params[n][0])}")
            elif ref_params[n][1] != d:
                found.append(f"rank {r} has {noun} {n} of dtype {d}, rank 0 {ref_params[n][1]}")
        found += [f"rank {r} has no {noun} {n}{ref.get('hint', '')}, rank 0 has "
                  f"{tuple(s)} {d}" for n, (s, d) in ref_params.items() if n not in mine]
        if not found and [p[0] for p in desc["params"]] != [p[0] for p in ref["params"]]:
            found.append(f"rank {r} registers its {noun}s in another order than rank 0")
        if not found and desc["settings"] != ref["settings"]:
            found.append(f"rank {r} plans buckets with {desc['settings']}, rank 0 with "
                         f"{ref['settings']}")
        if not found:
            found.append(f"rank {r} plans other buckets than rank 0")
        lines += found[:5] + ([f"... and {len(found) - 5} more differences on rank {r}"]
                              if len(found) > 5 else [])
    return "; ".join(lines)


def _check_same(desc: dict, what: str, world: World) -> None:
    """Fail on every rank, naming the differences, unless all ranks have the same ``desc``."""
    digest = hashlib.sha256(repr(desc).encode()).hexdigest()
    digests = allgather_object(digest, f"{what}: fingerprint", world)
    if len(set(digests)) == 1:
        return
    descs = allgather_object(desc, f"{what}: fingerprint details", world)
    raise DistError(f"{what}: the ranks do not hold the same model: "
                    f"{_fingerprint_differences(descs)}. Build the same model on every rank "
                    "(same code, same arguments) before wrapping it")


def _describe(named) -> list:
    return [(n, tuple(t.shape), str(t.dtype).replace("torch.", "")) for n, t in named]


class DistributedOptimizer(torch.optim.Optimizer):
    """Wrap a torch optimizer so that every ``step()`` uses gradients averaged over ranks.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The optimizer to wrap; its parameters must be parameters of ``model``.
    model : torch.nn.Module
        The model whose parameters (those that require grad) are synchronized.
    bucket_mb : float, default 25
        Fusion bucket size in MiB.
    compression : None, "fp16", "bf16" or callable
        How buckets travel: as they are, cast to float16 / bfloat16, or through a
        callable over a bucket (see the module docstring for its protocol).
    first_bucket_mb : float, default 1
        Size of the first bucket in MiB, small so that communication starts early.
    world : World, optional
        Default :func:`engine.dist.get_world`.
    progress : {"hooks", "thread"}
        What drives MPI while backward runs: the gradient hooks (default) or also a
        polling thread while buckets are in flight (for ranks with a spare core).

    Raises
    ------
    DistError
        The ranks hold different models or bucket plans (on every rank).
    ValueError
        A bad argument; ``optimizer`` has parameters that are not ``model``'s.

    Examples
    --------
    >>> import torch, engine.dist as dist
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 1))
    >>> opt = dist.DistributedOptimizer(torch.optim.AdamW(model.parameters()), model)
    >>> sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10)
    >>> with opt.no_sync():                    # accumulate locally
    ...     model(torch.ones(2, 8)).sum().backward()
    >>> model(torch.ones(2, 8)).sum().backward()  # averaged across ranks when it returns
    >>> opt.step(); sched.step(); opt.zero_grad()
    """

    def __init__(self, optimizer, model, bucket_mb: float = 25, compression=None, *,
                 first_bucket_mb: float = 1, world: World | None = None,
                 progress: str = "hooks"):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if isinstance(optimizer, DistributedOptimizer):
            raise ValueError("optimizer is already a DistributedOptimizer; wrap the plain optimizer once")
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        _positive("bucket_mb", bucket_mb)
        _positive("first_bucket_mb", first_bucket_mb)
        if progress not in ("hooks", "thread"):
            raise ValueError(f"progress must be 'hooks' or 'thread', got {progress!r}")
        half_dtype, compress = None, None
        if compression is None:
            cname = None
        elif isinstance(compression, str):
            if compression not in ("fp16", "bf16"):
                raise ValueError("compression must be None, 'fp16', 'bf16' or a callable over a "
                                 f"bucket, got {compression!r}")
            half_dtype = torch.float16 if compression == "fp16" else torch.bfloat16
            cname = compression
        elif callable(compression):
            compress = compression
            cname = getattr(compression, "__qualname__", type(compression).__qualname__)
        else:
            raise ValueError("compression must be None, 'fp16', 'bf16' or a callable over a "
                             f"bucket, got {compression!r}")
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        model_ids = {id(p) for p in model.parameters()}
        foreign = [p for g in optimizer.param_groups for p in g["params"] if id(p) not in model_ids]
        if foreign:
            raise ValueError(f"optimizer has {len(foreign)} parameter(s) that are not parameters of "
                             "model; their gradients would never be averaged. Pass the model that "
                             "owns the optimizer's parameters")
        for n, p in named:
            if _owner(p) is not None:
                raise ValueError(f"parameter {n} is already synchronized by another "
                                 "DistributedOptimizer; call its remove_hooks() first")
        w = world if world is not None else get_world()
        object.__setattr__(self, "_opt", optimizer)
        self._model_ids = model_ids
        self._world, self._size = w, w.size
        self._compress, self._cname = compress, cname
        self._progress = progress
        self._names = [n for n, _ in named]
        self._params = [p for _, p in named]
        plan = plan_buckets(named, bucket_mb, first_bucket_mb)
        self._plan_info = []
        self._slots: list[_Slots] = []
        self._bucket_of: list = [None] * len(named)
        self._offset_of: list = [0] * len(named)
        for bi, idx in enumerate(plan):
            sizes = [self._params[i].numel() for i in idx]
            offsets = [int(o) for o in np.concatenate([[0], np.cumsum(sizes)[:-1]])]
            p0 = self._params[idx[0]]
            self._plan_info.append(Bucket(tuple(self._names[i] for i in idx),
                                          str(p0.dtype).replace("torch.", ""), sum(sizes),
                                          sum(sizes) * p0.element_size()))
            if w.size > 1:
                s = _Slots(bi, idx, p0.dtype, p0.device, sum(sizes), offsets, half_dtype)
                self._slots.append(s)
            for i, off in zip(idx, offsets):
                self._bucket_of[i], self._offset_of[i] = bi, off
        self._handles: list = []
        self._sync = True
        self._lock = threading.RLock()
        self._fired = [False] * len(named)
        self._used = np.zeros(len(named), np.int32)
        self._next = 0
        self._round_open = False  # hooks of a synchronized backward fired, not yet completed
        self._synced = False      # gradients were averaged since the last step()
        self._inflight: list = []
        self._thread = None
        if w.size > 1:
            desc = {"noun": "parameter", "hint": " (or it does not require grad)",
                    "params": _describe(named),
                    "plan": [b.names for b in self._plan_info],
                    "settings": {"bucket_mb": float(bucket_mb),
                                 "first_bucket_mb": float(first_bucket_mb), "compression": cname}}
            _check_same(desc, "DistributedOptimizer", w)
            if progress == "thread":
                from mpi4py import MPI

                if MPI.Query_thread() != MPI.THREAD_MULTIPLE:
                    raise DistError("progress='thread' needs MPI initialized with "
                                    "MPI_THREAD_MULTIPLE (mpi4py's default); this process has "
                                    f"thread level {MPI.Query_thread()}")
                self._wake = threading.Condition(self._lock)
                self._thread = threading.Thread(target=_poll_loop, args=(weakref.ref(self),),
                                                name="mlops-dist-progress", daemon=True)
                _POLLERS.add(self)
                if len(_POLLERS) == 1 and not _POLLERS_ATEXIT:
                    # registered after mpi4py's finalizer, so it runs before it
                    atexit.register(_stop_pollers)
                    _POLLERS_ATEXIT.append(True)
                self._thread.start()
            me = weakref.ref(self)
            for k, p in enumerate(self._params):
                self._handles.append(p.register_post_accumulate_grad_hook(_make_hook(me, k)))
                _OWNERS[id(p)] = (weakref.ref(p), me)

    # --------------------------------------------------------------- the wrapped optimizer

    def __getattr__(self, name):
        try:
            opt = object.__getattribute__(self, "_opt")
        except AttributeError:
            raise AttributeError(name) from None
        return getattr(opt, name)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The wrapped optimizer."""
        return self._opt

    @property
    def param_groups(self):
        return self._opt.param_groups

    @param_groups.setter
    def param_groups(self, value):
        self._opt.param_groups = value

    @property
    def state(self):
        return self._opt.state

    @state.setter
    def state(self, value):
        self._opt.state = value

    @property
    def defaults(self):
        return self._opt.defaults

    @defaults.setter
    def defaults(self, value):
        self._opt.defaults = value

    @property
    def buckets(self) -> list[Bucket]:
        """The bucket plan, in launch order."""
        return list(self._plan_info)

    def state_dict(self):
        return self._opt.state_dict()

    def load_state_dict(self, state_dict) -> None:
        self._opt.load_state_dict(state_dict)

    def add_param_group(self, param_group) -> None:
        params = param_group.get("params", []) if isinstance(param_group, dict) else []
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        if any(id(p) not in self._model_ids for p in params):
            raise ValueError("param_group holds parameters that are not parameters of the model; "
                             "their gradients would never be averaged")
        self._opt.add_param_group(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._opt.zero_grad(set_to_none=set_to_none)

    def register_step_pre_hook(self, hook):
        return self._opt.register_step_pre_hook(hook)

    def register_step_post_hook(self, hook):
        return self._opt.register_step_post_hook(hook)

    def register_state_dict_pre_hook(self, hook, prepend: bool = False):
        return self._opt.register_state_dict_pre_hook(hook, prepend)

    def register_state_dict_post_hook(self, hook, prepend: bool = False):
        return self._opt.register_state_dict_post_hook(hook, prepend)

    def register_load_state_dict_pre_hook(self, hook, prepend: bool = False):
        return self._opt.register_load_state_dict_pre_hook(hook, prepend)

    def register_load_state_dict_post_hook(self, hook, prepend: bool = False):
        return self._opt.register_load_state_dict_post_hook(hook, prepend)

    def __getstate__(self):
        raise TypeError("a DistributedOptimizer cannot be pickled; save its state_dict()")

    def __repr__(self) -> str:
        return (f"DistributedOptimizer({self._opt!r}, size={self._size}, "
                f"buckets={len(self._plan_info)}, compression={self._cname!r})")

    # --------------------------------------------------------------------- synchronization

    def step(self, closure=None):
        """Average the gradients where no backward has since the last step, then step."""
        if closure is None:
            self.synchronize()
            out = self._opt.step()
        else:
            def synced_closure():
                self._synced = False  # each evaluation of the closure is a new backward
                with torch.enable_grad():
                    loss = closure()
                self.synchronize()
                return loss

            out = self._opt.step(synced_closure)
        self._synced = False
        return out

    def synchronize(self) -> None:
        """Average the gradients over ranks now, unless that happened since the last
        ``step()`` (a synchronized backward does it); every rank must call it."""
        if self._size > 1 and (self._round_open or not self._synced):
            self._finish_round("DistributedOptimizer.synchronize")

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes inside accumulate gradients locally; the next synchronized
        backward (or ``step()``) averages the sums."""
        prev, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = prev

    def remove_hooks(self) -> None:
        """Stop sending buckets from backward; ``step()`` still averages (without overlap)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for p in self._params:
            if _owner(p) is self:
                del _OWNERS[id(p)]
        if self._thread is not None:
            with self._wake:
                self._thread, t = None, self._thread
                self._wake.notify_all()
            t.join()

    def _on_grad(self, k: int) -> None:
        with self._lock:
            if not self._sync:
                if self._synced or self._round_open:
                    raise DistError(
                        f"parameter {self._names[k]} got a gradient under no_sync() after the "
                        "synchronized backward of this step; run the no_sync() backward passes "
                        "first and the synchronized one last, then step()")
                return
            if self._fired[k]:
                if self._slots[self._bucket_of[k]].launched:
                    raise DistError(
                        f"parameter {self._names[k]} got a second gradient in one backward pass "
                        "after its bucket was sent (a reentrant checkpoint, or a parameter used "
                        "across two graphs); compute it in one graph or use no_sync()")
                return
            if not self._round_open:
                self._round_open = True
                torch.autograd.Variable._execution_engine.queue_callback(self._end_of_backward)
            self._fired[k] = True
            b = self._slots[self._bucket_of[k]]
            b.pending -= 1
            if b.pending == 0:
                while self._next < len(self._slots) and self._slots[self._next].pending == 0:
                    self._launch(self._slots[self._next])
                    self._next += 1
            self._poke()

    def _poke(self) -> None:
        """Let MPI advance the collectives in flight (it moves them only inside MPI calls)."""
        if self._inflight:
            from mpi4py import MPI

            if MPI.Request.Testall(self._inflight):
                self._inflight.clear()
            elif self._thread is not None:
                self._wake.notify()

    def _end_of_backward(self) -> None:
        self._finish_round("backward")

    @torch.no_grad()
    def _launch(self, b: _Slots) -> None:
        """Scale the bucket's gradients by 1/size into its buffer and start its allreduce."""
        scale = 1.0 / self._size
        if b.flat is None:
            k = b.params[0]
            p = self._params[k]
            g = p.grad
            if g is None:
                g = torch.zeros_like(p, memory_format=torch.contiguous_format)
            else:
                self._dense(k, g)
                self._used[k] = 1
                if not g.is_contiguous():
                    g = p.grad = g.contiguous()
                g.mul_(scale)
            b.current = g
        else:
            for k, off in zip(b.params, b.offsets):
                p = self._params[k]
                g, slot = p.grad, b.flat[off:off + p.numel()].view_as(p)
                if g is None:
                    slot.zero_()
                    continue
                self._dense(k, g)
                self._used[k] = 1
                if g.data_ptr() == slot.data_ptr() and g.dtype == slot.dtype:
                    slot.mul_(scale)  # backward accumulated into the bucket: nothing to copy
                else:
                    torch.mul(g, scale, out=slot)
                    p.grad = slot
            b.current = b.flat
        if b.half is not None:
            b.half.copy_(b.current.reshape(-1))
            payload = b.half
        elif self._compress is not None:
            payload = self._compress(b.current)
            if not isinstance(payload, torch.Tensor) or payload.dtype not in _WIRE_DTYPES:
                raise ValueError(f"compression must return a tensor of dtype {_WIRE_DTYPES}, "
                                 f"got {type(payload).__name__} "
                                 f"{getattr(payload, 'dtype', '')}")
            payload = payload.contiguous()
        else:
            payload = b.current
        b.payload = payload
        wire = payload.reshape(-1)
        if wire.device.type != "cpu":
            if b.host is None or b.host.dtype != wire.dtype or b.host.numel() != wire.numel():
                b.host = torch.empty(wire.numel(), dtype=wire.dtype, pin_memory=True)
            b.host.copy_(wire)  # waits for the GPU up to this gradient
            wire = b.host
        if wire.dtype in _HALF:
            from mpi4py import MPI

            b.request = self._world.comm.Iallreduce(
                MPI.IN_PLACE, [_numpy(wire), MPI.INT16_T], op=_half_sum_op(wire.dtype))
        else:
            b.request = iallreduce(_numpy(wire), self._world)
        b.launched = True
        self._inflight.append(b.request)

    def _dense(self, k: int, g) -> None:
        if g.layout != torch.strided:
            raise DistError(f"parameter {self._names[k]} has a {g.layout} gradient; "
                            "DistributedOptimizer averages dense gradients only (for an "
                            "Embedding, leave sparse=False)")

    def _finish_round(self, what: str) -> None:
        """Send the buckets not sent yet, complete everything, write the averages back."""
        with self._lock:
            for b in self._slots[self._next:]:
                self._launch(b)
            self._next = len(self._slots)
            counts = self._used
            reqs = [b.request for b in self._slots] + [iallreduce(counts, self._world)]
            self._inflight.clear()  # from here on only this thread touches the requests
        _complete(reqs, f"{what}: gradient allreduce of {len(self._slots)} bucket(s)", self._world)
        with self._lock, torch.no_grad():
            for b in self._slots:
                self._unpack(b, counts)
                b.current = b.payload = b.request = None
                b.pending, b.launched = len(b.params), False
            self._fired = [False] * len(self._params)
            counts[:] = 0
            self._next = 0
            self._round_open = False
            self._synced = True

    def _unpack(self, b: _Slots, counts) -> None:
        if b.payload.device.type != "cpu":
            b.payload.reshape(-1).copy_(b.host)
        if b.half is not None:
            b.current.reshape(-1).copy_(b.half)
        elif self._compress is not None:
            dec = getattr(self._compress, "decompress", None)
            out = dec(b.payload, b.current) if dec is not None else b.payload
            if out is not b.current:
                b.current.copy_(out.reshape(b.current.shape))
        for k in b.params:
            p = self._params[k]
            if counts[k] == 0:
                p.grad = None  # no rank had a gradient: leave it to the optimizer to skip
            elif p.grad is None:
                p.grad = (b.current if b.flat is None else
                          b.flat[self._offset_of[k]:self._offset_of[k] + p.numel()].view_as(p))


#: id(parameter) -> (weakref to it, weakref to the DistributedOptimizer whose hooks it has)
_OWNERS: dict = {}


def _owner(p):
    entry = _OWNERS.get(id(p))
    if entry is None or entry[0]() is not p:
        return None
    return entry[1]()


def _make_hook(me, k: int):
    def hook(_param):
        opt = me()
        if opt is not None:
            opt._on_grad(k)
    return hook


_POLLERS: weakref.WeakSet = weakref.WeakSet()
_POLLERS_ATEXIT: list = []


def _stop_pollers() -> None:
    for opt in list(_POLLERS):
        if opt._thread is not None:
            opt.remove_hooks()


def _poll_loop(me) -> None:
    """progress="thread": poll the requests in flight; sleep while there are none."""
    from mpi4py import MPI

    while True:
        opt = me()
        if opt is None or opt._thread is None:
            return
        with opt._wake:
            if not opt._inflight:
                opt._wake.wait(0.1)
            elif MPI.Request.Testall(opt._inflight):
                opt._inflight.clear()
        del opt
        os.sched_yield()


# ----------------------------------------------------------------------------- broadcast


class _TensorRef:
    __slots__ = ("index", "shape", "dtype")

    def __init__(self, index, shape, dtype):
        self.index, self.shape, self.dtype = index, shape, dtype


def _split(obj, out: list):
    """Replace the tensors of a nested state dict by references, collecting them."""
    if isinstance(obj, torch.Tensor):
        out.append(obj.detach())
        return _TensorRef(len(out) - 1, tuple(obj.shape), obj.dtype)
    if isinstance(obj, dict):
        return {k: _split(v, out) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_split(v, out) for v in obj)
    return obj


def _join(obj, tensors: list):
    if isinstance(obj, _TensorRef):
        return tensors[obj.index]
    if isinstance(obj, dict):
        return {k: _join(v, tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_join(v, tensors) for v in obj)
    return obj


@torch.no_grad()
def _broadcast_tensors(tensors: list, root: int, what: str, world: World) -> None:
    """Overwrite ``tensors`` with root's, one flat host buffer per dtype."""
    by_dtype: dict = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for dtype, ts in by_dtype.items():
        if world.rank == root:
            flat = torch.cat([t.detach().reshape(-1).cpu() for t in ts]) if ts else None
        else:
            flat = torch.empty(sum(t.numel() for t in ts), dtype=dtype)
        broadcast_array_(_numpy(flat), root, f"{what}: {dtype} tensors", world)
        if world.rank != root:
            o = 0
            for t in ts:
                t.copy_(flat[o:o + t.numel()].view(t.shape))
                o += t.numel()


def broadcast_state(model, optimizer=None, root: int = 0, *, world: World | None = None) -> None:
    """Make every rank's parameters, buffers and optimizer state root's, in place.

    Tensors travel as one flat buffer per dtype (``broadcast_array_``); the non-tensor
    part of the optimizer state (hyperparameters, step counts kept as numbers) as one
    pickled object. The models must have the same parameters and buffers (names,
    shapes, dtypes) on every rank, else every rank raises :class:`DistError`.

    Parameters
    ----------
    model : torch.nn.Module
    optimizer : torch.optim.Optimizer or DistributedOptimizer, optional
    root : int, default 0
        The rank whose state wins.
    world : World, optional

    Examples
    --------
    >>> import torch, engine.dist as dist
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = torch.optim.AdamW(model.parameters())
    >>> dist.broadcast_state(model, opt, root=0)   # a world of one: nothing to do
    """
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch optimizer or None, got {type(optimizer).__name__}")
    w = world if world is not None else get_world()
    if isinstance(root, bool) or not isinstance(root, int) or not 0 <= root < w.size:
        raise ValueError(f"root must be a rank in 0..{w.size - 1}, got {root!r}")
    if w.size == 1:
        return
    named, seen = [], set()
    for n, t in list(model.named_parameters()) + list(model.named_buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            named.append((n, t))
    _check_same({"params": _describe(named), "settings": None, "noun": "parameter or buffer"},
                "broadcast_state", w)
    _broadcast_tensors([t for _, t in named], root, "broadcast_state(model)", w)
    if optimizer is None:
        return
    tensors: list = []
    skeleton = _split(optimizer.state_dict(), tensors) if w.rank == root else None
    skeleton = broadcast_object(skeleton, root, "broadcast_state(optimizer)", w)
    problem = None
    if w.rank != root:
        groups = [len(g["params"]) for g in skeleton["param_groups"]]
        mine = [len(g["params"]) for g in optimizer.param_groups]
        if groups != mine:
            problem = f"rank {w.rank} has parameter groups of sizes {mine}, rank {root} {groups}"
        refs: list = []
        _collect_refs(skeleton, refs)
        tensors = [torch.empty(r.shape, dtype=r.dtype) for r in sorted(refs, key=lambda r: r.index)]
    problems = [p for p in allgather_object(problem, "broadcast_state(optimizer)", w) if p]
    if problems:
        raise DistError("broadcast_state: the optimizers differ: " + "; ".join(problems))
    _broadcast_tensors(tensors, root, "broadcast_state(optimizer)", w)
    if w.rank != root:
        optimizer.load_state_dict(_join(skeleton, tensors))


def _collect_refs(obj, out: list) -> None:
    if isinstance(obj, _TensorRef):
        out.append(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _collect_refs(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _collect_refs(v, out)
