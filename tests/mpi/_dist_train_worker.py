"""Run under ``mpiexec -n N``: N ranks follow the one-process loss trajectory.

A float64 MLP trains for 20 steps with AdamW and a StepLR scheduler (which must accept
the wrapped optimizer). Each step's global batch has N x ROWS rows; rank r trains on its
slice through ``DistributedOptimizer``, while every rank also trains a reference copy in
one process on the whole global batch (the doubled batch for N = 2). The global loss of
the distributed run (the mean of the ranks' losses, reduced at the end) must equal the
reference's at every step within 1e-9 relative, and so must the final parameters and
learning rate. Run once with ``zero_grad()`` (fresh gradients each step, copied into the
buckets) and once with ``zero_grad(set_to_none=False)`` (backward accumulates into the
buckets), and once with two micro-batches per step, the first under ``no_sync()``.

usage: _dist_train_worker.py
"""

from __future__ import annotations

import os
import sys
import traceback

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _verdict import verdict  # noqa: E402  (tests/mpi is the directory of this script)

import engine.dist as dist  # noqa: E402

torch.set_num_threads(1)
W = dist.init(timeout=60)
RANK, SIZE = W.rank, W.size
ROWS, STEPS, TOL = 8, 20, 1e-9


def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32),
                               torch.nn.Tanh(), torch.nn.Linear(32, 1)).double()


def data(step, micro=0):
    g = torch.Generator().manual_seed(7919 * step + micro)
    x = torch.randn(SIZE * ROWS, 8, generator=g, dtype=torch.float64)
    return x, x[:, :1] * 0.8 - 0.5 * x[:, 1:2] + 0.3 * x[:, 2:3]


def train(distributed: bool, set_to_none: bool, micro: int):
    model = make()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2, weight_decay=1e-2)
    if distributed:
        opt = dist.DistributedOptimizer(opt, model, bucket_mb=2 / 1024, first_bucket_mb=1 / 1024)
        dist.broadcast_state(model, opt)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    losses = []
    for step in range(STEPS):
        total = 0.0
        for m in range(micro):
            x, y = data(step, m)
            if distributed:
                x, y = x[RANK * ROWS:(RANK + 1) * ROWS], y[RANK * ROWS:(RANK + 1) * ROWS]
            loss = torch.nn.functional.mse_loss(model(x), y) / micro
            ctx = opt.no_sync() if distributed and m < micro - 1 else _nothing()
            with ctx:
                loss.backward()
            total += float(loss.detach())
        losses.append(total)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=set_to_none)
    if distributed:
        opt.remove_hooks()
    params = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return np.array(losses), params, opt.param_groups[0]["lr"]


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main() -> int:
    bad: list[str] = []
    try:
        for set_to_none, micro in ((True, 1), (False, 1), (True, 2)):
            what = f"set_to_none={set_to_none}, micro-batches={micro}"
            ref_losses, ref_params, ref_lr = train(False, set_to_none, micro)
            losses, params, lr = train(True, set_to_none, micro)
            mean = dist.allreduce_(losses.copy(), "losses") / SIZE
            rel = np.abs(mean - ref_losses) / np.abs(ref_losses)
            if not rel.max() <= TOL:
                bad.append(f"rank {RANK} {what}: losses off by {rel.max():.3g} relative at step "
                           f"{int(rel.argmax())}: {mean[:4]} vs {ref_losses[:4]}")
            if not ref_losses[-5:].mean() < 0.25 * ref_losses[:5].mean():
                bad.append(f"rank {RANK} {what}: the reference did not learn: {ref_losses}")
            prel = float((params - ref_params).abs().max() / ref_params.abs().max())
            if not prel <= TOL:
                bad.append(f"rank {RANK} {what}: final parameters off by {prel:.3g} relative")
            if lr != ref_lr or abs(lr - 3e-2 * 0.5 ** 4) > 1e-15:
                bad.append(f"rank {RANK} {what}: lr {lr}, reference {ref_lr}")
    except Exception:
        bad.append(f"rank {RANK}: {traceback.format_exc()}")
    return verdict(W.comm, bad)


if __name__ == "__main__":
    sys.exit(main())
