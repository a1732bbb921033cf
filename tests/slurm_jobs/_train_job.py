"""A training job for tests/test_slurm.py: data-parallel, checkpointed, preemptible.

Usage: ``_train_job.py OUT STEPS SLEEP``. Trains a small float64 MLP (dropout from each
rank's torch RNG) on a fixed table with ``ShardedLoader`` and ``DistributedOptimizer``
for STEPS steps, sleeping SLEEP seconds a step so that a test can signal it mid-way. A
``Checkpointer`` (preemption on: under Slurm it is automatic) resumes from the latest
checkpoint. Rank 0 appends ``attempt step`` lines to OUT/steps.txt (after the step ran);
the final parameters go to OUT/final.npy. The registry is ``$MLOPS_HOME``, the run
``$MLOPS_RUN_ID`` (set by ``mlops submit``) or a new one.
"""

import os
import sys
import time

import numpy as np
import pyarrow as pa
import torch

import engine.dist as dist
from engine.env import current
from engine.registry import Registry

out, steps, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
world = dist.init(timeout=120)
torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(3)
x = rng.normal(size=(96, 6))
table = pa.table({"x": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 6),
                  "y": pa.array(x @ rng.normal(size=6) + 0.1 * rng.normal(size=96))})
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Dropout(0.2),
                            torch.nn.Linear(16, 1))
opt = dist.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                                model)
dist.broadcast_state(model, opt, root=0)
loader = dist.ShardedLoader(table, global_batch_size=8, seed=11)
run = Registry().start_run("slurm-train", params={"steps": steps})
ckpt = dist.Checkpointer("slurm-train-ckpt", run=run, every_steps=1000)
start = ckpt.resume(model, opt, loader)
attempt = current().slurm_restart_count + 1
if world.rank == 0:
    print(f"attempt {attempt}: {world.size} ranks, resuming at step {start}", flush=True)
for step, batch in loader.iterate(start):
    if step >= steps:
        break
    loss = torch.nn.functional.mse_loss(model(batch["x"]), batch["y"].reshape(-1, 1))
    loss.backward()
    opt.step()
    opt.zero_grad()
    if world.rank == 0:
        with open(os.path.join(out, "steps.txt"), "a") as f:
            f.write(f"{attempt} {step}\n")
    time.sleep(pause)
    ckpt.maybe_save(step, model, opt, loader)  # agrees on a preemption, checkpoints, requeues
run.end()
if world.rank == 0:
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()
    np.save(os.path.join(out, "final.npy"), flat)
    print("done", flush=True)
