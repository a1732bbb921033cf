"""``mlops data ...``: snapshot, checkout, diff, status, list, log, verify, gc, purge."""

from __future__ import annotations

from .args import add_common, add_group, add_wait
from .format import bar, count, human_bytes, out, table


def _store(args, create: bool = False):
    """``--store`` as given, or, with ``--key-file``/``--encrypt``, the store opened (or
    created encrypted) with that key. Without them an encrypted store takes its key
    from ``$MLOPS_KEY_FILE`` or ``$MLOPS_KEY``."""
    encrypt = getattr(args, "encrypt", False)
    if not args.key_file and not encrypt:
        return args.store
    from ..store import Store

    return Store(args.store, create=create, encrypt=True if encrypt else None,
                 key_file=args.key_file)


def _add_key_options(p, create: bool = False) -> None:
    p.add_argument("--key-file", default=None, metavar="PATH",
                   help="key of an encrypted store: a file holding 64 hex digits (chmod 600); "
                   "default $MLOPS_KEY_FILE, else $MLOPS_KEY (hex)")
    if create:
        p.add_argument("--encrypt", action="store_true",
                       help="create the store encrypted (AES-256-GCM, keyed chunk ids; "
                       "docs/encryption.md); needs a key (--key-file, $MLOPS_KEY_FILE or "
                       "$MLOPS_KEY). Encryption is chosen when a store is created")


def cmd_snapshot(args) -> int:
    from ..data import snapshot

    v = snapshot(args.path, args.name, args.message, store=_store(args, create=True),
                 progress=bar(args),
                 workers=args.workers)
    d = v.to_dict() | {"unchanged": v.unchanged, "new_bytes": v.record.get("new_bytes")}
    note = " (unchanged: same content as the latest version)" if v.unchanged else ""
    out(args, d, f"{v.ref} {v.id[:16]} {count(v.files, 'entry', 'entries')}, "
                 f"{human_bytes(v.bytes)}{note}")
    return 0


def cmd_checkout(args) -> int:
    from ..data import checkout

    r = checkout(args.ref, args.dest, store=_store(args), paths=args.path or None, progress=bar(args))
    out(args, r.to_dict(), f"{r.version.ref}: {count(r.files, 'file')}, {count(r.links, 'link')}, "
                           f"{human_bytes(r.bytes)} -> {r.dest}")
    return 0


def _print_changes(d) -> None:
    for e in d.added:
        print(f"A {e['path']} ({human_bytes(e['size'])})")
    for e in d.removed:
        print(f"D {e['path']}")
    for e in d.modified:
        print(f"M {e['path']} ({human_bytes(e['old_size'])} -> {human_bytes(e['new_size'])}, "
              f"{human_bytes(e['bytes_changed'])} in new chunks)")
    for e in d.renamed:
        print(f"R {e['from']} -> {e['to']}")


def cmd_diff(args) -> int:
    from ..data import diff

    d = diff(args.a, args.b, store=_store(args), progress=bar(args))
    if not out(args, d.to_dict()):
        print(d.summary())
        _print_changes(d)
    return 1 if args.exit_code and not d.identical else 0


def cmd_status(args) -> int:
    from ..data import status

    d = status(args.name, args.dir, store=_store(args), progress=bar(args))
    code = 1 if args.exit_code and not d.identical else 0
    if out(args, d.to_dict()):
        return code
    if d.identical:
        print(f"no changes: {d.b} matches {d.a} ({count(d.unchanged, 'entry', 'entries')})")
        return code
    print(f"{d.b} since {d.a}: {len(d.added)} added, {len(d.removed)} removed, "
          f"{len(d.modified)} modified, {len(d.renamed)} renamed, {d.unchanged} unchanged")
    _print_changes(d)
    return code


def cmd_list(args) -> int:
    from ..data import datasets, open_store

    st = _store(args)
    rows = datasets(store=st)
    if out(args, [r.to_dict() for r in rows]):
        return 0
    if not rows:
        print(f"no datasets in {open_store(st).root}")
        return 0
    table(["NAME", "VERSIONS", "LATEST", "SIZE", "FILES", "CREATED (UTC)", "MESSAGE"],
          [[r.name, str(r.versions), r.latest.ref, human_bytes(r.latest.bytes),
            count(r.latest.files, "file"), r.latest.created[:16].replace("T", " "),
            r.latest.message or ""] for r in rows], right={1, 3})
    return 0


def cmd_log(args) -> int:
    from ..data import log

    vs = log(args.name, store=_store(args))
    if not out(args, [v.to_dict() for v in vs]):
        for v in vs:
            msg = f"  {v.message}" if v.message else ""
            print(f"{v.ref:<16} {v.id[:16]}  {v.created[:19]}  {count(v.files, 'file'):>11} "
                  f"{human_bytes(v.bytes):>10}  {v.record.get('user')}@{v.record.get('host')}{msg}")
    return 0


def _problem_line(p: dict) -> str:
    where = p.get("path") or (f"chunk {p['chunk']}" if "chunk" in p else "")
    extra = [f"chunk {p['chunk']} at offset {p['offset']}" if "offset" in p else "",
             p.get("detail", "")]
    versions = p.get("versions")
    affects = f"; affects {', '.join(versions)}" if versions else ""
    return f"  {p['problem']}: {where}" + "".join(f" ({x})" for x in extra if x) + affects


def cmd_verify(args) -> int:
    from ..data import verify

    r = verify(store=_store(args), sample=args.sample, progress=bar(args))
    if not out(args, r.to_dict()):
        print(f"checked {count(r.chunks_checked, 'chunk')} ({human_bytes(r.bytes_checked)}) in "
              f"{count(r.packs, 'pack')}, {count(r.versions, 'version')}: "
              f"{'OK' if r.ok else count(len(r.problems), 'PROBLEM', 'PROBLEMS')}")
        for p in r.problems:
            print(_problem_line(p))
        if not r.ok:
            print(f"damaged versions: {', '.join(r.damaged_versions) or 'none'}")
            print(f"intact versions: {', '.join(r.intact_versions) or 'none'}")
    return 0 if r.ok else 1


def cmd_purge(args) -> int:
    from ..data import purge

    r = purge(args.ref, store=_store(args), reason=args.reason, wait=args.wait, dry_run=args.dry_run)
    what = "would remove" if r.dry_run else "purged"
    out(args, r.to_dict(), f"{what} {r.version}: {count(r.chunks_removed, 'chunk')}"
        + ("" if r.dry_run else f" ({human_bytes(r.bytes_removed)} stored) from "
           f"{count(r.packs_rewritten, 'rewritten pack')}")
        + f"; {count(r.chunks_kept, 'chunk')} kept (other versions use them)")
    return 0


def cmd_gc(args) -> int:
    from ..data import gc

    r = gc(store=_store(args), keep=args.keep, keep_last=args.keep_last, grace=args.grace,
           dry_run=args.dry_run, wait=args.wait)
    d = r.to_dict()
    what = "would remove" if args.dry_run else "removed"
    out(args, d, f"{what}: {count(len(r.versions_deleted), 'version')}, "
                 f"{count(r.packs_deleted, 'pack')}, {count(r.temporaries_removed, 'temporary', 'temporaries')}; "
                 f"repacked {count(r.packs_repacked, 'pack')}; {human_bytes(r.bytes_freed)} freed")
    return 0


def add_parser(sub, parser_class) -> None:
    dsub = add_group(
        sub, "data", "version datasets: snapshot, checkout, diff, status, list, log, verify, gc, purge",
        "Version datasets in a content-addressed, deduplicated store. "
        "References: NAME:vN, NAME@latest, NAME (its latest), or a unique id prefix.",
        "data_command", parser_class)

    p = dsub.add_parser("snapshot", help="snapshot a directory or file as a new version",
                        description="Snapshot PATH (a directory or a file) as the next version of "
                        "dataset NAME. Unchanged files cost one stat each (stat cache); a tree "
                        "identical to the latest version commits nothing and prints that version.")
    p.add_argument("path", help="directory or file to snapshot")
    p.add_argument("--name", "-n", required=True, help="dataset name (letters, digits, . _ -)")
    p.add_argument("--message", "-m", default=None, help="a note stored with the version")
    p.add_argument("--workers", type=int, default=None, help="reader threads (default: cores - 1)")
    _add_key_options(p, create=True)
    add_common(p)
    p.set_defaults(func=cmd_snapshot)

    p = dsub.add_parser("checkout", help="write a version's files into a directory",
                        description="Rebuild the files of REF under DEST byte for byte, checking "
                        "every chunk against its id. Files are replaced atomically; other files in "
                        "DEST are left alone.")
    p.add_argument("ref", help="version reference (NAME:vN, NAME@latest, NAME or an id prefix)")
    p.add_argument("dest", help="destination directory (created if missing)")
    p.add_argument("--path", action="append", help="restore only this file or directory (repeatable)")
    _add_key_options(p)
    add_common(p)
    p.set_defaults(func=cmd_checkout)

    p = dsub.add_parser("diff", help="files added, removed, modified, renamed between two versions",
                        description="Compare A with B: files added (A), removed (D), modified (M) "
                        "and renamed (R), with bytes in new chunks and chunks reused. Each side is a "
                        "version reference or a directory: a path with a '/' or a leading '.' "
                        "(./data, /scratch/d, .); a bare word is a reference. A directory is hashed "
                        "through the stat cache, never stored.")
    p.add_argument("a", help="old side: version reference or ./directory")
    p.add_argument("b", help="new side: version reference or ./directory")
    p.add_argument("--exit-code", action="store_true", help="exit 1 if A and B differ")
    _add_key_options(p)
    add_common(p)
    p.set_defaults(func=cmd_diff)

    p = dsub.add_parser("status", help="what changed in a directory since its latest version",
                        description="Files added (A), removed (D), modified (M) and renamed (R) in "
                        "DIR since the latest version of NAME, like `git status`. Only files whose "
                        "stat changed are read (stat cache), so an unchanged tree costs one stat "
                        "per file. NAME defaults to the dataset whose latest version was snapshotted "
                        "from DIR (the most recent one, if several were), else the store's only "
                        "dataset; DIR defaults to the current directory.")
    p.add_argument("name", nargs="?", default=None,
                   help="dataset name or any version reference (default: see above)")
    p.add_argument("dir", nargs="?", default=".", help="working directory (default: .)")
    p.add_argument("--exit-code", action="store_true", help="exit 1 if DIR has changes")
    _add_key_options(p)
    add_common(p)
    p.set_defaults(func=cmd_status)

    p = dsub.add_parser("list", help="every dataset with its latest version, size and date",
                        description="List every dataset of the store with its number of versions "
                        "and its latest version: size, files, when it was made and its message.")
    _add_key_options(p)
    add_common(p)
    p.set_defaults(func=cmd_list)

    p = dsub.add_parser("log", help="the versions of a dataset, newest first",
                        description="List the versions of dataset NAME, newest first, with who "
                        "made each one, where and when.")
    p.add_argument("name", help="dataset name")
    _add_key_options(p)
    add_common(p)
    p.set_defaults(func=cmd_log)

    p = dsub.add_parser("verify", help="re-hash stored chunks; exit 1 on damage",
                        description="Check every version record, re-hash every stored chunk (or a "
                        "sample) and check that every version's chunks exist. Damage never stops "
                        "the check: each damaged record, index, pack or chunk is reported by path "
                        "with the versions it affects, and the report ends with the damaged and the "
                        "intact versions. Exit 0 if the store is sound, 1 if not. A progress bar "
                        "(chunks) is drawn when stderr is a terminal.")
    p.add_argument("--sample", type=float, default=None, help="re-hash only this fraction of chunks")
    _add_key_options(p)
    add_common(p)
    p.set_defaults(func=cmd_verify)

    p = dsub.add_parser("gc", help="remove versions not kept and data nothing references",
                        description="Delete versions not kept (the newest of each dataset always "
                        "is), then packs no kept version references; rewrite packs that are mostly "
                        "garbage; remove temporaries of crashed writers. Data younger than --grace "
                        "is never touched. gc never runs beside a snapshot or registration of the "
                        "same store (they hold leases in locks/): it refuses with exit 1, deleting "
                        "nothing, unless --wait lets it wait for them.")
    p.add_argument("--keep", action="append", default=None, help="keep this version (repeatable)")
    p.add_argument("--keep-last", type=int, default=None, help="keep the newest N versions of each dataset")
    p.add_argument("--grace", type=float, default=60.0,
                   help="seconds; younger packs and temporaries are left alone (default 60)")
    add_wait(p)
    p.add_argument("--dry-run", action="store_true", help="report, change nothing")
    _add_key_options(p)
    add_common(p)
    p.set_defaults(func=cmd_gc)

    p = dsub.add_parser("purge", help="remove a version and every chunk only it used, now",
                        description="For deletion requests: replace the version REF names by a "
                        "tombstone (who, when, --reason; no content id), and rewrite the store's "
                        "packs without the chunks no other version (dataset or model) uses, so its "
                        "bytes are gone from the store's files (not from the disk's free blocks or "
                        "from backups). Version numbers are never reused. Refuses (exit 1, busy) "
                        "while a snapshot or registration of the store runs, unless --wait lets them "
                        "finish. A purge that was killed is reported by verify; run it again.")
    p.add_argument("ref", help="version reference (NAME:vN, NAME@latest, NAME, id prefix)")
    p.add_argument("--reason", default=None, help="why (recorded in the tombstone)")
    add_wait(p)
    p.add_argument("--dry-run", action="store_true", help="report what would be removed, change nothing")
    _add_key_options(p)
    add_common(p)
    p.set_defaults(func=cmd_purge)


