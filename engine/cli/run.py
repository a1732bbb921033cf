"""``mlops run -n N script.py [args...]``: run a training script on N local ranks.

The script runs under the ``mpiexec`` of the installed ``mpich`` wheel (the one next to
this Python, else the first on ``PATH``) as ``mpiexec -n N <python> script.py args``;
inside, ``engine.dist.init()`` joins the ranks. With ``-n 1``, or when there is no
``mpiexec`` (said on stderr, with the install hint), the script runs directly as one
rank. The command's exit status is the script's (under ``mpiexec``: non-zero when any
rank failed); a script killed by a signal gives 128 + the signal's number.

Exit codes of the command itself: 2 for bad usage (``-n`` not a positive integer) or a
script that does not exist.
"""

from __future__ import annotations

import argparse
import os
import sys

from .args import add_command, int_at_least

INSTALL_HINT = "pip install 'mlops-engine[mpi]'"


#: argparse type of ``-n``: a positive number of ranks
ranks = int_at_least(1, "a positive number of ranks")


def find_mpiexec() -> str | None:
    """The ``mpiexec`` next to this Python (a venv's ``bin``, where the ``mpich`` wheel puts
    it), else the first on ``PATH``; None if there is none."""
    import shutil

    return (shutil.which("mpiexec", path=os.path.dirname(sys.executable))
            or shutil.which("mpiexec"))


def command_line(n: int, script: str, args: list[str], mpiexec: str | None) -> list[str]:
    """What runs: ``[mpiexec, -n, N, python, script, *args]``, or the script alone.

    Examples
    --------
    >>> command_line(2, "train.py", ["--lr", "0.1"], "/venv/bin/mpiexec")[:3]
    ['/venv/bin/mpiexec', '-n', '2']
    >>> command_line(1, "train.py", ["--lr", "0.1"], "/venv/bin/mpiexec")[1:]
    ['train.py', '--lr', '0.1']
    """
    cmd = [sys.executable, script, *args]
    if n > 1 and mpiexec is not None:
        cmd = [mpiexec, "-n", str(n), *cmd]
    return cmd


def cmd_run(args) -> int:
    import subprocess

    script = args.script
    if not os.path.exists(script):
        raise FileNotFoundError(f"no such script: {script!r}")
    if os.path.isdir(script):
        raise IsADirectoryError(f"{script!r} is a directory; give a Python script to run")
    env = None
    mpiexec = find_mpiexec() if args.n > 1 else None
    if args.n > 1 and mpiexec is None:
        print(f"mlops run: no mpiexec next to {sys.executable} or on PATH, so {script} runs as "
              f"one rank instead of {args.n}; install MPI with: {INSTALL_HINT}", file=sys.stderr)
    if mpiexec is not None:
        # hydra's mpiexec starts its proxy (hydra_pmi_proxy) from PATH
        env = dict(os.environ)
        env["PATH"] = os.path.dirname(mpiexec) + os.pathsep + env.get("PATH", "")
    cmd = command_line(args.n, script, args.args, mpiexec)
    sys.stdout.flush()
    sys.stderr.flush()
    proc = subprocess.Popen(cmd, env=env)
    try:
        rc = proc.wait()
    except KeyboardInterrupt:  # the script (same process group) got the Ctrl-C too
        try:
            rc = proc.wait(timeout=10)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            proc.kill()
            rc = proc.wait()
    return 128 - rc if rc < 0 else rc


def add_parser(sub, parser_class) -> None:
    p = add_command(
        sub, "run", "run a training script on N local MPI ranks (mpiexec)",
        "Run SCRIPT on N ranks of this machine: 'mpiexec -n N PYTHON SCRIPT ARGS...', with\n"
        "the mpiexec installed next to this Python (the mpich wheel of\n"
        f"{INSTALL_HINT}), else the first one on PATH, and this Python.\n"
        "Inside the script, engine.dist.init() joins the ranks.\n\n"
        "With -n 1, or when no mpiexec is found (said on stderr), SCRIPT runs directly as\n"
        "one rank. The exit status is the script's (non-zero when any rank failed).\n"
        "Options of 'mlops run' come before SCRIPT; everything after SCRIPT is the script's.\n"
        "On a Slurm cluster, launch with 'srun --mpi=pmi2 python SCRIPT' instead.",
        ["mlops run -n 2 examples/train_mnist_like.py",
         "mlops run -n 4 train.py --epochs 3 --lr 0.01",
         "mlops run train.py          # one rank, as 'python train.py'"],
        cmd_run)
    p.add_argument("-n", "--np", dest="n", type=ranks, default=1, metavar="N",
                   help="number of ranks (default 1)")
    p.add_argument("script", metavar="SCRIPT", help="the Python script to run")
    rest = p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                          help="arguments passed to SCRIPT")
    rest.required = False  # may be empty: a missing SCRIPT alone is the usage error
