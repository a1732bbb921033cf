"""``mlops runs list|show|compare`` and ``mlops log``: runs and the audit trail of the registry.

Exit codes as for ``mlops model`` (see :mod:`engine.cli.model`).
"""

from __future__ import annotations

import math

from .args import add_command, add_common, add_group, open_registry
from .format import count, kvs, num, out, table, value, when


def cmd_runs_list(args) -> int:
    from ..registry.run_query import parse_filter, parse_sort, value_of

    conds = [parse_filter(f, "--filter") for f in args.filter or []]
    if args.desc and args.sort is None:
        raise ValueError("--desc orders by --sort METRIC; give --sort too")
    sort = None
    if args.sort is not None:
        key, desc = parse_sort(args.sort, "--sort")
        sort = f"-{key}" if desc or args.desc else key
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    # the keys the user sorted or filtered by get a column each
    keys = list(dict.fromkeys(([sort.lstrip("-")] if sort else []) + [c[0] for c in conds]))
    with open_registry(args) as reg:
        rs = reg.runs(args.name, args.status, where=args.filter, sort=sort, limit=args.limit)
        if not out(args, rs):
            if not rs:
                print("no runs")
                return 0
            table(["RUN", "NAME", "STATUS", *keys, "START", "END", "BY", "WORLD", "JOB"],
                  [[r["run_id"], r["name"], r["status"], *[num(value_of(r, k)) for k in keys],
                    when(r["start"]), when(r["end"]) or "-", f"{r['user']}@{r['host']}",
                    str(r["world_size"] or "-"), r["slurm_job_id"] or "-"] for r in rs])
    return 0


def cmd_runs_compare(args) -> int:
    if len(args.run_ids) < 2:
        raise ValueError(f"comparing needs at least two runs, got {len(args.run_ids)}")
    with open_registry(args) as reg:
        c = reg.compare_runs(args.run_ids)
        if out(args, c):
            return 0
        rows = [("", f, *[r[f] for r in c["runs"]]) for f in ("name", "status")]
        rows.append(("", "start", *[when(r["start"]) for r in c["runs"]]))
        rows += [("param", k, *vs) for k, vs in c["params"].items()]
        rows += [("metric", k, *vs) for k, vs in c["metrics"].items()]
        table(["KEY", *[r["run_id"] for r in c["runs"]], ""],
              [[f"{s} {k}".strip(), *[num(v) for v in vs],
                "*" if f"{s} {k}" in c["different"] else ""] for s, k, *vs in rows])
        print("(* differs; metrics are the last value each run logged)")
    return 0


def _show_metric(reg, args, r) -> int:
    s = reg.metric_summary(r["run_id"], args.metric)
    r["summary"] = {k: v for k, v in s.items() if k not in ("run_id", "key")}
    if args.all:
        t = reg.metric_history(r["run_id"], args.metric)
        r["series"] = {"key": args.metric, "step": t.column("step").to_pylist(),
                       "value": [v if math.isfinite(v) else None for v in t.column("value").to_pylist()],
                       "time": t.column("time").to_pylist()}
    if out(args, r):
        return 0
    print(f"run {r['run_id']} ({r['name']}) metric {args.metric}: {count(s['count'], 'point')}")
    if args.all:
        ser = r["series"]
        table(["STEP", "VALUE"],
              [[str(st), "nan" if v is None else repr(v)] for st, v in zip(ser["step"], ser["value"])])
        return 0
    print(f"  steps {s['first_step']}..{s['last_step']}  first {num(s['first'])}  "
          f"last {num(s['last'])}  min {num(s['min'])}  max {num(s['max'])}")
    print(f"  {s['sparkline']}")
    return 0


def cmd_runs_show(args) -> int:
    if args.all and args.metric is None:
        raise ValueError("--all prints every point of --metric KEY; give --metric too")
    with open_registry(args) as reg:
        r = reg.get_run(args.run_id)
        if args.metric is not None:
            return _show_metric(reg, args, r)
        if out(args, r):
            return 0
        dirty = {None: "", True: " (dirty)", False: " (clean)"}[r["git_dirty"]]
        print(f"run {r['run_id']}")
        for k, v in [
            ("name", r["name"]), ("status", r["status"]),
            ("start", when(r["start"])), ("end", when(r["end"]) or "-"),
            ("git", f"{r['git_commit'] or '-'}{dirty}"),
            ("by", f"{r['user']}@{r['host']}"), ("world size", r["world_size"]),
            ("slurm job", r["slurm_job_id"] or "-"),
            ("command", " ".join(r["info"].get("argv") or []) or "-"),
            ("params", kvs(r["params"])), ("tags", kvs(r["tags"])),
            ("inputs", ", ".join(r["inputs"]) or "-"), ("outputs", ", ".join(r["outputs"]) or "-"),
        ]:
            print(f"  {k:<11} {v}")
        if r["metrics"]:
            print("  metrics:")
            table(["    KEY", "LAST", "MIN", "MAX", "COUNT", "LAST STEP"],
                  [[f"    {k}", value(m.get("last")), value(m.get("min")), value(m.get("max")),
                    str(m.get("count")), str(m.get("step"))] for k, m in sorted(r["metrics"].items())])
        else:
            print("  metrics     -")
    return 0


def cmd_log(args) -> int:
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    with open_registry(args) as reg:
        if args.name is not None:
            reg.versions(args.name, include_deleted=True)  # an unknown name is an error
        rows = reg.history(args.name, args.limit)
        if not out(args, rows):
            if not rows:
                print("the registry log is empty")
            for h in rows:
                job = f" job {h['slurm_job_id']}" if h["slurm_job_id"] else ""
                print(f"{h['seq']:>6}  {when(h['time'])}  {h['user']}@{h['host']}{job}  {h['summary']}")
    return 0


def add_parser(sub, parser_class) -> None:
    rsub = add_group(sub, "runs", "training runs: list, show, compare",
                     "Training runs recorded in the registry (Registry.start_run): "
                     "params, metric series, tags, git commit, host, world size, Slurm job, "
                     "inputs and outputs.", "runs_command", parser_class)

    p = add_command(rsub, "list", "runs, newest first; filter and sort by final metrics",
                    "List runs, newest first, with status, start and end, user@host, world size and "
                    "Slurm job id. --filter keeps the runs where KEY<OP>VALUE holds (OP: <, <=, >, >=, "
                    "==, !=; KEY is a metric, its final value being the last one logged, else a param; "
                    "repeat it and every filter must hold). --sort METRIC orders by the final value of "
                    "METRIC, ascending (--desc or --sort=-METRIC: descending), runs without it last. "
                    "The keys sorted or filtered by get a column each.",
                    ["mlops runs list", "mlops runs list --name train --status FAILED",
                     "mlops runs list --filter 'val_loss<0.3' --sort val_loss --limit 5",
                     "mlops runs list --filter 'lr==0.01' --filter 'acc>=0.9' --sort acc --desc --json"],
                    cmd_runs_list)
    p.add_argument("--name", default=None, help="only runs of this name")
    p.add_argument("--status", default=None, type=str.upper,
                   choices=["RUNNING", "FINISHED", "FAILED", "KILLED"], help="only runs with this status")
    p.add_argument("--filter", action="append", metavar="KEY<OP>VALUE",
                   help="keep runs where this holds, e.g. 'val_loss<0.3' (quote it; repeatable)")
    p.add_argument("--sort", default=None, metavar="METRIC",
                   help="order by this metric's final value, ascending (instead of newest first)")
    p.add_argument("--desc", action="store_true", help="with --sort: descending")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="at most N runs")
    add_common(p)

    p = add_command(rsub, "show", "a run's params, metric summary, tags, git, host, inputs and outputs",
                    "Show a run: params, metric summary (last, min, max, count), tags, git commit and "
                    "whether the tree was dirty, user@host, world size, Slurm job id, inputs and outputs. "
                    "With --metric KEY, summarize that metric instead: points, steps, first, last, min, "
                    "max and a sparkline of the series; with --all too, every point (step, value).",
                    ["mlops runs show 3fa2c81e", "mlops runs show 3fa2c81e --metric val_loss",
                     "mlops runs show 3fa2c81e --metric val_loss --all --json"],
                    cmd_runs_show)
    p.add_argument("run_id", help="run id or a unique prefix of 4+ characters")
    p.add_argument("--metric", default=None, metavar="KEY", help="summarize this metric")
    p.add_argument("--all", action="store_true", help="with --metric: print every point")
    add_common(p)

    p = add_command(rsub, "compare", "params and final metrics of runs side by side",
                    "Print the name, status, start, params and final metrics (the last value logged) "
                    "of two or more runs side by side; '*' marks what differs.",
                    ["mlops runs compare 3fa2c81e 9b01d4e2", "mlops runs compare 3fa2 9b01 77c3 --json"],
                    cmd_runs_compare)
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID",
                   help="two or more run ids or unique prefixes of 4+ characters")
    add_common(p)

    p = add_command(sub, "log", "the registry's audit trail, newest first",
                    "The registry's audit trail, newest first: every commit with its number, time, "
                    "user@host, Slurm job and what it did (registrations, alias moves with their "
                    "gate and FORCED when forced, runs, deletions).",
                    ["mlops log clf --limit 20", "mlops log --json"], cmd_log)
    p.add_argument("name", nargs="?", default=None, help="only commits about this artifact")
    p.add_argument("--limit", type=int, default=None, help="at most N commits")
    add_common(p)
