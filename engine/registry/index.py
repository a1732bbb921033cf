"""The registry's query index: a host-local SQLite file caught up from the commit log.

The index is a cache. It lives outside the store (``engine.config.cache_dir()``,
keyed by host and store), because SQLite locking is unreliable on the shared file
systems where stores live; deleting it is always safe, and the next query rebuilds
it from the checkpoints and the log. If SQLite cannot open it at all, an
in-memory index is used instead (slower to start, same answers).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import threading
import warnings

from .. import config
from .errors import RegistryCorruption, RegistryFormatError
from .log import CommitLog, check_chain, checkpoint_key, commit_key, content_ok, decode

STATE_MIN_GAP = 256  # load a state snapshot only when it saves replaying more commits than this
INDEX_VERSION = 2  # bump when the schema or the apply rules change: the cache is rebuilt

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS commits(seq INTEGER PRIMARY KEY, time TEXT, user TEXT, host TEXT,
    job TEXT, summary TEXT, names TEXT, body TEXT);
CREATE TABLE IF NOT EXISTS artifacts(name TEXT PRIMARY KEY, kind TEXT, seq INTEGER);
CREATE TABLE IF NOT EXISTS versions(name TEXT, version INTEGER, kind TEXT, id TEXT, format TEXT,
    size INTEGER, files INTEGER, created TEXT, user TEXT, host TEXT, seq INTEGER, run_id TEXT,
    metrics TEXT, params TEXT, tags TEXT, message TEXT, content TEXT, deleted INTEGER DEFAULT 0,
    PRIMARY KEY(name, version));
CREATE INDEX IF NOT EXISTS versions_id ON versions(id);
CREATE INDEX IF NOT EXISTS versions_run ON versions(run_id);
CREATE TABLE IF NOT EXISTS aliases(name TEXT, alias TEXT, version INTEGER, seq INTEGER,
    PRIMARY KEY(name, alias));
CREATE TABLE IF NOT EXISTS runs(run_id TEXT PRIMARY KEY, name TEXT, status TEXT, start TEXT,
    end TEXT, params TEXT, tags TEXT, metrics TEXT, git_commit TEXT, git_dirty INTEGER,
    host TEXT, user TEXT, world_size INTEGER, slurm_job_id TEXT, seq INTEGER, info TEXT);
CREATE INDEX IF NOT EXISTS runs_name ON runs(name);
CREATE TABLE IF NOT EXISTS edges(src TEXT, dst TEXT, PRIMARY KEY(src, dst));
CREATE INDEX IF NOT EXISTS edges_dst ON edges(dst);
"""


_JSON_OBJECT = ("CASE WHEN typeof({0}) = 'text' AND json_valid({0}) THEN json_type({0}) END "
                "IS NOT 'object'")
_OBJ = _JSON_OBJECT.format
#: Rows a snapshot's tables must not hold: each query counts the rows of one table whose
#: columns have types the index never writes (the index reads them back without checks).
_STATE_CHECKS = (
    "SELECT count(*) FROM meta WHERE typeof(key) != 'text' OR typeof(value) != 'text'",
    "SELECT count(*) FROM commits WHERE typeof(seq) != 'integer' OR typeof(names) != 'text' "
    f"OR typeof(summary) != 'text' OR (body IS NOT NULL AND {_OBJ('body')})",
    "SELECT count(*) FROM artifacts WHERE typeof(name) != 'text' OR typeof(kind) != 'text'",
    "SELECT count(*) FROM versions WHERE typeof(name) != 'text' OR typeof(version) != 'integer' "
    "OR typeof(kind) != 'text' OR typeof(id) != 'text' OR typeof(deleted) != 'integer' OR "
    + " OR ".join(_OBJ(c) for c in ("metrics", "params", "tags", "content")),
    "SELECT count(*) FROM aliases WHERE typeof(name) != 'text' OR typeof(alias) != 'text' "
    "OR typeof(version) != 'integer'",
    "SELECT count(*) FROM runs WHERE typeof(run_id) != 'text' OR typeof(name) != 'text' OR "
    "typeof(status) != 'text' OR "
    + " OR ".join(_OBJ(c) for c in ("params", "tags", "metrics", "info")),
    "SELECT count(*) FROM edges WHERE typeof(src) != 'text' OR typeof(dst) != 'text'",
)


def _schema_rows(db: sqlite3.Connection) -> list[tuple]:
    return db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()


def state_problem(db: sqlite3.Connection, seq: int) -> str | None:
    """What makes the database of a state snapshot at commit ``seq`` unfit to become the
    index, or None. Its checksum proves it unchanged, not sound (whoever can write the store
    can write a snapshot with a matching checksum), so the index holds it to what the index
    itself writes: the same schema (no other table, view or trigger), intact pages, the
    column types, JSON objects where JSON is kept, and well-formed content references."""
    fresh = sqlite3.connect(":memory:")
    try:
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                fresh.execute(stmt)
        if _schema_rows(db) != _schema_rows(fresh):
            return "its tables are not those of the index"
    finally:
        fresh.close()
    if db.execute("PRAGMA quick_check").fetchone() != ("ok",):
        return "its database is damaged (quick_check)"
    for query in _STATE_CHECKS:
        if db.execute(query).fetchone()[0]:
            return f"it holds rows of the wrong types ({query.split(' WHERE')[0][21:]})"
    got = db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
    if got is None or got[0] != str(seq):
        return f"it holds commit {got}, not {seq}"
    try:  # what the index parses back: deeper than Python's JSON reader goes is refused too
        for (content,) in db.execute("SELECT content FROM versions"):
            if not content_ok(json.loads(content)):
                return "a version's content reference is malformed"
        for query in ("SELECT metrics, params, tags FROM versions",
                      "SELECT params, tags, metrics, info FROM runs",
                      "SELECT body FROM commits WHERE body IS NOT NULL"):
            for row in db.execute(query):
                for text in row:
                    json.loads(text)
    except (ValueError, RecursionError) as exc:
        return f"it holds JSON this index cannot read ({str(exc)[:100]})"
    return None


def index_path(store) -> str:
    """Where the index of ``store`` lives on this host."""
    ident = f"{socket.gethostname()}\0{store.root}\0{store.config.get('created')}"
    h = hashlib.sha256(ident.encode()).hexdigest()[:32]
    return os.path.join(config.cache_dir(), "registry", f"{h}.sqlite")


def node(name: str, version: int) -> str:
    return f"{name}:v{version}"


_dumps = json.JSONEncoder(sort_keys=True).encode  # json.dumps(obj, sort_keys=True), less overhead
_dumps_body = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode  # as log.encode


def _js(d) -> str:
    """A dict column as the index stores it (sorted keys); ``{}`` for None or empty."""
    return _dumps(d) if d else "{}"


def _merge_json(old: str | None, new: dict | None) -> str:
    d = json.loads(old) if old else {}
    d.update(new or {})
    return _dumps(d)


class _Writes:
    """The statements of one ``apply``, run with ``executemany`` per table.

    Each statement writes one table, and statements on different tables commute, so
    a table's statements are queued while they repeat the same SQL; the queue runs
    (in order) when a different statement on that table comes, before the table is
    read, and at the end. The result is that of executing every statement in order.
    """

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.queues: dict[str, tuple[str, list]] = {}

    def add(self, table: str, sql: str, args: tuple) -> None:
        q = self.queues.get(table)
        if q is not None and q[0] == sql:
            q[1].append(args)
            return
        if q is not None:
            self.flush(table)
        self.queues[table] = (sql, [args])

    def flush(self, table: str | None = None) -> None:
        for t in [table] if table is not None else list(self.queues):
            q = self.queues.pop(t, None)
            if q is not None:
                self.db.executemany(q[0], q[1])

    def one(self, table: str, sql: str, args: tuple):
        self.flush(table)
        return self.db.execute(sql, args).fetchone()



def metric_text(v) -> str:
    """A metric in a summary: 10 significant digits (5.009681189, not 5.009681188964843);
    a whole float keeps its ``.0``."""
    if not isinstance(v, float):
        return str(v)
    s = f"{v:.10g}"
    return s + ".0" if s.lstrip("-").isdigit() else s

def summarize(action: dict) -> str:
    """One line of the audit trail for an action."""
    op = action.get("op")
    if op == "register":
        s = f"register {action['name']}:v{action['version']} ({action['kind']}, {action['id'][:12]})"
        return s + (f" from run {action['run_id']}" if action.get("run_id") else "")
    if op == "alias":
        prev = f"v{action['previous']}" if action.get("previous") else "none"
        new = f"v{action['version']}" if action.get("version") else "none"
        s = f"alias {action['alias']} of {action['name']}: {prev} -> {new}"
        gate = action.get("gate")
        if gate:
            s += f" (gate {gate['metric']}{gate['op']}: {metric_text(gate['new'])}"
            if gate["held"] is not None:
                s += f" vs {metric_text(gate['held'])})"
            elif action.get("previous"):
                s += f", the holder v{action['previous']} has no {gate['metric']})"
            else:
                s += ", no holder to compare with)"
        if action.get("forced"):
            s += " (FORCED)"
        return s
    if op == "delete_version":
        verb = "purge" if action.get("purge") else "delete"
        return f"{verb} {action['name']}:v{action['version']}" + (
            f" ({action['reason']})" if action.get("reason") else "")
    if op == "run_start":
        return f"run {action['run_id']} ({action['name']}) started"
    if op == "run_input":
        return f"run {action['run_id']} input {action['node']}"
    if op == "run_output":
        return f"run {action['run_id']} output {action['node']}"
    if op == "run_end":
        return f"run {action['run_id']} {action['status'].lower()}"
    if op == "tag":
        return f"tag {action['target']} {json.dumps(action['tags'], sort_keys=True)}"
    return f"{op}"


def _tags_run(action: dict) -> bool:
    """Whether a tag action is on a run (``on``; commits before it existed: the prefix)."""
    on = action.get("on")
    return on == "run" if on is not None else action["target"].startswith("run:")


def _names(action: dict) -> list[str]:
    out = [action["name"]] if "name" in action and action.get("op") != "run_start" else []
    if action.get("op") == "tag" and not _tags_run(action):
        out.append(action["target"].rpartition(":v")[0])  # a version's artifact, never "run"
    return out


class Index:
    """SQLite tables derived from the log (see :data:`SCHEMA`)."""

    def __init__(self, store, path: str | None = None):
        self.store = store
        self.log = CommitLog(store.fs)
        self.path = path if path is not None else index_path(store)
        self.lock = threading.RLock()  # one connection, shared by the threads of a process
        self.db = self._open(self.path)
        self._w: _Writes | None = None  # the batched writes of the apply in progress

    def _open(self, path: str) -> sqlite3.Connection:
        if path != ":memory:":
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                db = self._connect(path)
                return db
            except sqlite3.Error as exc:
                warnings.warn(f"registry index {path!r} unusable ({exc}); using an in-memory "
                              "index (rebuilt from the log in every process)", stacklevel=3)
            except OSError as exc:
                warnings.warn(f"cannot create the registry index directory ({exc}); using an "
                              "in-memory index", stacklevel=3)
            self.path = ":memory:"
        return self._connect(":memory:")

    def use_memory(self, why: str) -> None:
        """Go on with an in-memory index (rebuilt from the log at the next refresh) after the
        host's index file failed (a full disk), with a warning saying why."""
        with self.lock:
            warnings.warn(f"registry index {self.path!r} could not be updated ({why}); using an "
                          "in-memory index rebuilt from the log (the log, not the index, holds "
                          "the commits)", stacklevel=3)
            try:
                self.db.close()
            except sqlite3.Error:
                pass
            self.path = ":memory:"
            self.db = self._connect(":memory:")

    def _connect(self, path: str) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        if path != ":memory:":
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA cache_size=-65536")  # KiB: a cold rebuild inserts into 6 B-trees at once
        row = None
        try:
            row = db.execute("SELECT value FROM meta WHERE key='index_version'").fetchone()
        except sqlite3.OperationalError:
            pass
        if row is None or int(row[0]) != INDEX_VERSION:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT name FROM sqlite_master WHERE name='meta'").fetchone()
                ver = row and db.execute("SELECT value FROM meta WHERE key='index_version'").fetchone()
                if not ver or int(ver[0]) != INDEX_VERSION:  # still stale under the lock
                    for t in ("meta", "commits", "artifacts", "versions", "aliases", "runs", "edges"):
                        db.execute(f"DROP TABLE IF EXISTS {t}")
                    for stmt in SCHEMA.split(";"):
                        if stmt.strip():
                            db.execute(stmt)
                    db.execute("INSERT INTO meta VALUES('index_version', ?)", (str(INDEX_VERSION),))
                    db.execute("INSERT INTO meta VALUES('last_seq', '0')")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return db

    # ------------------------------------------------------------------ catching up
    @property
    def last_seq(self) -> int:
        return int(self.db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0])

    def refresh(self) -> int:
        """Apply every commit not yet in the index; returns the head sequence number. When
        the host's index file cannot be written (a full disk), an in-memory index goes on."""
        with self.lock:
            try:
                return self._refresh()
            except sqlite3.Error as exc:
                if self.path == ":memory:":
                    raise
                self.use_memory(str(exc))
                return self._refresh()

    def _refresh(self) -> int:
        last = self.last_seq
        probe = None
        if last:  # a warm index: one failed open says it is current, with no listing
            probe = self.log.read(last + 1)
            if probe is None:
                self._check_no_gap(last + 1)
                return last
        cps, states = self.log.compactions()
        if states and states[-1] > last + STATE_MIN_GAP and self._load_state(states[-1]):
            last, probe = self.last_seq, None
        pending: list[tuple] = []
        if cps and cps[-1] > last + 64:
            pending = self._from_checkpoints(cps, last)
        elif probe is not None:
            pending = [(last + 1, probe)]
        seq = (pending[-1][0] if pending else last) + 1
        while True:
            body = self.log.read(seq)
            if body is None:
                break
            pending.append((seq, body))
            seq += 1
        self._check_no_gap(seq)
        if pending:
            self.apply(pending)
        return seq - 1

    def _check_no_gap(self, missing: int) -> None:
        """Commit ``missing`` does not exist; neither may the one after it. Commits are made
        in order (a writer reads commit N before it makes N + 1), so a later commit without
        this one means a commit was removed (one stat)."""
        # a reader may miss commit N, then both N and N + 1 appear: N + 1 exists only after N
        # does, so N is checked again once N + 1 is seen
        if self.log.fs.exists(commit_key(missing + 1)) and not self.log.fs.exists(
                commit_key(missing)):
            raise RegistryCorruption(
                f"registry commit {missing} ({self.log.fs.path(commit_key(missing))}) is missing "
                f"but commit {missing + 1} exists: a commit was removed; run `mlops model verify`")

    def _load_state(self, seq: int) -> bool:
        """Replace the index by the snapshot at commit ``seq``; False (with a warning) if the
        snapshot is unusable, in which case the checkpoints and the log are replayed."""
        try:
            meta, raw = self.log.read_state(seq)
        except (RegistryCorruption, RegistryFormatError, OSError) as exc:
            # a newer format too: the snapshot is a cache, and the commits themselves say
            # whether this version can read the registry
            warnings.warn(f"ignoring registry state snapshot {seq}: {exc}", stacklevel=4)
            return False
        if meta.get("index_version") != INDEX_VERSION:
            return False  # written by another version of the index: replay instead
        mem = sqlite3.connect(":memory:")
        try:
            mem.deserialize(raw)
            problem = state_problem(mem, seq)
            if problem is not None:
                raise sqlite3.DatabaseError(problem)
            mem.backup(self.db)
        except sqlite3.DatabaseError as exc:
            warnings.warn(f"ignoring registry state snapshot {seq}: {exc}", stacklevel=4)
            return False
        finally:
            mem.close()
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
        return True

    def snapshot(self, seq: int, bodies_upto: int) -> bytes:
        """The index at commit ``seq`` as SQLite database bytes, without the commit bodies
        up to ``bodies_upto`` (those are in a log checkpoint already)."""
        mem = sqlite3.connect(":memory:")
        try:
            with self.lock:
                if self.last_seq != seq:
                    raise RuntimeError(f"index is at {self.last_seq}, not {seq}")
                self.db.backup(mem)
            mem.execute("UPDATE commits SET body=NULL WHERE seq <= ?", (bodies_upto,))
            mem.commit()
            mem.execute("VACUUM")
            return mem.serialize()
        finally:
            mem.close()

    def _from_checkpoints(self, cps: list[int], last: int) -> list[tuple[int, dict, str]]:
        """``(seq, commit, commit JSON)`` of the checkpointed commits after ``last``."""
        out: list[tuple[int, dict, str]] = []
        upto = last
        for cp_last in cps:
            if cp_last <= upto:
                continue
            first, rows = self.log.read_checkpoint(cp_last)
            if first > upto + 1:
                break  # a gap: the commit files fill it
            where = f"registry checkpoint {self.log.fs.path(checkpoint_key(cp_last))}, commit"
            out.extend((s, decode(c, s, f"{where} {s}"), c) for s, c in rows if s > upto)
            upto = cp_last
        return out

    def apply(self, commits: list[tuple]) -> None:
        """Apply ``(seq, commit)`` pairs (or ``(seq, commit, commit JSON)``) in order."""
        with self.lock:
            self._apply(commits)

    def _apply(self, commits: list[tuple]) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            last = self.last_seq  # another process on this host may have applied some
            self._w = _Writes(db)
            prev = self.body(last) if last else None
            for c in commits:
                seq = c[0]
                if seq <= last:
                    continue
                if seq != last + 1:
                    raise AssertionError(f"registry index: commit {seq} applied after {last}")
                if prev is not None or seq == 1:
                    check_chain(c[1], prev, f"registry commit {seq}")
                self._apply_one(seq, c[1], c[2] if len(c) > 2 else None)
                last, prev = seq, c[1]
            self._w.flush()
            db.execute("UPDATE meta SET value=? WHERE key='last_seq'", (str(last),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            self._w = None

    def body(self, seq: int) -> dict | None:
        """Commit ``seq`` as the index holds it (None where a snapshot dropped the body)."""
        row = self.db.execute("SELECT body FROM commits WHERE seq=?", (seq,)).fetchone()
        return json.loads(row[0]) if row is not None and row[0] else None

    def _apply_one(self, seq: int, body: dict, text: str | None = None) -> None:
        acts = body["actions"]
        names = sorted({n for a in acts for n in _names(a)})
        self._w.add("commits", "INSERT INTO commits VALUES(?,?,?,?,?,?,?,?)",
                    (seq, body.get("time"), body.get("user"), body.get("host"),
                     body.get("slurm_job_id"), "; ".join(summarize(a) for a in acts),
                     "," + ",".join(names) + ",", text if text is not None else _dumps_body(body)))
        for a in acts:
            getattr(self, "_op_" + a["op"], self._op_unknown)(seq, body, a)

    def _op_unknown(self, seq, body, a) -> None:
        pass  # a newer minor action this version does not know: it is in the audit trail only

    def _op_register(self, seq, body, a) -> None:
        w = self._w
        w.add("artifacts", "INSERT OR IGNORE INTO artifacts VALUES(?,?,?)", (a["name"], a["kind"], seq))
        w.add("versions", "INSERT OR REPLACE INTO versions VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0)",
              (a["name"], a["version"], a["kind"], a["id"], a.get("format"), a.get("size"),
               a.get("files"), body.get("time"), body.get("user"), body.get("host"), seq,
               a.get("run_id"), _js(a.get("metrics")), _js(a.get("params")), _js(a.get("tags")),
               a.get("message"), _dumps(a.get("content"))))
        me = node(a["name"], a["version"])
        if a.get("run_id"):
            w.add("edges", "INSERT OR IGNORE INTO edges VALUES(?,?)", ("run:" + a["run_id"], me))
        for src in a.get("inputs") or []:
            w.add("edges", "INSERT OR IGNORE INTO edges VALUES(?,?)", (src, me))

    def _op_alias(self, seq, body, a) -> None:
        if a.get("version"):
            self._w.add("aliases", "INSERT OR REPLACE INTO aliases VALUES(?,?,?,?)",
                        (a["name"], a["alias"], a["version"], seq))
        else:
            self._w.add("aliases", "DELETE FROM aliases WHERE name=? AND alias=?",
                        (a["name"], a["alias"]))

    def _op_delete_version(self, seq, body, a) -> None:
        self._w.add("versions", "UPDATE versions SET deleted=1 WHERE name=? AND version=?",
                    (a["name"], a["version"]))
        self._w.add("aliases", "DELETE FROM aliases WHERE name=? AND version=?",
                    (a["name"], a["version"]))

    def _op_run_start(self, seq, body, a) -> None:
        self._w.add(
            "runs", "INSERT OR IGNORE INTO runs VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (a["run_id"], a["name"], "RUNNING", a.get("start") or body.get("time"), None,
             _js(a.get("params")), _js(a.get("tags")), "{}", a.get("git_commit"),
             None if a.get("git_dirty") is None else int(bool(a["git_dirty"])),
             body.get("host"), body.get("user"), a.get("world_size"), body.get("slurm_job_id"),
             seq, _js(a.get("info"))))
        for src in a.get("inputs") or []:
            self._w.add("edges", "INSERT OR IGNORE INTO edges VALUES(?,?)", (src, "run:" + a["run_id"]))

    def _op_run_input(self, seq, body, a) -> None:
        self._w.add("edges", "INSERT OR IGNORE INTO edges VALUES(?,?)", (a["node"], "run:" + a["run_id"]))

    def _op_run_output(self, seq, body, a) -> None:
        self._w.add("edges", "INSERT OR IGNORE INTO edges VALUES(?,?)", ("run:" + a["run_id"], a["node"]))

    def _op_run_end(self, seq, body, a) -> None:
        row = self._w.one("runs", "SELECT params, tags, metrics FROM runs WHERE run_id=?", (a["run_id"],))
        if row is None:
            return
        self._w.add("runs", "UPDATE runs SET status=?, end=?, params=?, tags=?, metrics=? WHERE run_id=?",
                    (a["status"], a.get("end") or body.get("time"),
                     _merge_json(row[0], a.get("params")), _merge_json(row[1], a.get("tags")),
                     _merge_json(row[2], a.get("metrics")), a["run_id"]))

    def _op_tag(self, seq, body, a) -> None:
        target = a["target"]
        if _tags_run(a):
            row = self._w.one("runs", "SELECT tags FROM runs WHERE run_id=?", (target[4:],))
            if row is not None:
                self._w.add("runs", "UPDATE runs SET tags=? WHERE run_id=?",
                            (_merge_json(row[0], a["tags"]), target[4:]))
            return
        name, _, v = target.rpartition(":v")
        row = self._w.one("versions", "SELECT tags FROM versions WHERE name=? AND version=?",
                          (name, int(v)))
        if row is not None:
            self._w.add("versions", "UPDATE versions SET tags=? WHERE name=? AND version=?",
                        (_merge_json(row[0], a["tags"]), name, int(v)))

    # ------------------------------------------------------------------ queries
    def query(self, sql: str, args=()) -> list[tuple]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def one(self, sql: str, args=()):
        with self.lock:
            return self.db.execute(sql, args).fetchone()

    def close(self) -> None:
        self.db.close()
