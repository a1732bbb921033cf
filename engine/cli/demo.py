"""``mlops demo`` (``make demo``): the whole loop, from data to retraining, in one command.

The story (:mod:`engine.demo.story`): a clinic's synthetic patients snapshotted as
``clinic:v1``; a glucose model trained on 2 MPI ranks (``mlops run -n 2``; ``--slurm``:
``mlops submit``) and registered with lineage; its input and output profiles; promotion
through a gate; requests through the guard (a Russian note rejected, an out-of-range
input and a prediction of about 2000 mg/dL flagged); drift over several windows and one
retrain signal; ``clinic:v2`` reusing ``clinic:v1``'s chunks; a retrained model promoted
only if it beats production on the same held-out slice; lineage, audit log, HTML report.

This module parses and prints; the story decides. NumPy, torch and the engine's layers
are imported when the demo runs, not when the ``mlops`` parser is built.
"""

from __future__ import annotations

import json
import os
import sys

from .args import int_at_least

#: written into a work directory the demo made, so that a later run may reuse it
MARKER = "mlops-demo.json"
#: what the demo writes in its work directory (removed when a later run reuses it)
OWN = (".mlops", "reports", "train-v1.json", "train-v2.json", MARKER)


def check_workdir(path, what: str = "workdir") -> str:
    """The absolute work directory, after checking it is, or can become, a directory.

    A path that exists as a file (or lies below one) is bad input, named by ``what``
    (``--dir`` for the command line), not an I/O error.
    """
    wd = os.path.abspath(os.fspath(path))
    p = wd
    while not os.path.lexists(p):
        p = os.path.dirname(p)
    if not os.path.isdir(p):
        where = "exists and is not a directory" if p == wd else f"lies below {p!r}, which is not a directory"
        raise NotADirectoryError(f"{what} {os.fspath(path)!r} {where}; give a directory "
                                 "(it is created if missing)")
    return wd


def prepare_workdir(path, what: str = "--dir") -> str:
    """``path`` made ready for the demo: created if missing; a previous demo's work
    directory has its own files removed; any other non-empty directory is refused (the
    demo never deletes what it did not write)."""
    import shutil

    wd = check_workdir(path, what)
    if os.path.isdir(wd) and os.listdir(wd):
        if not os.path.exists(os.path.join(wd, MARKER)):
            raise ValueError(f"{what} {os.fspath(path)!r} is not empty and is not a previous "
                             "demo's work directory; give a new or empty directory")
        for name in OWN:
            p = os.path.join(wd, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            elif os.path.lexists(p):
                os.remove(p)
    os.makedirs(wd, exist_ok=True)
    with open(os.path.join(wd, MARKER), "w") as f:
        json.dump({"made_by": "mlops demo"}, f)
    return wd


def run_demo(workdir: str | None = None, *, store: str | None = None, fast: bool = False,
             slurm: bool = False, ranks: int = 2, seed: int = 0, as_json: bool = False) -> int:
    """Run the demo; 0 if every step did what the story says, else 1.

    It narrates on stdout, or with ``as_json`` prints only one JSON summary (every
    step's numbers and ``checks``). The work directory (default: a new temporary one)
    is kept: it holds the store (unless ``store`` is given) and the HTML drift report.
    """
    import tempfile

    from ..demo import story

    wd = prepare_workdir(tempfile.mkdtemp(prefix="mlops-demo-") if workdir is None else workdir)
    store_root = os.path.abspath(store) if store is not None else os.path.join(wd, ".mlops")
    say = (lambda text: None) if as_json else (lambda text: print(text, flush=True))
    say(f"mlops demo: a clinic predicts blood glucose; work directory {wd}, store {store_root}")
    summary = story.run_story(wd, store_root, settings=story.FAST if fast else story.FULL,
                              ranks=ranks, slurm=slurm, seed=seed, say=say)
    if as_json:
        json.dump(summary, sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        failed = [k for k, ok in summary["checks"].items() if not ok]
        print("mlops demo: " + ("done, every step as expected" if not failed
                                else f"FAILED checks: {', '.join(failed)}")
              + f"; everything is kept in {wd}")
    return 0 if summary["ok"] else 1


def cmd_demo(args) -> int:
    from ..demo.story import DemoError

    try:
        return run_demo(args.dir, store=args.store, fast=args.fast, slurm=args.slurm,
                        ranks=args.ranks, seed=args.seed, as_json=args.json)
    except DemoError as exc:  # a step failed (training, a job): say which, exit 1
        if args.json:
            print(json.dumps({"error": str(exc), "type": "demo step failed", "exit_code": 1,
                              "command": "demo"}), file=sys.stderr)
        else:
            print(f"mlops demo: error: {exc}", file=sys.stderr)
        return 1


def add_parser(sub, parser_class) -> None:
    import argparse

    d = sub.add_parser(
        "demo", help="run the whole loop: data, training, guarded serving, retraining",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "A clinic predicts blood glucose from four measurements and a note in Spanish.\n"
            "The demo, on an embedded store in its work directory:\n"
            "  1. snapshots synthetic patients as clinic:v1;\n"
            "  2. trains a PyTorch model on 2 MPI ranks (mlops run -n 2; --slurm: mlops\n"
            "     submit), registered as glucose:v1 with lineage to clinic:v1;\n"
            "  3. logs its input and output profiles, promotes it to production (gate);\n"
            "  4. serves requests through Guard.wrap: a Russian note is rejected, an\n"
            "     out-of-range age and a prediction of ~2000 mg/dL are flagged;\n"
            "  5. watches drifting traffic with a Monitor (one RetrainSignal), snapshots\n"
            "     clinic:v2 (reusing clinic:v1's chunks), retrains, and promotes the new\n"
            "     model only if it beats production on the same held-out slice;\n"
            "  6. prints the lineage, the audit log of the alias moves and the path of\n"
            "     the HTML drift report, and verifies the store.\n"
            "Exit status 0 when every step did what it should, 1 otherwise."),
        epilog="examples:\n  mlops demo\n  mlops demo --fast --dir /tmp/demo --json\n"
               "  mlops demo --slurm          # the training steps as Slurm jobs")
    d.add_argument("--dir", default=None,
                   help="work directory, kept (default: a new temporary one); it must be "
                        "new, empty or a previous demo's")
    d.add_argument("--store", default=None,
                   help="store to use (default: DIR/.mlops, embedded in the work directory)")
    d.add_argument("--fast", action="store_true",
                   help="smaller data and fewer steps (what the tests run)")
    d.add_argument("--slurm", action="store_true",
                   help="submit the training steps with mlops submit (2 nodes x 1 rank) "
                        "and wait for them")
    d.add_argument("-n", "--ranks", type=int_at_least(1, "a positive number of ranks"),
                   default=2, help="MPI ranks of the local training (default 2)")
    d.add_argument("--seed", type=int, default=0, help="random seed of the generated data")
    d.add_argument("--json", action="store_true",
                   help="print only a JSON summary of what the demo did and found")
    d.set_defaults(func=cmd_demo)
