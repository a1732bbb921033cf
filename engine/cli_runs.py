"""``mlops runs list|show`` and ``mlops log``: runs and the audit trail of the registry.

Shares the helpers and exit codes of :mod:`engine.cli_registry`.
"""

from __future__ import annotations

import argparse
import math

from .cli_registry import _fmt, _kvs, _open, _out, _table, _when


# ---------------------------------------------------------------------- runs
def cmd_runs_list(args) -> int:
    with _open(args) as reg:
        rs = reg.runs(args.name, args.status)
        if not _out(args, rs):
            if not rs:
                print("no runs")
                return 0
            _table([[r["run_id"], r["name"], r["status"], _when(r["start"]), _when(r["end"]) or "-",
                     f"{r['user']}@{r['host']}", str(r["world_size"] or "-"), r["slurm_job_id"] or "-"]
                    for r in rs], ["RUN", "NAME", "STATUS", "START", "END", "BY", "WORLD", "JOB"])
    return 0


def cmd_runs_show(args) -> int:
    from .registry import UnknownReference

    with _open(args) as reg:
        r = reg.get_run(args.run_id)
        if args.metric is not None:
            t = reg.metric_history(r["run_id"], args.metric)
            if t.num_rows == 0:
                have = sorted(r["metrics"]) or "none logged yet"
                raise UnknownReference(f"run {r['run_id']} has no metric {args.metric!r} "
                                       f"(it has: {', '.join(have) if isinstance(have, list) else have})")
            r["series"] = {"key": args.metric, "step": t.column("step").to_pylist(),
                           "value": [v if math.isfinite(v) else None for v in t.column("value").to_pylist()],
                           "time": t.column("time").to_pylist()}
        if _out(args, r):
            return 0
        if args.metric is not None:
            s = r["series"]
            print(f"run {r['run_id']} ({r['name']}) metric {args.metric}: {len(s['step'])} points")
            _table([[str(st), "nan" if v is None else repr(v)] for st, v in zip(s["step"], s["value"])], ["STEP", "VALUE"])
            return 0
        dirty = {None: "", True: " (dirty)", False: " (clean)"}[r["git_dirty"]]
        print(f"run {r['run_id']}")
        for k, v in [
            ("name", r["name"]), ("status", r["status"]),
            ("start", _when(r["start"])), ("end", _when(r["end"]) or "-"),
            ("git", f"{r['git_commit'] or '-'}{dirty}"),
            ("by", f"{r['user']}@{r['host']}"), ("world size", r["world_size"]),
            ("slurm job", r["slurm_job_id"] or "-"),
            ("command", " ".join(r["info"].get("argv") or []) or "-"),
            ("params", _kvs(r["params"])), ("tags", _kvs(r["tags"])),
            ("inputs", ", ".join(r["inputs"]) or "-"), ("outputs", ", ".join(r["outputs"]) or "-"),
        ]:
            print(f"  {k:<11} {v}")
        if r["metrics"]:
            print("  metrics:")
            _table([[f"    {k}", _fmt(m.get("last")), _fmt(m.get("min")), _fmt(m.get("max")),
                     str(m.get("count")), str(m.get("step"))] for k, m in sorted(r["metrics"].items())],
                   ["    KEY", "LAST", "MIN", "MAX", "COUNT", "LAST STEP"])
        else:
            print("  metrics     -")
    return 0


# ---------------------------------------------------------------------- log
def cmd_log(args) -> int:
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    with _open(args) as reg:
        if args.name is not None:
            reg.versions(args.name, include_deleted=True)  # an unknown name is an error
        rows = reg.history(args.name, args.limit)
        if not _out(args, rows):
            if not rows:
                print("the registry log is empty")
            for h in rows:
                job = f" job {h['slurm_job_id']}" if h["slurm_job_id"] else ""
                print(f"{h['seq']:>6}  {_when(h['time'])}  {h['user']}@{h['host']}{job}  {h['summary']}")
    return 0


def add_runs_parsers(sub, parser_class, cmd, common) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    runs = sub.add_parser("runs", help="training runs: list, show",
                          description="Training runs recorded in the registry (Registry.start_run): "
                          "params, metric series, tags, git commit, host, world size, Slurm job, "
                          "inputs and outputs.")
    rsub = runs.add_subparsers(dest="runs_command", metavar="SUBCOMMAND", parser_class=parser_class)
    runs.set_defaults(func=lambda a: (runs.print_help(), 2)[1])

    p = cmd(rsub, "list", "runs, oldest first",
            "List runs, oldest first, with status, start and end, user@host, world size and "
            "Slurm job id.", ["mlops runs list", "mlops runs list --name train --status FAILED"],
            cmd_runs_list)
    p.add_argument("--name", default=None, help="only runs of this name")
    p.add_argument("--status", default=None, type=str.upper,
                   choices=["RUNNING", "FINISHED", "FAILED", "KILLED"], help="only runs with this status")
    common(p)

    p = cmd(rsub, "show", "a run's params, metric summary, tags, git, host, inputs and outputs",
            "Show a run: params, metric summary (last, min, max, count), tags, git commit and "
            "whether the tree was dirty, user@host, world size, Slurm job id, inputs and outputs. "
            "With --metric KEY, print that metric's series (step, value) instead.",
            ["mlops runs show 3fa2c81e", "mlops runs show 3fa2c81e --metric val_loss --json"],
            cmd_runs_show)
    p.add_argument("run_id", help="run id or a unique prefix of 4+ characters")
    p.add_argument("--metric", default=None, metavar="KEY", help="print this metric's series")
    common(p)

    p = sub.add_parser("log", help="the registry's audit trail, newest first",
                       description="The registry's audit trail, newest first: every commit with "
                       "its number, time, user@host, Slurm job and what it did (registrations, "
                       "alias moves with their gate and FORCED when forced, runs, deletions).",
                       formatter_class=raw,
                       epilog="examples:\n  mlops log clf --limit 20\n  mlops log --json")
    p.add_argument("name", nargs="?", default=None, help="only commits about this artifact")
    p.add_argument("--limit", type=int, default=None, help="at most N commits")
    common(p)
    p.set_defaults(func=cmd_log)
