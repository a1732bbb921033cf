"""The demo's training step: the glucose MLP, data-parallel with ``engine.dist``.

``mlops demo`` runs this file with ``mlops run -n 2`` (or ``mlops submit`` with
``--slurm``); by hand::

    mlops run -n 2 engine/demo/train.py --store STORE --data clinic:v1 --out result.json

Every rank reads the table version ``--data`` from ``--store``, keeps the training rows
(all but the held-out slice, :func:`engine.demo.clinic.held_out`) and takes its share of
each global batch (``ShardedLoader``); gradients are averaged over the ranks
(``DistributedOptimizer``), the run logs the loss, checkpoints go into the registry every
``--every`` steps (``Checkpointer``, named after the data version: a preempted job
resumes from them), and at the end
rank 0 scores the model on the held-out rows of ``--data`` (``heldout_mae``), registers
it as ``--name`` with lineage to ``--data``, and writes what it did as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Train the demo's glucose model with engine.dist.")
    ap.add_argument("--store", required=True, help="the store (registry and datasets)")
    ap.add_argument("--data", required=True, help="the table version to train on (clinic:v1)")
    ap.add_argument("--name", default="glucose", help="the model's registry name (glucose)")
    ap.add_argument("--steps", type=int, default=400, help="global steps (400)")
    ap.add_argument("--every", type=int, default=100, help="checkpoint every N steps (100)")
    ap.add_argument("--global-batch", type=int, default=128, help="samples per step (128)")
    ap.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate (3e-3)")
    ap.add_argument("--out", required=True, help="write the result (JSON) here, on rank 0")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()

    import pyarrow as pa
    import torch
    import torch.nn.functional as F

    import engine.dist as dist
    from engine.data import load_table
    from engine.demo import clinic
    from engine.dist.checkpoint import log_metrics
    from engine.registry import Registry

    world = dist.init()  # the ranks of mpiexec / srun; a world of one without a launcher
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world.local_size))
    table = load_table(args.data, store=args.store)
    mask = clinic.held_out(table)
    train = table.filter(pa.array(~mask)).select([*clinic.FEATURES, clinic.TARGET])
    heldout = table.filter(pa.array(mask))

    model = clinic.build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    opt = dist.DistributedOptimizer(opt, model)  # gradients averaged over the ranks
    dist.broadcast_state(model, opt, root=0)
    loader = dist.ShardedLoader(train, global_batch_size=args.global_batch, seed=0)

    reg = Registry(args.store)
    run = reg.start_run(f"{args.name}-train", inputs=[f"data:{args.data}"],
                        params={"data": args.data, "steps": args.steps, "lr": args.lr,
                                "global_batch": args.global_batch, "world_size": world.size})
    # checkpoints per training set: a requeued job resumes its own training, and a
    # retraining on another version starts afresh
    ckpt_name = f"{args.name}-ckpt-{args.data.replace(':', '-').replace('@', '-')}"
    ckpt = dist.Checkpointer(ckpt_name, run=run, every_steps=args.every)
    start = ckpt.resume(model, opt, loader)
    loss_value = float("nan")
    for step, batch in loader.iterate(start):
        if step >= args.steps:
            break
        x = torch.stack([batch[f] for f in clinic.FEATURES], 1).float()
        y = batch[clinic.TARGET].float()
        loss = F.mse_loss(model(x) / 40.0, y / 40.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        m = log_metrics(run, {"loss": loss.item()}, step=step, reduce="mean")
        loss_value = m["loss"]
        ckpt.maybe_save(step, model, opt, loader)

    out = None
    if world.rank == 0:
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        score = clinic.mae(clinic.GlucoseModel(state), heldout)
        run.log_metric("heldout_mae", score)
        run.set_tag("heldout_slice", f"{args.data} (patient_id % 5 == 0)")
        mv = run.log_model(args.name, state)
        out = {"model": mv.ref, "run_id": run.run_id, "data": args.data,
               "world_size": world.size, "steps": args.steps, "start_step": start,
               "loss": loss_value, "heldout_mae": score, "heldout_rows": int(mask.sum()),
               "train_rows": train.num_rows,
               "checkpoints": [v.ref for v in reg.versions(ckpt_name)],
               "seconds": time.perf_counter() - t0}
    run.end()
    dist.barrier()
    if out is not None:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f)
        os.replace(tmp, args.out)  # the demo never reads half a result
        print(f"trained {out['model']} on {world.size} rank(s): held-out MAE "
              f"{score:.2f} mg/dL", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
