"""Data-parallel training of a small MLP on synthetic MNIST-like data with ``engine.dist``.

A plain PyTorch loop; the lines that ``engine.dist`` adds are marked ``# engine.dist:``.
Run it on 2 ranks (each takes half of every global batch; gradients are averaged):

    mlops run -n 2 examples/train_mnist_like.py --steps 60
    mpiexec -n 2 python examples/train_mnist_like.py          # the same, by hand
    python examples/train_mnist_like.py                         # one process: a world of 1

On a Slurm cluster, ``mlops submit --nodes 2 --ntasks-per-node 4 examples/train_mnist_like.py``
(or a batch script from examples/slurm/): a preempted job checkpoints, requeues itself and
resumes at the exact step.

It checkpoints into the registry at ``--store`` (default ``$MLOPS_HOME``, else a new temp dir) every
``--every`` steps and resumes from the latest checkpoint there when started again with the
same ``--store`` (and ``--run-id``, to continue the same registry run). The data: 28x28
"images" of 10 classes, each a fixed random prototype plus noise, as an Arrow table.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F

import engine
import engine.dist as dist
from engine.dist.checkpoint import log_metrics


def synthetic_mnist(n: int, seed: int = 0) -> pa.Table:
    """``n`` rows: ``image`` (784 float32 in a fixed-size list) and ``label`` (0-9); the
    class prototypes are fixed, ``seed`` draws the samples."""
    prototypes = np.random.default_rng(12345).normal(0, 0.12, (10, 784)).astype(np.float32)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = prototypes[labels] + rng.normal(0, 1.0, (n, 784)).astype(np.float32)
    flat = pa.array(images.reshape(-1), pa.float32())
    return pa.table({"image": pa.FixedSizeListArray.from_arrays(flat, 784),
                     "label": pa.array(labels, pa.int64())})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", default=None, help="registry store (default: a new temp dir)")
    ap.add_argument("--steps", type=int, default=60, help="global steps to train (60)")
    ap.add_argument("--every", type=int, default=20, help="checkpoint every N steps (20)")
    ap.add_argument("--global-batch", type=int, default=64, help="samples per step, all ranks")
    ap.add_argument("--samples", type=int, default=4096, help="size of the synthetic data")
    ap.add_argument("--run-id", default=None, help="registry run id (re-attach when it exists)")
    args = ap.parse_args(argv)

    world = dist.init()  # engine.dist: rank, size, node; a world of 1 without a launcher
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world.local_size))
    store = args.store or os.environ.get("MLOPS_HOME") or (  # mlops submit sets MLOPS_HOME
        tempfile.mkdtemp(prefix="mnist-like-") if world.rank == 0 else None)
    store = dist.broadcast_object(store)  # engine.dist: every rank uses rank 0's temp dir

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt = dist.DistributedOptimizer(opt, model, bucket_mb=25)  # engine.dist: averaged grads
    dist.broadcast_state(model, opt, root=0)  # engine.dist: rank 0's weights everywhere
    loader = dist.ShardedLoader(synthetic_mnist(args.samples),  # engine.dist: this rank's
                                global_batch_size=args.global_batch, seed=0)  # slice

    run = engine.Registry(store).start_run(  # engine.dist: one run for all ranks
        "mnist", params={"lr": 1e-3, "global_batch": args.global_batch,
                         "world_size": world.size}, run_id=args.run_id)
    ckpt = dist.Checkpointer("mnist", run=run, every_steps=args.every)  # engine.dist:
    start = ckpt.resume(model, opt, loader)  # engine.dist: 0, or the step after a checkpoint
    if world.rank == 0:
        print(f"{world.size} rank(s); store {store}; run {run.run_id}; starting at step {start}")

    for step, batch in loader.iterate(start):
        if step >= args.steps:
            break
        loss = F.cross_entropy(model(batch["image"]), batch["label"])
        loss.backward()
        opt.step()
        opt.zero_grad()
        m = log_metrics(run, {"loss": loss.item()}, step=step, reduce="mean")  # engine.dist:
        ckpt.maybe_save(step, model, opt, loader)  # engine.dist: every --every steps
        if world.rank == 0 and (step + 1) % args.every == 0:
            print(f"step {step + 1}: loss {m['loss']:.4f}")

    with torch.no_grad():
        held_out = synthetic_mnist(1000, seed=1)
        x = np.array(held_out.column("image").combine_chunks().flatten()).reshape(-1, 784)
        acc = (model(torch.from_numpy(x)).argmax(1).numpy()
               == held_out.column("label").to_numpy()).mean()
    log_metrics(run, {"test_acc": acc})  # engine.dist: rank 0 logs
    run.end()
    if world.rank == 0:
        print(f"done: accuracy {acc:.3f} on 1000 held-out samples; checkpoints "
              f"{[mv.ref for mv in engine.Registry(store).versions('mnist')]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
