"""Read-side views of the registry: runs, metric series, compare, search, lineage,
the audit trail, and retention (gc)."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import re

import pyarrow as pa

from ..store.arrow_build import scalar_from_value
from .errors import UnknownReference
from .index import node
from .models import ModelVersion
from .refs import KINDS
from .runs import METRIC_SCHEMA, metrics_dir, read_segment

_RUN_COLS = ("run_id", "name", "status", "start", "end", "params", "tags", "metrics", "git_commit",
             "git_dirty", "host", "user", "world_size", "slurm_job_id", "seq", "info")
_METRIC_FILTER = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")


def _run_dict(row) -> dict:
    d = dict(zip(_RUN_COLS, row))
    for k in ("params", "tags", "metrics", "info"):
        d[k] = json.loads(d[k]) if d[k] else {}
    d["git_dirty"] = None if d["git_dirty"] is None else bool(d["git_dirty"])
    return d


def run_record(reg, run_id: str) -> dict:
    if not isinstance(run_id, str) or len(run_id) < 4:
        raise ValueError(f"run id must be a string of 4+ characters, got {run_id!r}")
    reg.index.refresh()
    rows = reg.index.query(f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE run_id LIKE ?",
                           (run_id + "%",))
    if not rows:
        raise UnknownReference(f"no run with id {run_id!r} in the registry at {reg.store.root}")
    if len(rows) > 1:
        raise UnknownReference(f"run id prefix {run_id!r} matches {len(rows)} runs; give more")
    d = _run_dict(rows[0])
    me = "run:" + d["run_id"]
    d["inputs"] = [r[0] for r in reg.index.query("SELECT src FROM edges WHERE dst=? ORDER BY src", (me,))]
    d["outputs"] = [r[0] for r in reg.index.query("SELECT dst FROM edges WHERE src=? ORDER BY dst", (me,))]
    return d


def list_runs(reg, name, status, where=None, sort=None, limit=None) -> list[dict]:
    from .run_query import select

    reg.index.refresh()
    q, args = f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE 1=1", []
    if name is not None:
        q += " AND name=?"
        args.append(name)
    if status is not None:
        q += " AND status=?"
        args.append(status.upper())
    rows = [_run_dict(r) for r in reg.index.query(q + " ORDER BY seq DESC", args)]
    return select(rows, where, sort, limit)


def metric_history(reg, run_id: str, key: str | None = None) -> pa.Table:
    """Every logged point of a run (``key``, ``step``, ``value``, ``time``), in logging order."""
    rid = run_record(reg, run_id)["run_id"]
    fs = reg.store.fs
    d = metrics_dir(rid)
    tables = []
    for f in fs.list(d):
        if f.startswith("metrics-") and f.endswith(".arrow"):
            tables.append(read_segment(fs, f"{d}/{f}"))
    t = pa.concat_tables(tables) if tables else METRIC_SCHEMA.empty_table()
    if key is not None:
        import pyarrow.compute as pc

        t = t.filter(pc.equal(t.column("key"), scalar_from_value(key, pa.string())))
    return t


def metric_summary(reg, run_id: str, key: str, width: int) -> dict:
    from .run_query import summarize

    r = run_record(reg, run_id)
    t = metric_history(reg, r["run_id"], key)
    if t.num_rows == 0:
        have = ", ".join(sorted(r["metrics"])) or "none logged yet"
        raise UnknownReference(f"run {r['run_id']} has no metric {key!r} (it has: {have})")
    return {"run_id": r["run_id"], "key": key,
            **summarize(t.column("value").to_pylist(), t.column("step").to_pylist(), width)}


def _lineage_of(reg, mv) -> dict:
    me = node(mv.name, mv.version)
    return {"inputs": [r[0] for r in reg.index.query("SELECT src FROM edges WHERE dst=? ORDER BY src", (me,))]}


def compare(reg, ref_a, ref_b) -> dict:
    """Params, metrics and lineage of two versions side by side: ``{key: (a, b)}``."""
    a, b = reg.get(ref_a), reg.get(ref_b, refresh=False)

    def params(mv):
        p = {}
        if mv.run_id:
            row = reg.index.one("SELECT params FROM runs WHERE run_id=?", (mv.run_id,))
            p.update(json.loads(row[0]) if row and row[0] else {})
        p.update(mv.params)
        return p

    def side(fa, fb):
        keys = sorted(set(fa) | set(fb))
        return {k: (fa.get(k), fb.get(k)) for k in keys}

    return {"a": a.ref, "b": b.ref, "same_content": a.id == b.id,
            "ids": (a.id, b.id), "runs": (a.run_id, b.run_id),
            "params": side(params(a), params(b)),
            "metrics": side(reg.metrics_of(a), reg.metrics_of(b)),
            "inputs": (lineage(reg, a.ref, 2)["up"], lineage(reg, b.ref, 2)["up"])}


def search(reg, name, kind, tag, metric, alias) -> list:
    """Versions matching every filter: ``name`` (glob), ``kind``, ``tag`` (``"k=v"``, ``"k"``
    or a dict), ``metric`` (``"val_loss<0.3"``), ``alias``."""
    from .models import VERSION_COLUMNS, version_from_row

    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    cond = None
    if metric is not None:
        m = _METRIC_FILTER.match(metric) if isinstance(metric, str) else None
        try:
            cond = (m.group(1), m.group(2), float(m.group(3))) if m else None
        except ValueError:
            cond = None
        if cond is None:
            raise ValueError(f"metric filter must look like 'val_loss<0.3' (<, <=, >, >=, ==, !=), "
                             f"got {metric!r}")
    tags = tag if isinstance(tag, dict) else dict([tag.split("=", 1)] if "=" in tag else [(tag, None)]) \
        if isinstance(tag, str) else {}
    reg.index.refresh()
    q, args = f"SELECT {VERSION_COLUMNS} FROM versions WHERE deleted=0", []
    if kind:
        q += " AND kind=?"
        args.append(kind)
    out = []
    for row in reg.index.query(q + " ORDER BY name, version", args):
        mv = version_from_row(row)
        if name is not None and not fnmatch.fnmatchcase(mv.name, name):
            continue
        if any(k not in mv.tags or (v is not None and mv.tags[k] != str(v)) for k, v in tags.items()):
            continue
        if cond is not None:
            v = reg.metric_of(mv, cond[0])
            ops = {"<": v is not None and v < cond[2], "<=": v is not None and v <= cond[2],
                   ">": v is not None and v > cond[2], ">=": v is not None and v >= cond[2],
                   "==": v == cond[2], "!=": v is not None and v != cond[2]}
            if not ops[cond[1]]:
                continue
        mv.aliases = reg.aliases_of(mv)
        if alias is not None and alias not in mv.aliases:
            continue
        out.append(mv)
    return out


def lineage(reg, ref, depth: int | None = None) -> dict:
    """Walk the graph from ``ref``: ``up`` (what it came from) and ``down`` (what came from it).

    Nodes are ``name:vN`` (registry versions), ``data:name:vN`` (dataset versions)
    and ``run:<id>``; ``ref`` is any reference :meth:`Registry.lineage_node` takes
    (``data:imagenet@latest``, ``run:<id prefix>``). Returns ``{"root", "up": [(src,
    dst), ...], "down": [...], "runs"}``.
    """
    if isinstance(ref, str) and ref.startswith(("run:", "data:")):
        root = reg.lineage_node(ref)
    else:
        mv = reg.get(ref)
        root = node(mv.name, mv.version)
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise ValueError(f"depth must be an integer >= 1 or None, got {depth!r}")

    def walk(col_from, col_to):
        edges, seen, frontier, d = [], {root}, [root], 0
        while frontier and (depth is None or d < depth):
            nxt = []
            for n in frontier:
                for (other,) in reg.index.query(
                        f"SELECT {col_to} FROM edges WHERE {col_from}=? ORDER BY {col_to}", (n,)):
                    edges.append((other, n) if col_from == "dst" else (n, other))
                    if other not in seen:
                        seen.add(other)
                        nxt.append(other)
            frontier, d = nxt, d + 1
        return edges, seen

    up, seen_up = walk("dst", "src")
    down, seen_down = walk("src", "dst")
    runs = {}
    for n in (seen_up | seen_down):
        if n.startswith("run:"):
            row = reg.index.one("SELECT name, status FROM runs WHERE run_id=?", (n[4:],))
            if row:
                runs[n] = {"name": row[0], "status": row[1]}
    return {"root": root, "up": up, "down": down, "runs": runs}


def history(reg, name, limit) -> list[dict]:
    reg.index.refresh()
    q, args = "SELECT seq, time, user, host, job, summary FROM commits", []
    if name is not None:
        q += " WHERE instr(names, ?) > 0"  # not LIKE: "_" in a name is a wildcard there
        args.append(f",{name},")
    q += " ORDER BY seq DESC"
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an integer >= 1, got {limit!r}")
        q += f" LIMIT {int(limit)}"
    return [dict(zip(("seq", "time", "user", "host", "slurm_job_id", "summary"), r))
            for r in reg.index.query(q, args)]


def gc(reg, keep_last, keep_aliased, dry_run, grace, wait: float = 0.0) -> dict:
    """Delete old unaliased versions (keeping the newest ``keep_last`` per name), then the
    store's chunks that no version (dataset or registry) references any more."""
    from ..store.gc import check_options, collect
    from ..store.lease import gc_lock
    from ..store.roots import load_providers
    from .roots import NAME as ROOTS_NAME

    if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int)
                                  or keep_last < 1):
        raise ValueError(f"keep_last must be an integer >= 1 or None, got {keep_last!r}")
    doomed: list[str] = []

    def build():
        doomed.clear()
        if keep_last is None:
            return []
        aliased = set(reg.index.query("SELECT name, version FROM aliases")) if keep_aliased else set()
        acts = []
        for (name,) in reg.index.query("SELECT name FROM artifacts ORDER BY name"):
            vs = [v for (v,) in reg.index.query(
                "SELECT version FROM versions WHERE name=? AND deleted=0 ORDER BY version DESC", (name,))]
            for v in vs[keep_last:]:
                if (name, v) not in aliased:
                    doomed.append(f"{name}:v{v}")
                    acts.append({"op": "delete_version", "name": name, "version": v,
                                 "reason": f"gc keep_last={keep_last}"})
        return [] if dry_run else acts

    check_options(grace)
    reg.refresh()
    providers = load_providers(reg.store)  # refuse before any version is deleted
    with contextlib.nullcontext() if dry_run else gc_lock(reg.store, "model gc", wait=wait):
        reg.commit(build)
        rep = collect(reg.store, grace=grace, dry_run=dry_run, providers=providers,
                      ignore={ROOTS_NAME: set(doomed)})
    return {"versions_deleted": list(doomed), "dry_run": dry_run, "store": rep.to_dict()}


def live_manifest_blobs(store) -> list[tuple[str, dict]]:
    """Deprecated: use :func:`engine.registry.roots.live_versions` (the store's gc finds the
    registry's live content through its root provider, :mod:`engine.registry.roots`)."""
    import warnings

    from .roots import live_versions

    warnings.warn("engine.registry.views.live_manifest_blobs is deprecated; use "
                  "engine.registry.roots.live_versions", DeprecationWarning, stacklevel=2)
    return live_versions(store)


def verify(reg, content: bool = True, rehash: bool = True) -> dict:
    """Re-read the whole log, the checkpoints, the index snapshots and the runs' metric
    segments, and (``content``) check that every live version's manifest and chunks are
    stored and (``rehash``) re-hash to their ids: each chunk is read once, however many
    versions share it.

    Catches what a warm index hides: a commit damaged after this host read it, a
    checkpoint that disagrees with the commit files, a snapshot failing its checksum,
    a metric segment that does not read or disagrees with its run's summary, content
    that gc or a disk error removed. Returns ``{"ok", "commits", "checkpoints",
    "states", "versions", "problems": [{"problem", "path", ...}]}``: each problem names
    the file (``path``: a commit, checkpoint, snapshot, segment or pack) where one is to
    blame.
    """
    from ..data import manifest as mf
    from ..store import StoreError
    from ..store.ipc import read_ipc
    from ..store.pack import pack_key
    from .errors import RegistryCorruption, RegistryError
    from .log import check_chain, checkpoint_key, commit_key, state_key

    problems: list[dict] = []
    log = reg.log
    fs = log.fs
    try:
        head = reg.refresh()
    except RegistryError as exc:  # a damaged commit stops the index, not the report
        problems.append({"problem": "index stopped at a damaged commit", "detail": str(exc)})
        head = log.last_file()
    head = max(head, log.last_file())  # commits past a gap, or past the damaged one
    bodies: dict[int, dict] = {}
    for seq in range(1, head + 1):
        path = fs.path(commit_key(seq))
        try:
            body = log.read(seq)
        except RegistryError as exc:
            problems.append({"problem": "commit unreadable", "seq": seq, "path": path,
                             "detail": str(exc)})
            continue
        if body is None:
            problems.append({"problem": "commit missing", "seq": seq, "path": path})
        else:
            bodies[seq] = body
    unchecked = 0
    for seq, body in bodies.items():  # the hash chain: each commit names the one before
        if body.get("format_version", 1) < 2:
            unchecked += 1
        elif seq == 1 or seq - 1 in bodies:
            try:
                check_chain(body, bodies.get(seq - 1), f"registry commit {seq}")
            except RegistryError as exc:
                # no path: either commit of the broken link may be the one replaced
                problems.append({"problem": "commit chain broken", "seq": seq,
                                 "detail": str(exc)})
    cps = log.checkpoints()
    for last in cps:
        path = fs.path(checkpoint_key(last))
        try:
            _first, rows = log.read_checkpoint(last)
        except (RegistryError, OSError) as exc:
            problems.append({"problem": "checkpoint unreadable", "checkpoint": last,
                             "path": path, "detail": str(exc)})
            continue
        raw = fs.read_bytes(checkpoint_key(last))
        footer = _verify_arrow_footer(raw, read_ipc(raw, path, compressed=True,
                                                    max_raw=64 * len(raw) + (64 << 20),
                                                    error=RegistryCorruption))
        if footer:
            problems.append({"problem": "checkpoint unreadable", "checkpoint": last,
                             "path": path, "detail": footer})
        for seq, text in rows:
            try:
                same = seq not in bodies or json.loads(text) == bodies[seq]
            except (ValueError, RecursionError):
                same = False
            if not same:
                problems.append({"problem": "checkpoint differs from the commit file",
                                 "checkpoint": last, "seq": seq, "path": path})
    states = log.states()
    for seq in states:
        try:
            log.read_state(seq)
        except (RegistryError, OSError) as exc:
            problems.append({"problem": "index snapshot unreadable", "state": seq,
                             "path": fs.path(state_key(seq)), "detail": str(exc)})
    _verify_metric_segments(reg, problems)
    rows = reg.index.query("SELECT name, version, content FROM versions WHERE deleted=0")
    if content:
        st = reg.store
        st.reload()  # see packs other processes published
        hashed: dict[bytes, str | None] = {}  # chunk id -> why it is damaged, or None

        def damage(cid: bytes) -> str | None:
            """Why stored chunk ``cid`` is damaged (naming its pack), or None."""
            if cid not in hashed:
                try:
                    st.read_chunk(cid)
                    hashed[cid] = None
                except StoreError as exc:
                    hashed[cid] = str(exc)
            return hashed[cid]

        def pack_of(cid: bytes) -> str | None:
            try:
                return fs.path(pack_key(st.locate(cid).pack_id, "pack"))
            except StoreError:
                return None

        for name, version, c in rows:
            ref = f"{name}:v{version}"
            try:
                blob = json.loads(c)["manifest"]
                mids = [bytes.fromhex(cid) for cid, _n in blob["chunks"]]
                bad = [cid for cid in mids if damage(cid) is not None]
                if bad:  # its manifest's chunks: missing, or in the pack named
                    p = {"problem": "content unreadable", "version": ref,
                         "detail": hashed[bad[0]]}
                    if pack_of(bad[0]):
                        p["path"] = pack_of(bad[0])
                    problems.append(p)
                    continue
                man = mf.from_bytes(st.get_blob(blob), f"manifest of {ref}")
                ids = [ch["id"] for chunks in man.column("chunks").to_pylist() for ch in chunks or []]
                have = st.index.contains(ids) if ids else []
                missing = len(ids) - int(sum(have))
                if missing:
                    problems.append({"problem": "chunks missing", "version": ref, "missing": missing})
                if rehash:
                    bad = [cid for cid, ok in zip(ids, have) if ok and damage(cid) is not None]
                    if bad:
                        packs = sorted({p for p in map(pack_of, bad) if p})
                        problems.append({"problem": "chunks corrupted", "version": ref,
                                         "corrupted": len(bad), "path": packs[0],
                                         "packs": packs, "detail": hashed[bad[0]]})
            except StoreError as exc:
                problems.append({"problem": "content unreadable", "version": ref, "detail": str(exc)})
    return {"ok": not problems, "commits": head, "unchecked_commits": unchecked,
            "checkpoints": len(cps), "states": len(states), "versions": len(rows),
            "problems": problems}


def _verify_arrow_footer(data: bytes, table: pa.Table) -> str | None:
    """Why the footer of the Arrow IPC file ``data`` (whose messages, read without it,
    hold ``table``) does not index the same table, or None. The engine's own readers
    of checkpoints skip the footer, but it is part of the file, and other Arrow readers
    (and the metric readers) go through it."""
    def plain(t: pa.Table) -> bytes:  # compared as bytes: NaN equals NaN, bit for bit
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, t.schema) as w:
            w.write_table(t.combine_chunks())
        return sink.getvalue().to_pybytes()

    try:
        t = pa.ipc.open_file(pa.py_buffer(data)).read_all()
        same = plain(t) == plain(table)  # the schema's metadata too
    except (pa.ArrowException, OSError, ValueError, MemoryError) as exc:
        return f"its footer does not read: {str(exc)[:200]}"
    return None if same else "its footer indexes a table other than its messages hold"


def _verify_metric_segments(reg, problems: list) -> None:
    """Every metric segment of every run reads as a table of the metric schema, and a
    finished run's segments hold what its ``run_end`` summary says (points per key, the
    last step, and the last, smallest and largest value). Segments written since issue 15
    carry a checksum (``read_segment`` checks it); in older ones a changed value that none
    of these repeat cannot be seen."""
    import math

    from .errors import RegistryCorruption

    fs = reg.log.fs
    for run_id, status, metrics in reg.index.query("SELECT run_id, status, metrics FROM runs"):
        d = metrics_dir(run_id)
        seen: dict[str, list] = {}
        ok = True
        for f in fs.list(d):
            if not (f.startswith("metrics-") and f.endswith(".arrow")):
                continue
            path = fs.path(f"{d}/{f}")
            try:
                t = read_segment(fs, f"{d}/{f}", keep_metadata=True)  # as readers do
                data = fs.read_bytes(f"{d}/{f}")
            except (RegistryCorruption, OSError) as exc:
                problems.append({"problem": "metric segment unreadable", "run": run_id,
                                 "path": path, "detail": str(exc)})
                ok = False
                continue
            footer = _verify_arrow_footer(data, t)
            if footer:
                problems.append({"problem": "metric segment unreadable", "run": run_id,
                                 "path": path, "detail": footer})
                ok = False
                continue
            for k, step, v in zip(t.column("key").to_pylist(), t.column("step").to_pylist(),
                                  t.column("value").to_pylist()):
                seen.setdefault(k, []).append((step, float("nan") if v is None else v))
        segments = [f for f in fs.list(d) if f.startswith("metrics-") and f.endswith(".arrow")]
        # one segment: it is the file to blame; several: any of them may be
        where = fs.path(f"{d}/{segments[0]}") if len(segments) == 1 else fs.path(d)
        summary = json.loads(metrics) if metrics else {}
        if not ok or status == "RUNNING" or not isinstance(summary, dict):
            continue
        for key, want in summary.items():
            vals = seen.get(key, [])
            if not isinstance(want, dict) or not vals:
                continue
            fin = [v for _, v in vals if not math.isnan(v)]
            got = {"count": len(vals), "step": vals[-1][0], "last": vals[-1][1],
                   "min": min(fin) if fin else None, "max": max(fin) if fin else None}
            differ = sorted(k for k, v in got.items() if k in want and want[k] is not None
                            and v != want[k] and not (isinstance(v, float) and math.isnan(v)))
            if differ:
                problems.append({"problem": "metric segments differ from the run's summary",
                                 "run": run_id, "key": key, "fields": differ, "path": where})


class RegistryViews:
    """The read-side and maintenance methods of :class:`~engine.registry.Registry`
    (a mixin: they call the module functions above with the registry)."""

    def get_run(self, run_id: str) -> dict:
        """A run's record (accepts a unique prefix of the id, 4+ characters)."""
        return run_record(self, run_id)

    def runs(self, name: str | None = None, status: str | None = None, *, where=None,
             sort: str | None = None, limit: int | None = None) -> list[dict]:
        """Runs, newest first: only ``name`` and ``status`` if given, and only those where
        every condition of ``where`` holds (``"val_loss<0.3"`` or a list of them: a run's
        final metric KEY, else its param KEY, compared with <, <=, >, >=, == or !=);
        sorted by final metric ``sort`` (ascending; ``"-val_loss"`` descending; runs
        without it last); at most ``limit``."""
        return list_runs(self, name, status, where, sort, limit)

    def compare_runs(self, run_ids) -> dict:
        """Params and final metrics of two or more runs side by side (ids or unique
        prefixes): ``{"runs", "params": {key: [...]}, "metrics": {key: [...]}, "different"}``."""
        from .run_query import compare_runs

        if isinstance(run_ids, str) or len(run_ids) < 2:
            raise ValueError(f"comparing needs at least two runs, got {run_ids!r}")
        return compare_runs([run_record(self, r) for r in run_ids])

    def metric_history(self, run_id: str, key: str | None = None):
        return metric_history(self, run_id, key)

    def metric_summary(self, run_id: str, key: str, width: int = 40) -> dict:
        """One metric of a run in brief: ``count``, ``first``, ``last``, ``min``, ``max``,
        ``first_step``, ``last_step`` and a ``sparkline`` at most ``width`` wide."""
        return metric_summary(self, run_id, key, width)

    def compare(self, ref_a, ref_b) -> dict:
        return compare(self, ref_a, ref_b)

    def search(self, name: str | None = None, *, kind: str | None = None, tag=None,
               metric: str | None = None, alias: str | None = None) -> list[ModelVersion]:
        return search(self, name, kind, tag, metric, alias)

    def lineage(self, ref, depth: int | None = None) -> dict:
        return lineage(self, ref, depth)

    def history(self, name: str | None = None, limit: int | None = None) -> list[dict]:
        """The audit trail: commits (newest first), optionally only those about ``name``."""
        return history(self, name, limit)

    def verify(self, *, content: bool = True, rehash: bool = True) -> dict:
        """Re-read the log, checkpoints and snapshots; check live versions' content
        (stored, and with ``rehash`` re-hashed to its ids)."""
        return verify(self, content, rehash)

    def gc(self, *, keep_last: int | None = None, keep_aliased: bool = True,
           dry_run: bool = False, grace: float = 60.0, wait: float = 0.0) -> dict:
        return gc(self, keep_last, keep_aliased, dry_run, grace, wait)
