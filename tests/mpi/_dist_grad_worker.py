"""Run under ``mpiexec -n N``: ``DistributedOptimizer``'s averaged gradients against one process.

Every scenario builds the same tiny model on every rank (same seed) and, in the same
process, a reference copy. Rank ``r`` trains on its slice of a global batch; the
reference computes, in one process, the loss of every rank's slice (the mean over the
ranks of their mean losses: the mean over the union when the slices are equal) and its
gradients. After each ``backward()`` and each ``step()`` every rank compares its
gradients and parameters with the reference: float64 to 1e-12 relative, float32 to 1e-6,
fp16/bf16 compression within their precision. Two steps per scenario, with
``zero_grad(set_to_none=False)`` between them, so that both the copy path (fresh
gradients) and the in-place path (gradients that are views of a bucket) are checked.

Scenarios (all by default): per-param, small, default, one, no_sync, no_sync_all, twice,
unused, mixed, fp16, bf16, callable, thread, broadcast, mismatch, misuse.

usage: _dist_grad_worker.py [--device cpu|cuda] [scenario ...]
Exit status 0 when every rank agrees that everything matched (tests/mpi/_verdict.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from _verdict import verdict  # noqa: E402  (tests/mpi is the directory of this script)

import engine.dist as dist  # noqa: E402
import engine.dist.optimizer as optimizer_module  # noqa: E402

torch.set_num_threads(1)
W = dist.init(timeout=60)
RANK, SIZE = W.rank, W.size
ROWS = 4  # rows of the global batch per rank
DEVICE = "cpu"
TOL = {torch.float64: 1e-12, torch.float32: 1e-6}


class Net(torch.nn.Module):
    """6 -> 16 -> 16 -> 3; optionally a side layer that only rank 0 uses and a parameter
    that no rank uses (registered last, so that they fill the first bucket)."""

    def __init__(self, dtype=torch.float64, side=False, mixed=False):
        super().__init__()
        self.l1 = torch.nn.Linear(6, 16, dtype=torch.float32 if mixed else dtype)
        self.l2 = torch.nn.Linear(16, 16, dtype=dtype)
        self.l3 = torch.nn.Linear(16, 3, dtype=dtype)
        self.dtype = dtype
        if side:
            self.nowhere = torch.nn.Parameter(torch.zeros(5, dtype=dtype))
            self.side = torch.nn.Linear(6, 3, dtype=dtype)

    def forward(self, x, rank):
        h = torch.tanh(self.l1(x.to(self.l1.weight.dtype))).to(self.dtype)
        y = self.l3(torch.tanh(self.l2(h)))
        if hasattr(self, "side") and rank == 0:
            y = y + self.side(x)
        return y


def make(seed=0, **kw):
    torch.manual_seed(seed)
    return Net(**kw).to(DEVICE)


def batch(step, micro, dtype):
    """The global batch of (step, micro): ROWS rows per rank, the same on every rank."""
    g = torch.Generator().manual_seed(1000 * step + micro)
    x = torch.randn(SIZE * ROWS, 6, generator=g, dtype=torch.float64)
    y = torch.randn(SIZE * ROWS, 3, generator=g, dtype=torch.float64)
    return x.to(DEVICE, dtype), y.to(DEVICE, dtype)


def loss_of(model, x, y, r):
    sl = slice(r * ROWS, (r + 1) * ROWS)
    return torch.nn.functional.mse_loss(model(x[sl], r), y[sl])


def ref_backward(ref, step, micro, dtype):
    x, y = batch(step, micro, dtype)
    (sum(loss_of(ref, x, y, r) for r in range(SIZE)) / SIZE).backward()


def dist_backward(model, step, micro, dtype):
    x, y = batch(step, micro, dtype)
    loss_of(model, x, y, RANK).backward()


def compare(bad, what, model, ref, tol, grads=True):
    errs = {}
    for (n, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        a, b = (p.grad, q.grad) if grads else (p.detach(), q.detach())
        if b is None or a is None:
            if (a is None) != (b is None):
                bad.append(f"rank {RANK} {what}: {n}.grad is {a is None and 'None' or 'set'}, "
                           f"the reference's {b is None and 'None' or 'set'}")
            continue
        scale = max(float(b.abs().max()), 1e-30)
        err = float((a.double() - b.double()).abs().max()) / scale
        errs[n] = err
        t = tol[p.dtype] if isinstance(tol, dict) else tol
        if not err <= t:
            bad.append(f"rank {RANK} {what}: {n} {'grad' if grads else 'value'} off by {err:.3g} "
                       f"relative (tolerance {t:g})")
    return errs


class CountingIallreduce:
    """Counts the allreduces DistributedOptimizer starts (wraps the one it imported)."""

    def __init__(self):
        self.calls, self.inner = 0, optimizer_module.iallreduce

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.inner(*args, **kwargs)


COUNT = CountingIallreduce()
optimizer_module.iallreduce = COUNT


def run_grads(bad, name, *, dtype=torch.float64, bucket_mb=25, first_bucket_mb=1,
              compression=None, side=False, mixed=False, tol=None, micro=1, no_sync_all=False,
              progress="hooks", backwards=1, expect_buckets=None):
    """Two SGD steps of the distributed model and of the one-process reference."""
    tol = TOL if tol is None else tol
    model, ref = make(dtype=dtype, side=side, mixed=mixed), make(dtype=dtype, side=side, mixed=mixed)
    opt = dist.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                                    model, bucket_mb, compression, first_bucket_mb=first_bucket_mb,
                                    progress=progress)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    if expect_buckets is not None:
        problem = expect_buckets(opt.buckets)
        if problem:
            bad.append(f"rank {RANK} {name}: bucket plan {opt.buckets}: {problem}")
    errs = {}
    try:
        for step in range(2):
            for rep in range(backwards):
                for m in range(micro):
                    ref_backward(ref, step, m + 10 * rep, dtype)
                    last = m == micro - 1 and not no_sync_all
                    if last:
                        dist_backward(model, step, m + 10 * rep, dtype)
                    else:
                        before = COUNT.calls
                        with opt.no_sync():
                            dist_backward(model, step, m + 10 * rep, dtype)
                        if COUNT.calls != before:
                            bad.append(f"rank {RANK} {name}: a no_sync() backward started "
                                       f"{COUNT.calls - before} allreduce(s)")
                if not no_sync_all:  # averaged as soon as backward returns
                    errs.update(compare(bad, f"{name} step {step} after backward {rep}", model,
                                        ref, tol))
            opt.step()
            ref_opt.step()
            compare(bad, f"{name} step {step} after step (grads)", model, ref, tol)
            compare(bad, f"{name} step {step} after step (params)", model, ref, tol, grads=False)
            opt.zero_grad(set_to_none=False)
            ref_opt.zero_grad(set_to_none=False)
    finally:
        opt.remove_hooks()
    return errs


def plan_checks(n_params):
    def per_param(buckets):
        return None if len(buckets) == n_params else f"expected {n_params} buckets"

    def several(buckets):
        sizes = [len(b.names) for b in buckets]
        return None if len(buckets) >= 2 and max(sizes) >= 2 else "expected several multi-parameter buckets"

    def one(buckets):
        return None if len(buckets) == 1 and len(buckets[0].names) == n_params else "expected one bucket"

    def two_dtypes(buckets):
        return None if {b.dtype for b in buckets} == {"float32", "float64"} else "expected both dtypes"

    return per_param, several, one, two_dtypes


class Scaled:
    """A compression callable: float64 buckets travel as float32, scaled by 1024."""

    calls = 0

    def __call__(self, bucket):
        Scaled.calls += 1
        return (bucket * 1024).to(torch.float32)

    def decompress(self, summed, bucket):
        return summed.to(bucket.dtype) / 1024


def scenario(bad, name):
    per_param, several, one, two_dtypes = plan_checks(6)
    small = {"bucket_mb": 3 / 1024, "first_bucket_mb": 1 / 1024}  # 3 KiB, first 1 KiB
    if name == "per-param":
        run_grads(bad, name, bucket_mb=1e-9, first_bucket_mb=1e-9, expect_buckets=per_param)
    elif name == "small":
        run_grads(bad, name, **small, expect_buckets=several)
    elif name == "default":
        run_grads(bad, name, expect_buckets=one)
    elif name == "one":
        run_grads(bad, name, bucket_mb=1000, first_bucket_mb=1000, expect_buckets=one)
    elif name == "no_sync":
        run_grads(bad, name, **small, micro=3)
    elif name == "no_sync_all":
        run_grads(bad, name, **small, micro=3, no_sync_all=True)
    elif name == "twice":
        run_grads(bad, name, **small, backwards=2)
    elif name == "unused":
        run_grads(bad, name, **small, side=True)
        run_grads(bad, name + " per-param", bucket_mb=1e-9, first_bucket_mb=1e-9, side=True)
    elif name == "mixed":
        # float64 layers downstream of a float32 one inherit its rounding: 1e-6 for all
        run_grads(bad, name, **small, mixed=True, tol=1e-6, expect_buckets=two_dtypes)
    elif name in ("fp16", "bf16"):
        tol = 4e-3 if name == "fp16" else 3e-2
        errs = run_grads(bad, name, dtype=torch.float32, **small, compression=name, tol=tol)
        if not errs or max(errs.values()) < 1e-5:
            bad.append(f"rank {RANK} {name}: errors {errs} look uncompressed")
    elif name == "callable":
        Scaled.calls = 0
        errs = run_grads(bad, name, **small, compression=Scaled(), tol=1e-6)
        if Scaled.calls == 0 or max(errs.values()) < 1e-12:
            bad.append(f"rank {RANK} callable: {Scaled.calls} calls, errors {errs}")
    elif name == "thread":
        run_grads(bad, name, **small, progress="thread")
    elif name == "broadcast":
        broadcast(bad)
    elif name == "mismatch":
        mismatch(bad)
    elif name == "misuse":
        misuse(bad)
    else:
        raise SystemExit(f"unknown scenario {name!r}")


def flat_state(model, opt):
    ts = [t.detach().reshape(-1).double().cpu() for t in list(model.parameters()) + list(model.buffers())]
    for st in opt.state_dict()["state"].values():
        ts += [v.detach().reshape(-1).double().cpu() for v in st.values() if isinstance(v, torch.Tensor)]
    return torch.cat(ts)


def broadcast(bad):
    """Different models and optimizer states on every rank; broadcast_state makes them root's."""
    root = SIZE - 1
    torch.manual_seed(100 + RANK)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8, dtype=torch.float64),
                                torch.nn.BatchNorm1d(8, dtype=torch.float64),
                                torch.nn.Linear(8, 3, dtype=torch.float64)).to(DEVICE)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01 * (RANK + 1))
    for _ in range(RANK + 1):  # different step counts, moments and running statistics
        model(torch.randn(5, 6, dtype=torch.float64, device=DEVICE)).sum().backward()
        opt.step()
        opt.zero_grad()
    before = flat_state(model, opt)
    dist.broadcast_state(model, opt, root=root)
    after = flat_state(model, opt)
    everyone = W.comm.allgather(after.numpy())
    if RANK == root and not torch.equal(before, after):
        bad.append(f"rank {RANK}: broadcast_state changed the root's own state")
    if any(not (e == everyone[root]).all() for e in everyone):
        bad.append(f"rank {RANK}: states differ after broadcast_state")
    if opt.param_groups[0]["lr"] != 0.01 * (root + 1):
        bad.append(f"rank {RANK}: lr {opt.param_groups[0]['lr']} is not the root's")
    # one synchronized step keeps them identical
    dopt = dist.DistributedOptimizer(opt, model)
    model.train()
    x = torch.randn(SIZE * ROWS, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    model(x[RANK * ROWS:(RANK + 1) * ROWS].to(DEVICE)).pow(2).mean().backward()
    dopt.step()
    dopt.remove_hooks()
    params = torch.cat([p.detach().reshape(-1).cpu() for p in model.parameters()])
    everyone = W.comm.allgather(params.numpy())
    if any(not (e == everyone[0]).all() for e in everyone):
        bad.append(f"rank {RANK}: parameters differ after a synchronized step")


def expect_error(bad, what, fn, *needles):
    try:
        fn()
    except dist.DistError as e:
        msg = str(e)
        missing = [n for n in needles if n not in msg]
        if missing:
            bad.append(f"rank {RANK} {what}: message lacks {missing}: {msg}")
        return
    except Exception as e:  # noqa: BLE001
        bad.append(f"rank {RANK} {what}: {type(e).__name__} instead of DistError: {e}")
        return
    bad.append(f"rank {RANK} {what}: no error")


def mismatch(bad):
    """Models or settings that differ across ranks fail on every rank, naming the difference."""
    shape = (8, 4) if RANK == 0 else (4, 8)
    model = torch.nn.Linear(shape[1], shape[0])
    expect_error(bad, "shape", lambda: dist.DistributedOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.1), model),
        "rank 1 has parameter weight of shape (4, 8), rank 0 (8, 4)")
    model = torch.nn.Linear(4, 4, dtype=torch.float64 if RANK == 1 else torch.float32)
    expect_error(bad, "dtype", lambda: dist.DistributedOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.1), model),
        "rank 1 has parameter weight of dtype float64, rank 0 float32")
    model = torch.nn.Linear(4, 4, bias=RANK != 1)
    expect_error(bad, "missing", lambda: dist.DistributedOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.1), model),
        "rank 1 has no parameter bias")
    model = torch.nn.Linear(4, 4)
    expect_error(bad, "settings", lambda: dist.DistributedOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.1), model, bucket_mb=25 + RANK),
        "rank 1 plans buckets with", "'bucket_mb': 26.0")
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4 + (RANK == 1)))
    expect_error(bad, "broadcast", lambda: dist.broadcast_state(model),
                 "rank 1 has parameter or buffer 1.running_mean of shape (5,), rank 0 (4,)")
    # after all of that the world still works: a matching model syncs
    run_grads(bad, "after mismatch", bucket_mb=3 / 1024, first_bucket_mb=1 / 1024)


def misuse(bad):
    """A no_sync() backward after the synchronized one of the same step is refused."""
    model = make()
    opt = dist.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), model)
    dist_backward(model, 0, 0, torch.float64)

    def late():
        with opt.no_sync():
            dist_backward(model, 0, 1, torch.float64)

    expect_error(bad, "no_sync after sync", late, "under no_sync() after the synchronized backward")
    opt.step()
    opt.remove_hooks()


def main() -> int:
    global DEVICE
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("scenarios", nargs="*")
    args = ap.parse_args()
    if args.device == "cuda":
        torch.cuda.set_device(W.local_rank % torch.cuda.device_count())
        DEVICE = f"cuda:{torch.cuda.current_device()}"
    names = args.scenarios or ["per-param", "small", "default", "one", "no_sync", "no_sync_all",
                               "twice", "unused", "mixed", "fp16", "bf16", "callable", "thread",
                               "broadcast", "mismatch", "misuse"]
    bad: list[str] = []
    node_id = os.environ.get("SLURM_NODEID")
    if node_id is not None:  # the inter-node path: 2 nodes x (SIZE / 2) ranks on one host
        want = (int(node_id), 2, SIZE // 2, RANK % (SIZE // 2))
        got = (W.node, W.nodes, W.local_size, W.local_rank)
        if got != want:
            bad.append(f"rank {RANK}: (node, nodes, local_size, local_rank) {got}, expected {want}")
    for name in names:
        try:
            scenario(bad, name)
        except Exception:
            bad.append(f"rank {RANK} {name}: {traceback.format_exc()}")
            break  # the ranks may be out of step now: stop before a collective hangs
    return verdict(W.comm, bad)


if __name__ == "__main__":
    sys.exit(main())
