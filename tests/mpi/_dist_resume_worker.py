"""Run under ``mpiexec -n N``: checkpoints and resume of a data-parallel job on real ranks.

Modes (first argument):

``train STORE OUT STEPS KILL LOADER RANDOMNESS``
    Train a tiny float64 model for STEPS steps on a fixed data set, the global batch
    split by rank. LOADER ``sharded``: ``engine.dist.DistributedOptimizer`` averages the
    gradients and ``ShardedLoader`` (over an Arrow table) gives the batches; ``plain``: a
    plain ``allreduce_`` of the gradients and a stand-in loader with the same global order.
    RANDOMNESS ``rng``: dropout draws from each rank's own torch RNG and input noise from
    its NumPy global RNG (seeded per rank), so resuming must restore every rank's RNGs;
    ``norng``: neither (a run whose result does not depend on the number of ranks but
    for float summation order). A ``Checkpointer`` saves every 4 steps into the registry
    at STORE, in one run with a fixed id (a relaunch re-attaches to it), and the job
    resumes from the latest checkpoint. KILL ``S:R`` makes rank R SIGKILL itself right
    after step S (after that step's checkpoint, if any); ``-`` never. Rank 0 appends
    ``[step, global sample ids]`` per step to OUT + ``.ids.jsonl`` (the ids every rank
    received, gathered in rank order), prints ``resumed at step K`` and at the end
    writes the parameters (float64, concatenated) to OUT (``.npy``).

``shared-run STORE``
    Every rank calls ``Registry(STORE).start_run(...)`` after ``engine.dist.init()``,
    logs a metric and ends the run: one run must exist afterwards, with rank 0's points
    only, and every rank must have got its id.

Exit status 0 when every rank's checks passed (tests/mpi/_verdict.py).
"""

# NumPy's legacy global generator is what checkpoints must restore: these files use it.
# ruff: noqa: NPY002
from __future__ import annotations

import json
import os
import sys
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from _verdict import verdict  # noqa: E402  (tests/mpi is the directory of this script)

import engine.dist as dist  # noqa: E402
from engine.dist.checkpoint import Checkpointer, log_metrics  # noqa: E402
from engine.registry import Registry  # noqa: E402

N_SAMPLES, GLOBAL_BATCH, SEED, EVERY = 60, 12, 7, 4
RUN_ID = "resume-job-0001"


def have_dist_modules() -> bool:
    try:
        from engine.dist.loader import ShardedLoader  # noqa: F401
        from engine.dist.optimizer import DistributedOptimizer  # noqa: F401
    except ImportError:
        return False
    return True


def dataset():
    rng = np.random.default_rng(2024)
    x = rng.normal(size=(N_SAMPLES, 4))
    y = np.sin(x.sum(axis=1, keepdims=True))
    return x, y


class PlainLoader:
    """The global order of ShardedLoader's contract (seed, epoch, global batch size only);
    each rank takes its contiguous slice of each global batch."""

    def __init__(self, world, seed=SEED):
        self.world, self.seed, self.position = world, seed, 0
        self.source_ref = None

    def global_indices(self, step):
        per_epoch = N_SAMPLES // GLOBAL_BATCH
        epoch, k = divmod(step, per_epoch)
        perm = np.random.default_rng([self.seed, epoch]).permutation(N_SAMPLES)
        return perm[k * GLOBAL_BATCH:(k + 1) * GLOBAL_BATCH]

    def indices(self, step):
        g = self.global_indices(step)
        b = GLOBAL_BATCH // self.world.size
        return g[self.world.rank * b:(self.world.rank + 1) * b]

    def iterate(self, start=0):
        step = start
        while True:
            self.position = step + 1
            yield step, self.indices(step)
            step += 1

    def state_dict(self):
        return {"seed": self.seed, "global_batch_size": GLOBAL_BATCH, "position": self.position}

    def load_state_dict(self, state):
        self.seed, self.position = state["seed"], state["position"]


def train(store, out, steps, kill, loader_kind, randomness):
    import torch

    torch.set_num_threads(1)
    world = dist.init(timeout=60)
    torch.manual_seed(1000 + world.rank)  # each rank its own dropout stream
    np.random.seed(2000 + world.rank)
    use_rng = randomness == "rng"
    x_all, y_all = dataset()
    x_all, y_all = torch.from_numpy(x_all), torch.from_numpy(y_all)
    gen = torch.Generator().manual_seed(0)  # the same initial weights on every rank
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(),
                                torch.nn.Dropout(0.2 if use_rng else 0.0),
                                torch.nn.Linear(16, 1)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.5)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    sharded = loader_kind == "sharded"
    if sharded:
        import pyarrow as pa

        opt = dist.DistributedOptimizer(opt, model)
        dist.broadcast_state(model, opt, root=0)
        loader = dist.ShardedLoader(pa.table({"row": np.arange(N_SAMPLES)}),
                                    global_batch_size=GLOBAL_BATCH, seed=SEED)
    else:
        loader = PlainLoader(world)

    reg = Registry(store)
    run = reg.start_run("resume-test", params={"steps": steps}, run_id=RUN_ID)
    ckpt = Checkpointer("resume-test", run=run, every_steps=EVERY, keep_last=2)
    start = ckpt.resume(model, opt, loader)
    if world.rank == 0:
        print(f"resumed at step {start}", flush=True)
    kill_step, kill_rank = (None, None) if kill == "-" else map(int, kill.split(":"))
    for step, batch in loader.iterate(start):
        if step >= steps:
            break
        idx = np.asarray(batch["_index"] if sharded else batch)
        # the global batch as the ranks received it, rank by rank
        got = dist.allgather_object([int(i) for i in idx], "sample ids")
        if world.rank == 0:
            with open(str(out) + ".ids.jsonl", "a") as f:
                f.write(json.dumps([step, [i for part in got for i in part]]) + "\n")
        t = torch.as_tensor(idx)
        x = x_all[t]
        if use_rng:
            x = x + torch.from_numpy(np.random.normal(0, 0.01, (len(idx), 4)))
        loss = ((model(x) - y_all[t]) ** 2).mean()
        loss.backward()
        if not sharded:  # a plain average of the gradients
            flat = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy()
            dist.allreduce_(flat, "grads")
            off = 0
            for p in model.parameters():
                n = p.numel()
                p.grad.copy_(torch.from_numpy(flat[off:off + n] / world.size).reshape(p.shape))
                off += n
        opt.step()
        opt.zero_grad()
        log_metrics(run, {"loss": loss.item()}, step=step, reduce="mean")
        ckpt.maybe_save(step, model, opt, loader)
        if step == kill_step and world.rank == kill_rank:
            os.kill(os.getpid(), 9)
    run.end()
    if world.rank == 0:
        flat = np.concatenate([p.detach().numpy().reshape(-1) for p in model.parameters()])
        np.save(out, flat.astype(np.float64))
    return []


def shared_run(store):
    world = dist.init(timeout=60)  # installs the run coordinator (share_runs)
    bad = []
    reg = Registry(store)
    with reg.start_run("shared", params={"lr": 0.1}) as run:
        run.log_metric("loss", 1.0 + world.rank, step=0)
        run.set_tag("rank", world.rank)
        run.log_params({"by_rank": world.rank})
    ids = dist.allgather_object(run.run_id)
    if len(set(ids)) != 1:
        bad.append(f"ranks got different run ids: {ids}")
    if run.leader != (world.rank == 0):
        bad.append(f"rank {world.rank}: leader is {run.leader}")
    dist.barrier()
    if world.rank == 0:
        with Registry(store, create=False, index_path=":memory:") as fresh:
            runs = fresh.runs()
            if len(runs) != 1:
                bad.append(f"{len(runs)} runs in the registry, expected 1: {runs}")
            else:
                r = runs[0]
                if r["run_id"] != run.run_id or r["status"] != "FINISHED":
                    bad.append(f"run {r['run_id']} {r['status']}, expected {run.run_id} FINISHED")
                if r["metrics"]["loss"]["count"] != 1 or r["metrics"]["loss"]["last"] != 1.0:
                    bad.append(f"metrics {r['metrics']}: expected rank 0's one point")
                if r["params"] != {"lr": 0.1, "by_rank": 0} or r["tags"] != {"rank": "0"}:
                    bad.append(f"params {r['params']} tags {r['tags']}: expected rank 0's")
                if r["world_size"] != world.size:
                    bad.append(f"world size {r['world_size']}")
                if fresh.metric_history(run.run_id).num_rows != 1:
                    bad.append("metric points from other ranks were written")
    return bad


def main() -> int:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    mode = sys.argv[1]
    bad = []
    try:
        if mode == "train":
            store, out, steps, kill, loader_kind, randomness = sys.argv[2:8]
            if loader_kind == "sharded" and not have_dist_modules():
                raise RuntimeError("engine.dist.loader / engine.dist.optimizer are missing")
            bad = train(store, out, int(steps), kill, loader_kind, randomness)
        elif mode == "shared-run":
            bad = shared_run(sys.argv[2])
        else:
            bad = [f"unknown mode {mode!r}"]
    except Exception:
        bad = [f"rank {comm.Get_rank()}: {traceback.format_exc()}"]
    return verdict(comm, bad)


if __name__ == "__main__":
    sys.exit(main())
