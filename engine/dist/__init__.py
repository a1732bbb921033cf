"""Data-parallel PyTorch training over MPI (mpi4py): see docs/training.md.

.. code-block:: python

    import engine.dist as dist
    world = dist.init()
    opt = dist.DistributedOptimizer(opt, model, bucket_mb=25)
    dist.broadcast_state(model, opt, root=0)
    loader = dist.ShardedLoader(source, global_batch_size=256, seed=0)
    ckpt = dist.Checkpointer("mnist", run=run, every_steps=500)  # + Slurm preemption

``Preemption`` (``engine.dist.preempt``) stops every rank at the same step on Slurm's
warning signal (SIGUSR2, or SIGTERM), checkpoints and requeues the job; a
``Checkpointer`` uses it by itself under Slurm.

``import engine.dist`` imports neither torch nor mpi4py; each is imported when first used.
"""

from __future__ import annotations

from .world import (
    DEFAULT_TIMEOUT,
    CollectiveTimeout,
    DistError,
    World,
    allgather_object,
    allreduce_,
    barrier,
    broadcast_array_,
    broadcast_object,
    get_world,
    iallreduce,
    init,
    is_initialized,
    wait,
)

__all__ = ["World", "DistError", "CollectiveTimeout", "init", "get_world", "is_initialized",
           "barrier", "broadcast_object", "allgather_object", "allreduce_", "broadcast_array_",
           "iallreduce", "wait", "DEFAULT_TIMEOUT",
           "DistributedOptimizer", "broadcast_state", "ShardedLoader", "Checkpointer", "log_metrics",
           "Preemption", "Preempted"]

_LAZY = {"DistributedOptimizer": ".optimizer", "broadcast_state": ".optimizer",
         "ShardedLoader": ".loader", "Checkpointer": ".checkpoint",
         "log_metrics": ".checkpoint", "Preemption": ".preempt", "Preempted": ".preempt"}


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'engine.dist' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod, __name__), name)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
