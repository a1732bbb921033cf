"""Run under ``mpiexec -n N``: a data-parallel job preempted by a signal to one rank.

``train STORE OUT STEPS SIGNAL REQUEUE``
    Train a tiny float64 model (dropout from each rank's own torch RNG, input noise from
    its NumPy global RNG) for STEPS steps: ``engine.dist.DistributedOptimizer`` averages
    the gradients, a stand-in loader gives each rank its slice of the global batch of
    step s. A ``Checkpointer`` (every 4 steps, registry at STORE, one run with a fixed id
    that a relaunch re-attaches to) resumes from the latest checkpoint and handles
    preemption. SIGNAL ``S:R``: rank R (only) sends itself SIGUSR2 during step S, before
    ``maybe_save``; ``-`` never. REQUEUE ``auto``: ``Checkpointer(preemption="auto")``
    (the test sets ``MLOPS_PREEMPT_SIGNALS``); otherwise a file path: the Checkpointer gets
    ``Preemption(requeue=...)`` whose requeue appends the job id to that file instead of
    calling ``scontrol``.

    Rank 0 appends every step it runs to OUT + ``.steps`` and prints ``resumed at step K``.
    When ``Preempted`` is raised, each rank writes OUT + ``.stop.R.json`` (the step it
    stopped after, exit code, state, checkpoint, signal, whether the signal reached this
    rank itself) and lets it end the process with its exit code. A run that reaches
    STEPS writes the parameters (float64, concatenated) to OUT (``.npy``) and exits
    through tests/mpi/_verdict.py (0 when every rank's checks passed).
"""

# NumPy's legacy global generator is what checkpoints must restore: this file uses it.
# ruff: noqa: NPY002
from __future__ import annotations

import json
import os
import signal
import sys
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from _verdict import verdict  # noqa: E402  (tests/mpi is the directory of this script)

import engine.dist as dist  # noqa: E402
from engine.dist.checkpoint import Checkpointer  # noqa: E402
from engine.dist.preempt import Preempted, Preemption  # noqa: E402
from engine.registry import Registry  # noqa: E402

N_SAMPLES, GLOBAL_BATCH, SEED, EVERY = 48, 8, 5, 4
RUN_ID = "preempt-job-0001"


def batch_indices(step, world):
    per_epoch = N_SAMPLES // GLOBAL_BATCH
    epoch, k = divmod(step, per_epoch)
    perm = np.random.default_rng([SEED, epoch]).permutation(N_SAMPLES)
    g = perm[k * GLOBAL_BATCH:(k + 1) * GLOBAL_BATCH]
    b = GLOBAL_BATCH // world.size
    return g[world.rank * b:(world.rank + 1) * b]


class Position:
    """The loader's state: the next step (what Checkpointer saves and restores)."""

    def __init__(self):
        self.position = 0

    def state_dict(self):
        return {"seed": SEED, "global_batch_size": GLOBAL_BATCH, "position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]


def train(store, out, steps, sig, requeue):
    import torch

    torch.set_num_threads(1)
    world = dist.init(timeout=60)
    torch.manual_seed(1000 + world.rank)
    np.random.seed(2000 + world.rank)
    rng = np.random.default_rng(2024)
    x_all = torch.from_numpy(rng.normal(size=(N_SAMPLES, 4)))
    y_all = torch.sin(x_all.sum(dim=1, keepdim=True))
    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Dropout(0.2),
                                torch.nn.Linear(16, 1)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.5)
    opt = dist.DistributedOptimizer(torch.optim.Adam(model.parameters(), lr=0.02), model)
    dist.broadcast_state(model, opt, root=0)
    loader = Position()

    run = Registry(store).start_run("preempt-test", run_id=RUN_ID)
    if requeue == "auto":
        preemption = "auto"
    else:
        def fake_requeue(job):
            with open(requeue, "a") as f:
                f.write(f"{job}\n")

        preemption = Preemption(requeue=fake_requeue)
    ckpt = Checkpointer("preempt-test", run=run, every_steps=EVERY, keep_last=None,
                        preemption=preemption)
    if ckpt.preemption is None:
        raise RuntimeError("the Checkpointer has no preemption handling")
    start = ckpt.resume(model, opt, loader)
    if world.rank == 0:
        print(f"resumed at step {start}", flush=True)
    sig_step, sig_rank = (None, None) if sig == "-" else map(int, sig.split(":"))
    with run:
        step = start
        try:
            for step in range(start, steps):
                loader.position = step + 1
                if world.rank == 0:
                    with open(str(out) + ".steps", "a") as f:
                        f.write(f"{step}\n")
                t = torch.as_tensor(batch_indices(step, world))
                x = x_all[t] + torch.from_numpy(np.random.normal(0, 0.01, (len(t), 4)))
                loss = ((model(x) - y_all[t]) ** 2).mean()
                loss.backward()
                if step == sig_step and world.rank == sig_rank:
                    os.kill(os.getpid(), signal.SIGUSR2)  # this rank only
                opt.step()
                opt.zero_grad()
                ckpt.maybe_save(step, model, opt, loader)
        except Preempted as exc:
            with open(f"{out}.stop.{world.rank}.json", "w") as f:
                json.dump({"step": step, "code": exc.code, "state": exc.state,
                           "checkpoint": exc.checkpoint, "exc_step": exc.step,
                           "signal": exc.signal, "requested": ckpt.preemption.requested,
                           "message": str(exc)}, f)
            raise
    if world.rank == 0:
        flat = np.concatenate([p.detach().numpy().reshape(-1) for p in model.parameters()])
        np.save(out, flat.astype(np.float64))
    return []


def main() -> int:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    mode = sys.argv[1]
    bad = []
    try:
        if mode == "train":
            store, out, steps, sig, requeue = sys.argv[2:7]
            bad = train(store, out, int(steps), sig, requeue)
        else:
            bad = [f"unknown mode {mode!r}"]
    except Preempted:
        raise  # the exit code every rank agreed on
    except Exception:
        bad = [f"rank {comm.Get_rank()}: {traceback.format_exc()}"]
    return verdict(comm, bad)


if __name__ == "__main__":
    sys.exit(main())
