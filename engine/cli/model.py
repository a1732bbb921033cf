"""``mlops model ...``: the artifact and model registry.

Exit codes (as for every command): 0 ok; 1 a promotion gate rejected the version;
2 bad usage, bad input or an unknown reference; 3 the registry is damaged (an
unreadable commit, a commit of a newer format) or an I/O error.
"""

from __future__ import annotations

import os

from .args import add_command, add_common, add_group, add_wait, key_value, open_registry
from .format import count, human_bytes, kvs, out, table, value, when


def _bare_name(ref: str, what: str) -> str:
    from ..registry import parse_ref

    r = parse_ref(ref)
    if r.alias is not None or r.version is not None or r.id_prefix is not None:
        raise ValueError(f"{what} takes an artifact NAME, not the reference {ref!r}")
    return r.name


def _neighbours(reg, mv) -> tuple[list[str], list[str]]:
    lin = reg.lineage(mv.ref, 1)
    return [s for s, _ in lin["up"]], [d for _, d in lin["down"]]


def _run_brief(reg, run_id: str | None) -> dict | None:
    if not run_id:
        return None
    r = reg.get_run(run_id)
    return {"run_id": r["run_id"], "name": r["name"], "status": r["status"],
            "metrics": {k: v.get("last") for k, v in r["metrics"].items()}}


def cmd_register(args) -> int:
    kind = args.kind or "model"
    if kind != "dataset" and not os.path.lexists(args.path):
        raise FileNotFoundError(f"cannot register {args.path!r}: no such file or directory")
    # a dataset version reference needs an existing store: do not create one at a typo
    with open_registry(args, create=kind != "dataset" or os.path.lexists(args.path)) as reg:
        mv = reg.register(args.name, args.path, kind=kind, metrics=dict(args.metric or []),
                          params=dict(args.param or []), tags=dict(args.tag or []),
                          message=args.message, inputs=args.input or None,
                          aliases=args.alias or None, progress=False if args.json else None)
        if not out(args, mv.to_dict()):
            print(f"{mv.ref} registered: {mv.kind}, {count(mv.files, 'file')}, "
                  f"{human_bytes(mv.size)}, id {mv.id[:16]}  aliases: {', '.join(mv.aliases) or '-'}")
    return 0


def cmd_list(args) -> int:
    with open_registry(args) as reg:
        rows = reg.artifacts(args.kind)
        if not out(args, rows):
            if not rows:
                print(f"no artifacts{f' of kind {args.kind}' if args.kind else ''} in {reg.store.root}")
                return 0
            table(["NAME", "KIND", "VERSIONS", "LATEST", "ALIASES"],
                  [[r["name"], r["kind"], str(r["versions"]), f"v{r['latest']}" if r["latest"] else "-",
                    ", ".join(f"{a}=v{v}" for a, v in sorted(r["aliases"].items())) or "-"]
                   for r in rows])
    return 0


def _version_dict(reg, mv) -> dict:
    d = mv.to_dict()
    d["content"], d["seq"] = mv.content, mv.seq
    d["inputs"], d["used_by"] = _neighbours(reg, mv)
    d["run"] = _run_brief(reg, mv.run_id)
    return d


def cmd_show(args) -> int:
    with open_registry(args) as reg:
        if args.all:
            vs = [_version_dict(reg, mv) for mv in reg.versions(_bare_name(args.ref, "--all"))]
            if not out(args, vs):
                table(["VERSION", "ID", "CREATED", "BY", "METRICS", "ALIASES"],
                      [[d["ref"], d["id"][:16], when(d["created"]), f"{d['user']}@{d['host']}",
                        kvs(d["metrics"]), ", ".join(d["aliases"]) or "-"] for d in vs])
            return 0
        d = _version_dict(reg, reg.get(args.ref))
        if out(args, d):
            return 0
        run = d["run"]
        print(d["ref"])
        for k, v in [
            ("kind", d["kind"]), ("id", d["id"]), ("format", d["format"]),
            ("size", f"{human_bytes(d['size'])} in {count(d['files'], 'file')}"),
            ("created", f"{when(d['created'])} by {d['user']}@{d['host']}"),
            ("run", f"{run['run_id']} ({run['name']}, {run['status']})" if run else "-"),
            ("message", d["message"] or "-"), ("aliases", ", ".join(d["aliases"]) or "-"),
            ("metrics", kvs(d["metrics"])),
            *([("run metrics", kvs(run["metrics"]))] if run and run["metrics"] else []),
            ("params", kvs(d["params"])), ("tags", kvs(d["tags"])),
            ("inputs", ", ".join(d["inputs"]) or "-"), ("used by", ", ".join(d["used_by"]) or "-"),
        ]:
            print(f"  {k:<12} {v}")
    return 0


def cmd_alias(args) -> int:
    with open_registry(args) as reg:
        if args.delete:
            name = _bare_name(args.ref, "alias --delete")
            old = reg.get(f"{name}@{args.alias}").version
            reg.remove_alias(name, args.alias)
            res = {"name": name, "alias": args.alias, "version": None, "previous": old}
            out(args, res, f"removed alias {name}@{args.alias} (was v{old})")
            return 0
        p = reg.set_alias(reg.get(args.ref), args.alias)
        res = {"name": p.name, "alias": p.alias, "version": p.version, "previous": p.previous,
               "ref": p.ref}
        out(args, res, f"{p.name}@{p.alias} -> v{p.version} "
                       f"(was {f'v{p.previous}' if p.previous else 'unset'})")
    return 0


def cmd_promote(args) -> int:
    from ..registry import GateError, GateRejected
    from ..registry.refs import parse_gate

    if args.gate is not None:
        parse_gate(args.gate)  # a malformed --gate is bad usage, reported before the store
    with open_registry(args) as reg:
        try:
            p = reg.promote(reg.get(args.ref), args.alias, gate=args.gate, force=args.force)
        except GateRejected as exc:
            raise GateRejected(f"{exc}; pass --force to move it anyway") from None
        except GateError as exc:  # the API's advice, in CLI words
            raise GateError(str(exc).replace("pass force=True", "pass --force")) from None
    # what the commit recorded (the compare-and-set state), as the JSON of earlier releases
    res = {k: v for k, v in p.to_dict().items() if k not in ("outcome", "message")}
    out(args, res, p.message)
    return 0


def cmd_compare(args) -> int:
    with open_registry(args) as reg:
        c = reg.compare(args.a, args.b)
        ins = [sorted({s for s, _ in side}) for side in c["inputs"]]
        rows = [("", "id", *c["ids"]), ("", "run", *c["runs"])]
        rows += [("param", k, a, b) for k, (a, b) in c["params"].items()]
        rows += [("metric", k, a, b) for k, (a, b) in c["metrics"].items()]
        rows.append(("", "inputs", ", ".join(ins[0]) or None, ", ".join(ins[1]) or None))
        diff = [f"{s} {k}".strip() for s, k, a, b in rows if a != b]
        res = {"a": c["a"], "b": c["b"], "same_content": c["same_content"], "ids": list(c["ids"]),
               "runs": list(c["runs"]), "params": {k: list(v) for k, v in c["params"].items()},
               "metrics": {k: list(v) for k, v in c["metrics"].items()},
               "inputs": {"a": ins[0], "b": ins[1]}, "different": diff}
        if out(args, res):
            return 0

        def cell(s, k, v):
            t = value(v)
            return t[:16] if k == "id" and s == "" and v else t

        table(["KEY", c["a"], c["b"], ""],
              [[f"{s} {k}".strip(), cell(s, k, a), cell(s, k, b), "*" if a != b else ""]
               for s, k, a, b in rows])
        print(f"(* differs; {'same' if c['same_content'] else 'different'} content)")
    return 0


def cmd_pull(args) -> int:
    with open_registry(args) as reg:
        mv = reg.get(args.ref)
        path = reg.pull(mv, args.dest, progress=False if args.json else None)
        out(args, {"ref": mv.ref, "id": mv.id, "path": path, "files": mv.files, "size": mv.size},
            path)
    return 0


def cmd_verify(args) -> int:
    with open_registry(args) as reg:
        rep = reg.verify(content=not args.log_only, rehash=not args.quick)
    if not out(args, rep):
        old = rep.get("unchecked_commits", 0)
        print(f"{count(rep['commits'], 'commit')}"
              + (f" ({old} of format 1, without checksums: unchecked)" if old else "")
              + f", {count(rep['checkpoints'], 'checkpoint')}, "
              f"{count(rep['states'], 'index snapshot')}, "
              f"{count(rep['versions'], 'live version')}: "
              + ("OK" if rep["ok"] else count(len(rep["problems"]), "PROBLEM", "PROBLEMS")))
        for p in rep["problems"]:
            print("  " + ", ".join(f"{k}={v}" for k, v in p.items()))
    return 0 if rep["ok"] else 1


def cmd_purge(args) -> int:
    with open_registry(args) as reg:
        r = reg.purge(args.ref, reason=args.reason, wait=args.wait, dry_run=args.dry_run)
    what = "would remove" if r["dry_run"] else "purged"
    out(args, r, f"{what} {r['version']}: {count(r['chunks_removed'], 'chunk')}"
                 + ("" if r["dry_run"] else f" ({human_bytes(r['bytes_removed'])} stored) from "
                    f"{count(r['packs_rewritten'], 'rewritten pack')}")
                 + f"; {count(r['chunks_kept'], 'chunk')} kept (other versions use them)")
    return 0


def cmd_lineage(args) -> int:
    if args.depth is not None and args.depth < 1:
        raise ValueError(f"--depth must be >= 1, got {args.depth}")
    with open_registry(args) as reg:
        lin = reg.lineage(args.ref, args.depth)
        if out(args, {"root": lin["root"], "up": [list(e) for e in lin["up"]],
                       "down": [list(e) for e in lin["down"]], "runs": lin["runs"]}):
            return 0
        runs = lin["runs"]

        def label(n):
            r = runs.get(n)
            return f"{n} ({r['name']}, {r['status']})" if r else n

        def tree(edges, up: bool):
            kids: dict[str, list[str]] = {}
            for src, dst in edges:
                a, b = (dst, src) if up else (src, dst)
                kids.setdefault(a, []).append(b)
            shown = {lin["root"]}

            def walk(n, depth):
                for k in kids.get(n, []):
                    again = k in shown and k in kids
                    print("  " * depth + ("<- " if up else "-> ") + label(k) + (" (see above)" if again else ""))
                    if not again:
                        shown.add(k)
                        walk(k, depth + 1)

            walk(lin["root"], 2)

        print(label(lin["root"]))
        print("  came from:" if lin["up"] else "  came from: nothing recorded")
        tree(lin["up"], True)
        print("  led to:" if lin["down"] else "  led to: nothing recorded")
        tree(lin["down"], False)
    return 0


# ---------------------------------------------------------------------- parsers
def add_parser(sub, parser_class) -> None:
    refs = ("References: NAME (its latest version), NAME@ALIAS, NAME:vN, or NAME:<id prefix> "
            "(4+ hex digits).")
    msub = add_group(
        sub, "model", "the artifact and model registry: register, list, show, alias, promote, ...",
        "Register models, checkpoints, datasets and profiles as immutable versions; "
        "name them with aliases, promote them through metric gates, compare them, pull their "
        "files and trace their lineage. " + refs, "model_command", parser_class)

    p = add_command(msub, "register", "store a file or directory as the next version of NAME",
                    "Store PATH (a file or a directory) as the next version of artifact NAME, with its "
                    "metrics, params, tags and the versions it was made from. With --kind dataset, PATH "
                    "may be a dataset version of the store (imagenet:v3); with --kind profile, it must be "
                    "a profile file of 'mlops monitor profile -o'. Content is checked before anything is "
                    "stored: a profile must be one, a .safetensors or .pt/.pth file must be a readable "
                    "state dict (exit 2 if not). Creates the store if missing.",
                    ["mlops model register clf out/model.safetensors --metric val_loss=0.21 "
                     "--param lr=3e-4 --input imagenet:v3",
                     "mlops model register clf out/ --tag team=vision --alias staging -m 'bigger batch'",
                     "mlops model register imagenet imagenet:v3 --kind dataset",
                     "mlops model register ref-profile ref.profile --kind profile"], cmd_register)
    p.add_argument("name", help="artifact name (letters, digits, . _ -)")
    p.add_argument("path", help="file or directory to store (with --kind dataset: or a dataset version)")
    p.add_argument("--kind", choices=["model", "checkpoint", "dataset", "profile"], default=None,
                   help="artifact kind (default model; a name keeps its first kind)")
    p.add_argument("--metric", action="append", type=key_value("metric"), metavar="KEY=NUMBER",
                   help="a metric of this version (repeatable); promotion gates compare these")
    p.add_argument("--param", action="append", type=key_value("param"), metavar="KEY=VALUE",
                   help="a parameter (repeatable); VALUE is parsed as JSON if it parses, else a string")
    p.add_argument("--tag", action="append", type=key_value("tag"), metavar="KEY=VALUE",
                   help="a tag (repeatable)")
    p.add_argument("--message", "-m", default=None, help="a note stored with the version")
    p.add_argument("--input", action="append", metavar="REF",
                   help="a registry or dataset version this one was made from (repeatable; lineage)")
    p.add_argument("--alias", action="append", metavar="ALIAS",
                   help="point this alias at the new version, in the same commit (repeatable)")
    add_common(p)

    p = add_command(msub, "list", "artifacts with their kind, versions, latest version and aliases",
                    "List every artifact of the registry: its kind, number of versions, latest version "
                    "and aliases.", ["mlops model list", "mlops model list --kind checkpoint --json"], cmd_list)
    p.add_argument("--kind", choices=["model", "checkpoint", "dataset", "profile"], default=None,
                   help="only artifacts of this kind")
    add_common(p)

    p = add_command(msub, "show", "every field of a version (or, with --all, every version of NAME)",
                    "Show every field of the version REF names: id, format, size, who made it where and "
                    "when, its run, metrics, params, tags, aliases, the versions it was made from and "
                    "those made from it. With --all and a bare NAME, list every version of NAME. " + refs,
                    ["mlops model show clf@production", "mlops model show clf:v3 --json",
                     "mlops model show clf --all"], cmd_show)
    p.add_argument("ref", help="version reference, or NAME with --all")
    p.add_argument("--all", action="store_true", help="list every version of NAME, oldest first")
    add_common(p)

    p = add_command(msub, "alias", "point an alias at a version, or remove it (--delete)",
                    "Point ALIAS of the artifact at the version REF names, unconditionally (see "
                    "'mlops model promote' for gated moves). With --delete, remove ALIAS of artifact NAME. "
                    "'latest' is maintained automatically. Every move is in 'mlops log'.",
                    ["mlops model alias clf:v4 staging", "mlops model alias clf staging --delete"], cmd_alias)
    p.add_argument("ref", metavar="REF", help="version reference (with --delete: the artifact NAME)")
    p.add_argument("alias", help="alias name (starts with a letter)")
    p.add_argument("--delete", action="store_true", help="remove the alias instead of setting it")
    add_common(p)

    p = add_command(msub, "promote", "move an alias to a version if it passes a metric gate",
                    "Move ALIAS to the version REF names if it passes --gate against the version holding "
                    "ALIAS now: 'val_loss<=' moves it only if the new val_loss is <= the holder's (<, >=, > "
                    "likewise). A version's metric is the one given at registration, else the last value "
                    "its run logged. The check and the move are one compare-and-set commit. Exit 1 if the "
                    "gate rejects the version; --force moves it anyway and the log says FORCED.",
                    ["mlops model promote clf:v4 production --gate 'val_loss<='",
                     "mlops model promote clf:v4 production --gate 'accuracy>' --force"], cmd_promote)
    p.add_argument("ref", help="version reference")
    p.add_argument("alias", help="alias to move (e.g. production)")
    p.add_argument("--gate", default=None, metavar="METRIC<OP>",
                   help="METRIC<=, METRIC<, METRIC>= or METRIC>: new version vs holder (quote it)")
    p.add_argument("--force", action="store_true", help="move even if the gate rejects (logged as FORCED)")
    add_common(p)

    p = add_command(msub, "compare", "params, metrics, ids, runs and inputs of two versions side by side",
                    "Print the params, metrics, content ids, runs and inputs of versions A and B side by "
                    "side; '*' marks what differs.",
                    ["mlops model compare clf@production clf:v5", "mlops model compare clf:v3 clf:v4 --json"],
                    cmd_compare)
    p.add_argument("a", help="first version reference")
    p.add_argument("b", help="second version reference")
    add_common(p)

    p = add_command(msub, "pull", "write a version's files under DEST and print the path",
                    "Write the files of the version REF names under DEST (created if missing), checking "
                    "every chunk against its id, and print the path written: the file for a one-file "
                    "artifact, else DEST.", ["mlops model pull clf@production /scratch/serve",
                                             "torchrun serve.py --weights $(mlops model pull clf@production .)"],
                    cmd_pull)
    p.add_argument("ref", help="version reference")
    p.add_argument("dest", help="destination directory")
    add_common(p)

    p = add_command(msub, "verify", "re-read the registry's log and check every live version's content",
                    "Re-read every commit, checkpoint and index snapshot (what a warm index would not "
                    "notice), and check every live version's content: its manifest is intact and "
                    "every chunk is stored and re-hashes to its id (each chunk once, however many "
                    "versions share it). --quick only checks that the chunks are stored. Exit 1 if "
                    "anything is wrong.",
                    ["mlops model verify", "mlops model verify --quick",
                     "mlops model verify --log-only --json"], cmd_verify)
    p.add_argument("--log-only", action="store_true", help="skip the content checks")
    p.add_argument("--quick", action="store_true",
                   help="check that content is stored, without re-hashing it")
    add_common(p)

    p = add_command(msub, "purge", "remove a version and every chunk only it used, now",
                    "For deletion requests: append a tombstone commit for the version REF names "
                    "(the log is never rewritten; the commit records who, when and --reason), "
                    "remove its aliases, and rewrite the store's packs without the chunks no other "
                    "version (model or dataset) uses, so its bytes are gone from the store's files. "
                    "Refuses (exit 1, busy) while a snapshot or registration of the store runs, "
                    "unless --wait lets them finish. A version deleted earlier is purged again "
                    "when named as NAME:vN.",
                    ["mlops model purge clf:v3 --reason 'erasure request 42'",
                     "mlops model purge clf:v3 --dry-run --json"], cmd_purge)
    p.add_argument("ref", help="version reference (NAME:vN, NAME@ALIAS)")
    p.add_argument("--reason", default=None, help="why (recorded in the tombstone commit)")
    add_wait(p)
    p.add_argument("--dry-run", action="store_true", help="report what would be removed, change nothing")
    add_common(p)

    p = add_command(msub, "lineage", "what a version came from and what came from it",
                    "Print the lineage graph around REF as two indented trees: upward (the runs, dataset "
                    "and registry versions it came from) and downward (what was made from it). REF is a "
                    "registry version, run:<id> or data:NAME:vN.",
                    ["mlops model lineage clf@production", "mlops model lineage data:imagenet:v3 --depth 2",
                     "mlops model lineage run:3fa2c81e --json"], cmd_lineage)
    p.add_argument("ref", help="registry version, run:<id> or data:NAME:vN")
    p.add_argument("--depth", type=int, default=None, help="follow at most N edges each way (default all)")
    add_common(p)
