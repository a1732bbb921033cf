"""A job for tests/test_slurm.py: every rank joins the world and writes what it sees;
all ranks share one registry run (rank 0 commits). Usage: _world_job.py OUT_DIR"""

import json
import os
import sys

import engine.dist as dist
from engine.registry import Registry

out = sys.argv[1]
world = dist.init(timeout=60)
with Registry().start_run("slurm-world", params={"ranks": world.size}) as run:
    run.log_metric("rank_sum", float(dist.allreduce_(__import__("numpy").array([world.rank],
                                                                                float))[0]))
with open(os.path.join(out, f"rank{world.rank}.json"), "w") as f:
    json.dump({"rank": world.rank, "size": world.size, "node": world.node, "nodes": world.nodes,
               "hosts": list(world.hosts), "launcher": world.launcher, "run": run.id,
               "job": os.environ.get("SLURM_JOB_ID")}, f)
