"""``mlops data ...``: snapshot, checkout, diff, log, verify, gc."""

from __future__ import annotations

import json
import sys


def _out(args, obj, text: str) -> None:
    if args.json:
        json.dump(obj, sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        print(text)


def cmd_snapshot(args) -> int:
    from .data import snapshot

    v = snapshot(args.path, args.name, args.message, store=args.store,
                 progress=False if args.json else None, workers=args.workers)
    d = v.to_dict() | {"unchanged": v.unchanged, "new_bytes": v.record.get("new_bytes")}
    note = " (unchanged: same content as the latest version)" if v.unchanged else ""
    _out(args, d, f"{v.ref} {v.id[:16]} {v.files} entries, {v.bytes} bytes{note}")
    return 0


def cmd_checkout(args) -> int:
    from .data import checkout

    r = checkout(args.ref, args.dest, store=args.store, paths=args.path or None,
                 progress=False if args.json else None)
    _out(args, r.to_dict(), f"{r.version.ref}: {r.files} files, {r.links} links, {r.bytes} bytes -> {r.dest}")
    return 0


def cmd_diff(args) -> int:
    from .data import diff

    d = diff(args.a, args.b, store=args.store)
    if args.json:
        _out(args, d.to_dict(), "")
    else:
        print(d.summary())
        for e in d.added:
            print(f"A {e['path']} ({e['size']} bytes)")
        for e in d.removed:
            print(f"D {e['path']}")
        for e in d.modified:
            print(f"M {e['path']} ({e['old_size']} -> {e['new_size']} bytes, "
                  f"{e['bytes_changed']} in new chunks)")
        for e in d.renamed:
            print(f"R {e['from']} -> {e['to']}")
    return 1 if args.exit_code and not d.identical else 0


def cmd_log(args) -> int:
    from .data import log

    vs = log(args.name, store=args.store)
    if args.json:
        _out(args, [v.to_dict() for v in vs], "")
    else:
        for v in vs:
            msg = f"  {v.message}" if v.message else ""
            print(f"{v.ref:<16} {v.id[:16]}  {v.created[:19]}  {v.files:>7} files "
                  f"{v.bytes:>14} bytes  {v.record.get('user')}@{v.record.get('host')}{msg}")
    return 0


def cmd_verify(args) -> int:
    from .data import verify

    r = verify(store=args.store, sample=args.sample)
    if args.json:
        _out(args, r.to_dict(), "")
    else:
        print(f"checked {r.chunks_checked} chunks ({r.bytes_checked} bytes) in {r.packs} packs, "
              f"{r.versions} versions: {'OK' if r.ok else f'{len(r.problems)} PROBLEMS'}")
        for p in r.problems:
            print("  " + ", ".join(f"{k}={v}" for k, v in p.items()))
    return 0 if r.ok else 1


def cmd_gc(args) -> int:
    from .data import gc

    r = gc(store=args.store, keep=args.keep, keep_last=args.keep_last, grace=args.grace,
           dry_run=args.dry_run)
    d = r.to_dict()
    what = "would remove" if args.dry_run else "removed"
    _out(args, d, f"{what}: {len(r.versions_deleted)} versions, {r.packs_deleted} packs, "
                  f"{r.temporaries_removed} temporaries; repacked {r.packs_repacked} packs; "
                  f"{r.bytes_freed} bytes freed")
    return 0


def add_parser(sub, parser_class) -> None:
    data = sub.add_parser(
        "data", help="version datasets: snapshot, checkout, diff, log, verify, gc",
        description="Version datasets in a content-addressed, deduplicated store. "
        "References: NAME:vN, NAME@latest, NAME (its latest), or a unique id prefix.")
    dsub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=parser_class)
    data.set_defaults(func=lambda a: (data.print_help(), 2)[1])

    def common(p, json_help="print the result as JSON"):
        p.add_argument("--store", default=None,
                       help="store root: a path or pyarrow.fs URI (default $MLOPS_HOME or ./.mlops)")
        p.add_argument("--json", action="store_true", help=json_help)

    p = dsub.add_parser("snapshot", help="snapshot a directory or file as a new version",
                        description="Snapshot PATH (a directory or a file) as the next version of "
                        "dataset NAME. Unchanged files cost one stat each (stat cache); a tree "
                        "identical to the latest version commits nothing and prints that version.")
    p.add_argument("path", help="directory or file to snapshot")
    p.add_argument("--name", "-n", required=True, help="dataset name (letters, digits, . _ -)")
    p.add_argument("--message", "-m", default=None, help="a note stored with the version")
    p.add_argument("--workers", type=int, default=None, help="reader threads (default: cores - 1)")
    common(p)
    p.set_defaults(func=cmd_snapshot)

    p = dsub.add_parser("checkout", help="write a version's files into a directory",
                        description="Rebuild the files of REF under DEST byte for byte, checking "
                        "every chunk against its id. Files are replaced atomically; other files in "
                        "DEST are left alone.")
    p.add_argument("ref", help="version reference (NAME:vN, NAME@latest, NAME or an id prefix)")
    p.add_argument("dest", help="destination directory (created if missing)")
    p.add_argument("--path", action="append", help="restore only this file or directory (repeatable)")
    common(p)
    p.set_defaults(func=cmd_checkout)

    p = dsub.add_parser("diff", help="files added, removed, modified, renamed between two versions",
                        description="Compare version A with version B: files added (A), removed (D), "
                        "modified (M) and renamed (R), with bytes in new chunks and chunks reused.")
    p.add_argument("a", help="old version reference")
    p.add_argument("b", help="new version reference")
    p.add_argument("--exit-code", action="store_true", help="exit 1 if the versions differ")
    common(p)
    p.set_defaults(func=cmd_diff)

    p = dsub.add_parser("log", help="the versions of a dataset, newest first",
                        description="List the versions of dataset NAME, newest first, with who "
                        "made each one, where and when.")
    p.add_argument("name", help="dataset name")
    common(p)
    p.set_defaults(func=cmd_log)

    p = dsub.add_parser("verify", help="re-hash stored chunks; exit 1 on corruption",
                        description="Re-hash every stored chunk (or a sample) and check that every "
                        "version's chunks exist. Each problem names the pack, the chunk and the "
                        "versions affected. Exit 0 if the store is sound, 1 if not.")
    p.add_argument("--sample", type=float, default=None, help="re-hash only this fraction of chunks")
    common(p)
    p.set_defaults(func=cmd_verify)

    p = dsub.add_parser("gc", help="remove versions not kept and data nothing references",
                        description="Delete versions not kept (the newest of each dataset always "
                        "is), then packs no kept version references; rewrite packs that are mostly "
                        "garbage; remove temporaries of crashed writers. Data younger than --grace "
                        "is never touched.")
    p.add_argument("--keep", action="append", default=None, help="keep this version (repeatable)")
    p.add_argument("--keep-last", type=int, default=None, help="keep the newest N versions of each dataset")
    p.add_argument("--grace", type=float, default=3600.0,
                   help="seconds; younger packs and temporaries are left alone (default 3600)")
    p.add_argument("--dry-run", action="store_true", help="report, change nothing")
    common(p)
    p.set_defaults(func=cmd_gc)


