"""``mlops submit`` and ``mlops jobs``: training jobs on a Slurm cluster.

The command line parses and prints; :mod:`engine.dist.slurm` renders, submits and lists.
Exit codes: 0 submitted (or listed); 1 Slurm refused the job or is missing (nothing was
submitted); 2 bad usage (a script that does not exist, ``--nodes 0``, a nested
submission without ``--allow-nested``).
"""

from __future__ import annotations

import argparse
import os
import sys

from .args import add_command, int_at_least
from .format import out, table, when

EXIT_SLURM = 1


_positive = int_at_least(1)
_non_negative = int_at_least(0)


def cmd_submit(args) -> int:
    from ..dist import slurm

    opts = slurm.options(nodes=args.nodes, ntasks_per_node=args.ntasks_per_node,
                         gpus_per_node=args.gpus_per_node, cpus_per_task=args.cpus_per_task,
                         time=args.time, partition=args.partition, account=args.account,
                         mem=args.mem, signal=args.signal, requeue=args.requeue,
                         max_requeues=args.max_requeues, mpi=args.mpi, job_name=args.job_name)
    try:
        sub = slurm.submit(args.script, args.args, opts, store=args.store, dry_run=args.dry_run,
                           allow_nested=args.allow_nested)
    except slurm.SlurmError as exc:
        print(f"mlops submit: error: {exc}", file=sys.stderr)
        return EXIT_SLURM
    if args.dry_run:
        if not out(args, {**sub.to_dict(), "text": sub.text}):
            sys.stdout.write(sub.text)
        return 0
    if not out(args, sub.to_dict()):
        print(sub.job_id)
        print(f"mlops submit: job {sub.job_id}, run {sub.run_id}, {opts.ntasks} rank(s); "
              f"log {sub.log}", file=sys.stderr)
    return 0


def cmd_jobs(args) -> int:
    from ..dist import slurm

    if args.action == "logs":
        return _logs(args)
    if args.job is not None:
        raise ValueError(f"unexpected {args.job!r}: 'mlops jobs' takes --all, or 'mlops jobs "
                         "logs JOB'")
    jobs = slurm.list_jobs(all=args.all, store=args.store)
    if out(args, [j.to_dict() for j in jobs]):
        return 0
    if not jobs:
        print("no jobs" if args.all else "no active jobs (mlops jobs --all lists finished ones)")
        return 0
    table(["JOB", "RUN", "NAME", "STATE", "ATTEMPTS", "EXIT", "SUBMITTED", "REASON", "LOG"],
          [[j.job_id, j.run_id, j.name, j.state, str(j.attempts),
            "-" if j.exit_code is None else str(j.exit_code), when(j.submitted),
            j.reason or "-", j.log] for j in jobs])
    return 0


def _logs(args) -> int:
    from ..dist import slurm

    if args.job is None:
        raise ValueError("mlops jobs logs needs a JOB: a Slurm job id or the run id")
    rec = slurm.find_job(args.job, store=args.store)
    if not os.path.exists(rec["log"]):
        print(f"mlops jobs logs: job {rec['job_id']} has written no output yet "
              f"({rec['log']})", file=sys.stderr)
        return 0
    with open(rec["log"], errors="replace") as f:
        for line in f:
            sys.stdout.write(line)
    return 0


def add_parser(sub, parser_class) -> None:
    p = add_command(
        sub, "submit", "submit a training script to Slurm (sbatch), one rank per task",
        "Render a batch script that runs SCRIPT on NODES x NTASKS_PER_NODE ranks with\n"
        "'srun --mpi=pmi2' (--mpi pmix where the cluster has it), save it in the job's\n"
        "directory (<store>/jobs/<run id>/job.sbatch, beside the log slurm-<job>.out),\n"
        "submit it with sbatch and print the job id. --dry-run prints the script and\n"
        "submits nothing.\n\n"
        "Inside the job, Registry.start_run() continues one run (MLOPS_RUN_ID) across\n"
        "requeues, and a Checkpointer checkpoints when the warning signal (--signal,\n"
        "USR2 90 s before the time limit by default) arrives, then requeues the job, at\n"
        "most --max-requeues times. Options not given come from MLOPS_SLURM_* variables,\n"
        "then from the [slurm] section of ~/.config/mlops-engine/slurm.ini\n"
        "($MLOPS_SLURM_CONFIG), then the defaults shown (docs/slurm.md).\n\n"
        "Options of 'mlops submit' come before SCRIPT; everything after it is the script's.",
        ["mlops submit --nodes 2 --ntasks-per-node 4 --time 04:00:00 train.py --epochs 3",
         "mlops submit --ntasks-per-node 8 --gpus-per-node 8 -p gpu train.py",
         "mlops submit --dry-run -N 2 train.py     # print the batch script only",
         "mlops submit --signal USR2@300 --max-requeues 5 train.py"],
        cmd_submit)
    p.add_argument("-N", "--nodes", type=_positive, default=None, metavar="N",
                   help="nodes (default 1)")
    p.add_argument("--ntasks-per-node", type=_positive, default=None, metavar="T",
                   help="ranks per node (default 1)")
    p.add_argument("--gpus-per-node", type=_positive, default=None, metavar="G",
                   help="GPUs per node (default: none asked for)")
    p.add_argument("-c", "--cpus-per-task", type=_positive, default=None, metavar="C",
                   help="CPUs per rank (default: Slurm's)")
    p.add_argument("-t", "--time", default=None, metavar="HH:MM:SS",
                   help="time limit, any Slurm format (default: the partition's)")
    p.add_argument("-p", "--partition", default=None, metavar="P",
                   help="partition (default: the cluster's default)")
    p.add_argument("-A", "--account", default=None, metavar="A", help="account to charge")
    p.add_argument("--mem", default=None, metavar="M", help="memory per node, e.g. 64G")
    p.add_argument("--signal", default=None, metavar="SIG@SECONDS",
                   help="warning signal sent to the ranks SECONDS before the time limit "
                        "(default USR2@90; not USR1, which NCCL may use)")
    p.add_argument("--requeue", dest="requeue", action="store_true", default=None,
                   help="let the job requeue itself when preempted (the default)")
    p.add_argument("--no-requeue", dest="requeue", action="store_false",
                   help="never requeue: a preempted job checkpoints and stops")
    p.add_argument("--max-requeues", type=_non_negative, default=None, metavar="K",
                   help="requeues before a preempted job stops for good (default 3)")
    p.add_argument("--mpi", default=None, metavar="PLUGIN",
                   help="srun --mpi plugin: pmi2 (default) or pmix (see 'srun --mpi=list')")
    p.add_argument("-J", "--job-name", default=None, metavar="NAME",
                   help="job name (default: the script's name)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the batch script; submit nothing, write nothing")
    p.add_argument("--allow-nested", action="store_true",
                   help="allow submitting from inside a Slurm job (refused by default)")
    p.add_argument("--store", default=None,
                   help="store the job's registry run goes to (default $MLOPS_HOME or ./.mlops)")
    p.add_argument("--json", action="store_true", help="print the submission as JSON")
    p.add_argument("script", metavar="SCRIPT", help="the Python training script")
    rest = p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                          help="arguments passed to SCRIPT")
    rest.required = False

    p = add_command(
        sub, "jobs", "the engine's Slurm jobs: state, attempts, logs",
        "List the jobs submitted with 'mlops submit': job id, run id, state, attempts\n"
        "(1 + requeues), exit code and log path. Running and pending jobs come from squeue;\n"
        "finished ones from 'scontrol show job' while Slurm remembers them, then from the\n"
        "exit files the batch script writes and the registry run (no sacct needed).\n"
        "Without --all only active jobs are listed.\n\n"
        "'mlops jobs logs JOB' prints a job's output (every attempt), JOB being the Slurm\n"
        "job id or the run id.",
        ["mlops jobs", "mlops jobs --all --json", "mlops jobs logs 4242"],
        cmd_jobs)
    p.add_argument("action", nargs="?", choices=["logs"], default=None, metavar="logs",
                   help="'logs JOB': print the job's output")
    p.add_argument("job", nargs="?", default=None, metavar="JOB",
                   help="with logs: a Slurm job id or a run id")
    p.add_argument("--all", action="store_true", help="finished jobs too")
    p.add_argument("--store", default=None,
                   help="store whose jobs to list (default $MLOPS_HOME or ./.mlops)")
    p.add_argument("--json", action="store_true", help="print the jobs as JSON")
