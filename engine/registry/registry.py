"""``Registry``: artifacts, versions, aliases, promotion gates and runs over the commit log."""

from __future__ import annotations

import difflib
import json
import os
import sys
import warnings

from .. import config
from ..store import AmbiguousReference, Store
from ..store.fs import open_fs
from ..store.store import check_name, now_iso
from .errors import GateError, GateRejected, RegistryError, UnknownReference
from .index import Index, node
from .log import CommitLog
from .models import (
    _VCOLS,
    ModelVersion,
    _check_metrics,
    _default_kind,
    _json_dict,
    _version_from_row,
)
from .reading import RegistryReads
from .refs import KINDS, check_alias, gate_passes, parse_gate, parse_ref
from .runs import Run, git_info, new_run_id, world_info
from .views import RegistryViews


class Registry(RegistryReads, RegistryViews):
    """The artifact and model registry of a store.

    Parameters
    ----------
    store : Store, path or URI, optional
        The store (default ``$MLOPS_HOME`` or ``./.mlops``). A missing store is created
        by the first write (``register``, ``start_run``) unless ``create=False`` (then
        opening fails); reads of a missing store raise ``FileNotFoundError`` ("no store
        at ...") and create nothing.
    index_path : str, optional
        Where the SQLite query cache lives (default: host-local, under
        ``engine.config.cache_dir()``); ``":memory:"`` keeps it in memory.

    Examples
    --------
    >>> import tempfile
    >>> reg = Registry(tempfile.mkdtemp() + "/store", index_path=":memory:")
    >>> reg.register("clf", b"weights", metrics={"val_loss": 0.3}).ref
    'clf:v1'
    >>> reg.register("clf", b"better weights", metrics={"val_loss": 0.2}).version
    2
    >>> reg.promote("clf:v1", "production").version
    1
    >>> reg.promote("clf:v2", "production", gate="val_loss<=").ref
    'clf:v2'
    >>> reg.read_bytes("clf@production")
    b'better weights'
    """

    def __init__(self, store=None, *, create: bool = True, index_path: str | None = None):
        self._root, self._index_path, self._create = store, index_path, create
        self._store: Store | None = None
        self._own = not isinstance(store, Store)
        if not self._own:
            self._attach(store)
        else:
            try:
                self._attach(Store(store, create=False))
            except FileNotFoundError:
                if not create:
                    raise
                # Created by the first write (register, start_run): a read at a mistyped
                # path must say there is no store, not answer from a new empty one.
                root = store if store is not None else config.store_root()
                fs = open_fs(root)
                self._where = fs.root
                self._root = fs.root if fs.local else root  # a later chdir must not move it
        #: The last commit this object made (a dict with ``seq`` and ``actions``), or None
        #: when its last write found nothing to do (promoting the current holder).
        self.last_commit: dict | None = None

    def _attach(self, st: Store) -> None:
        self._store, self._where = st, st.root
        self._log = CommitLog(st.fs)
        self._index = Index(st, self._index_path)

    def _open(self, create: bool = False) -> Store:
        """The store, opened now if it was missing at construction (created if ``create``);
        FileNotFoundError ``no store at ...`` if it is still missing."""
        if self._store is None:
            self._attach(Store(self._root, create=create))
        return self._store

    @property
    def store(self) -> Store:
        """The store, created now if it is missing (unless ``create=False``): asking for
        it is for writing to it (``snapshot(..., store=reg.store)``). The registry's own
        reads go through the index, which never creates one."""
        return self._open(self._create)

    @property
    def log(self) -> CommitLog:
        self._open()
        return self._log

    @property
    def index(self) -> Index:
        self._open()
        return self._index

    def __repr__(self) -> str:
        return f"Registry({self._where!r})"

    def close(self) -> None:
        if self._store is not None:
            self._index.close()
            if self._own:
                self._store.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ commits
    def refresh(self) -> int:
        """Catch the index up with the log; returns the head commit number."""
        return self.index.refresh()

    def _commit(self, build, max_tries: int = 10_000) -> dict | None:
        """Commit ``build()``'s actions as ``head + 1``, re-reading and rebuilding on a lost race.

        ``build`` runs against the index at ``head``, so whatever it checks (the next
        version number, an alias holder, a gate) is checked against the true state
        the commit follows: compare-and-set. It may return no actions (nothing to do).
        """
        with self.index.lock:
            for _ in range(max_tries):
                head = self.index.refresh()
                actions = build()
                if not actions:
                    self.last_commit = None
                    return None
                body = self.log.create(head + 1, actions)
                if body is not None:
                    self.last_commit = body
                    self.index.apply([(head + 1, body)])
                    self._compact(head + 1)
                    return body
        raise RegistryError(f"could not commit to {self.store.root} after {max_tries} tries")

    def _compact(self, seq: int) -> None:
        """After commit ``seq``: a log checkpoint and an index snapshot when they are due.
        Both are optimizations, so a failure warns and never fails the commit."""
        try:
            every = config.REGISTRY_CHECKPOINT_EVERY
            if every and seq % every == 0:
                self._checkpoint(seq)
            every = config.REGISTRY_STATE_EVERY
            if every and seq % every == 0:
                self._write_state(seq)
        except Exception as exc:  # noqa: BLE001 - the commit itself has landed
            warnings.warn(f"registry checkpoint after commit {seq} skipped: {exc}", stacklevel=3)

    def _checkpoint(self, seq: int) -> None:
        prev = ([c for c in self.log.checkpoints() if c < seq] or [0])[-1]
        rows = self.index.query("SELECT seq, body FROM commits WHERE seq > ? AND seq <= ? "
                                "ORDER BY seq", (prev, seq))
        if not rows or [r[0] for r in rows] != list(range(prev + 1, seq + 1)):
            return
        if any(body is None for _, body in rows):  # a state snapshot dropped them: reread
            from .log import encode_body

            rows = [(s, body if body is not None else encode_body(self.log.read(s)))
                    for s, body in rows]
        self.log.write_checkpoint(rows)

    def _write_state(self, seq: int) -> None:
        """Snapshot the whole index at commit ``seq`` (bodies already checkpointed left out)."""
        from .index import INDEX_VERSION

        if seq in self.log.states():
            return
        covered = max([c for c in self.log.checkpoints() if c <= seq] or [0])
        raw = self.index.snapshot(seq, covered)
        self.log.write_state(seq, {"index_version": INDEX_VERSION, "bodies_from": covered + 1}, raw)

    # ------------------------------------------------------------------ resolving
    def _names_hint(self, name: str) -> str:
        names = [r[0] for r in self.index.query("SELECT name FROM artifacts")]
        close = difflib.get_close_matches(name, names, n=3)
        if close:
            return f"; did you mean {', '.join(close)}?"
        if not names:
            return "; the registry is empty"
        return f"; it has {len(names)} artifact{'s' * (len(names) != 1)}"

    def _kind_of(self, name: str) -> str | None:
        row = self.index.one("SELECT kind FROM artifacts WHERE name=?", (name,))
        return row[0] if row else None

    def _aliases_of(self, mv: ModelVersion) -> list[str]:
        out = [r[0] for r in self.index.query(
            "SELECT alias FROM aliases WHERE name=? AND version=? ORDER BY alias", (mv.name, mv.version))]
        latest = self.index.one("SELECT MAX(version) FROM versions WHERE name=? AND deleted=0",
                                (mv.name,))[0]
        return out + (["latest"] if latest == mv.version else [])

    def get(self, ref, *, refresh: bool = True) -> ModelVersion:
        """The version that ``ref`` (``name``, ``name@alias``, ``name:vN``, ``name:<id prefix>``) names."""
        if isinstance(ref, ModelVersion):
            ref = ref.ref
        r = parse_ref(ref)
        if refresh:
            self.index.refresh()
        q = f"SELECT {_VCOLS} FROM versions WHERE name=? AND "
        if r.alias is None and r.version is None and r.id_prefix is None or r.alias == "latest":
            rows = self.index.query(q + "deleted=0 ORDER BY version DESC LIMIT 1", (r.name,))
        elif r.alias is not None:
            rows = self.index.query(q + "version=(SELECT version FROM aliases WHERE name=? AND alias=?)",
                                    (r.name, r.name, r.alias))
        elif r.version is not None:
            rows = self.index.query(q + "version=?", (r.name, r.version))
        else:
            rows = self.index.query(q + "id LIKE ? AND deleted=0 ORDER BY version DESC",
                                    (r.name, r.id_prefix + "%"))
            if len({row[3] for row in rows}) > 1:
                raise AmbiguousReference(f"id prefix {r.id_prefix!r} of {r.name!r} matches "
                                         f"{len({row[3] for row in rows})} different contents; "
                                         "give more digits")
        if not rows:
            raise self._unknown(r, ref)
        mv = _version_from_row(rows[0])
        if mv.deleted:
            raise UnknownReference(f"{mv.ref} was deleted (registry gc); its commit log entry remains")
        mv.aliases = self._aliases_of(mv)
        return mv

    def _unknown(self, r, ref) -> UnknownReference:
        if self._kind_of(r.name) is None:
            return UnknownReference(f"no artifact named {r.name!r} in the registry at "
                                    f"{self.store.root}{self._names_hint(r.name)}")
        if r.alias is not None:
            have = [a for (a,) in self.index.query("SELECT alias FROM aliases WHERE name=?", (r.name,))]
            return UnknownReference(f"{r.name!r} has no alias {r.alias!r} (aliases: "
                                    f"{', '.join(have + ['latest'])})")
        n = self.index.one("SELECT MAX(version) FROM versions WHERE name=?", (r.name,))[0]
        if r.version is not None:
            return UnknownReference(f"{ref!r}: {r.name!r} has "
                                    + ("one version, v1" if n == 1 else f"versions v1..v{n}"))
        return UnknownReference(f"{ref!r}: no version of {r.name!r} has an id starting with "
                                f"{r.id_prefix!r}")

    def versions(self, name: str, *, include_deleted: bool = False) -> list[ModelVersion]:
        """Every version of ``name``, oldest first (each with its number ``.version``)."""
        check_name(name)
        self.index.refresh()
        rows = self.index.query(f"SELECT {_VCOLS} FROM versions WHERE name=? "
                                + ("" if include_deleted else "AND deleted=0 ") + "ORDER BY version",
                                (name,))
        if not rows and self._kind_of(name) is None:
            raise UnknownReference(f"no artifact named {name!r} in the registry at "
                                   f"{self.store.root}{self._names_hint(name)}")
        out = [_version_from_row(r) for r in rows]
        for mv in out:
            mv.aliases = self._aliases_of(mv)
        return out

    def artifacts(self, kind: str | None = None) -> list[dict]:
        """One summary per artifact name: kind, number of versions, latest, aliases."""
        self.index.refresh()
        rows = self.index.query(
            "SELECT a.name, a.kind, COUNT(v.version), MAX(v.version) FROM artifacts a "
            "LEFT JOIN versions v ON v.name=a.name AND v.deleted=0 "
            + ("WHERE a.kind=? " if kind else "") + "GROUP BY a.name ORDER BY a.name",
            (kind,) if kind else ())
        aliases: dict = {}
        for name, alias, v in self.index.query("SELECT name, alias, version FROM aliases ORDER BY alias"):
            aliases.setdefault(name, {})[alias] = v
        return [{"name": n, "kind": k, "versions": c, "latest": m, "aliases": aliases.get(n, {})}
                for n, k, c, m in rows]

    # ------------------------------------------------------------------ registering
    def register(self, name: str, obj, kind: str | None = None, *, metrics: dict | None = None,
                 params: dict | None = None, tags: dict | None = None, message: str | None = None,
                 inputs=None, run: Run | None = None, aliases=None, filename: str | None = None,
                 progress: bool | None = None) -> ModelVersion:
        """Store ``obj`` and commit it as the next version of ``name``.

        ``obj`` is a file or directory path, bytes, a torch ``state_dict`` (or
        ``nn.Module``, or a dict of NumPy arrays), a monitor ``Profile``, or a dataset
        version (a ``engine.data`` Version, or its reference with ``kind="dataset"``).
        ``inputs`` are versions it derives from (lineage), ``run`` the run producing
        it (still running, else :class:`RunFinished`), ``aliases`` aliases set on the new
        version in the same commit.

        Content is checked before anything is stored: with ``kind="profile"`` it must be
        a profile (a Profile, its bytes or a profile file), a ``.safetensors`` or
        ``.pt``/``.pth`` file must be a readable state dict, and validators registered
        for the kind (:func:`~engine.registry.register_validator`) must accept it;
        otherwise :class:`InvalidContent` (a ValueError) is raised.
        """
        from .content import prepare, store_content

        check_name(name)
        kind = kind or _default_kind(obj)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        metrics = _check_metrics(metrics)
        params = _json_dict(params, "params")
        tags = {str(k): str(v) for k, v in _json_dict(tags, "tags").items()}
        alias_list = [check_alias(a) for a in ([aliases] if isinstance(aliases, str) else aliases or [])]
        if run is not None:
            run._check_running()
        prepared = prepare(obj, kind, name, filename)  # refused content leaves no trace
        self._open(self._create)
        in_nodes = [self._input_node(i) for i in ([inputs] if isinstance(inputs, str) else inputs or [])]
        existing = self._kind_of(name)
        if existing is not None and existing != kind:
            raise ValueError(f"{name!r} is a {existing} artifact; cannot register a {kind} under it")
        c = store_content(self.store, prepared, progress)

        def build():
            k = self._kind_of(name)
            if k is not None and k != kind:
                raise ValueError(f"{name!r} is a {k} artifact; cannot register a {kind} under it")
            n = (self.index.one("SELECT MAX(version) FROM versions WHERE name=?", (name,))[0] or 0) + 1
            acts = [{"op": "register", "name": name, "version": n, "kind": kind, "id": c["id"],
                     "format": c["format"], "size": c["size"], "files": c["files"],
                     "content": c["content"], "metrics": metrics, "params": params, "tags": tags,
                     "message": message, "run_id": run.id if run is not None else None,
                     "inputs": in_nodes}]
            for a in alias_list:
                prev = self.index.one("SELECT version FROM aliases WHERE name=? AND alias=?", (name, a))
                acts.append({"op": "alias", "name": name, "alias": a, "version": n,
                             "previous": prev[0] if prev else None})
            return acts

        body = self._commit(build)
        return self.get(f"{name}:v{body['actions'][0]['version']}", refresh=False)

    def _input_node(self, ref) -> str:
        from ..data.version import Version as DataVersion

        if isinstance(ref, ModelVersion):
            return node(ref.name, ref.version)
        if isinstance(ref, DataVersion):
            return f"data:{ref.name}:v{ref.number}"
        r = parse_ref(ref)
        self.index.refresh()
        if self._kind_of(r.name) is not None:
            mv = self.get(ref, refresh=False)
            return node(mv.name, mv.version)
        from ..data.version import resolve
        from ..store import UnknownVersion

        try:
            dv = resolve(self.store, ref)
        except UnknownVersion:
            raise UnknownReference(f"input {ref!r} is neither a registry artifact nor a dataset "
                                   f"version in {self.store.root}") from None
        return f"data:{dv.name}:v{dv.number}"

    # ------------------------------------------------------------------ aliases and gates
    def set_alias(self, ref, alias: str) -> ModelVersion:
        """Point ``alias`` of the artifact at the version ``ref`` names (unconditionally)."""
        return self._move(ref, alias, None, False, "alias")

    def remove_alias(self, name: str, alias: str) -> None:
        check_alias(alias)

        def build():
            prev = self.index.one("SELECT version FROM aliases WHERE name=? AND alias=?", (name, alias))
            if prev is None:
                raise UnknownReference(f"{name!r} has no alias {alias!r}")
            return [{"op": "alias", "name": name, "alias": alias, "version": None, "previous": prev[0]}]

        self._commit(build)

    def promote(self, ref, alias: str, gate=None, *, force: bool = False) -> ModelVersion:
        """Move ``alias`` to ``ref`` if it passes ``gate`` against the current holder.

        ``gate="val_loss<="`` moves the alias only if the new version's ``val_loss`` is
        <= the holder's (``<``, ``>=``, ``>`` likewise). A version's metric is the one
        given at registration, else the last value its run logged. The check and the
        move are one compare-and-set commit: a concurrent move makes it re-check
        against the new holder. ``force=True`` moves regardless; when that overrides a
        failed (or unevaluable) gate, the commit records ``forced`` and the log says so.
        Raises :class:`GateRejected` if the gate fails.
        """
        return self._move(ref, alias, gate, force, "promote")

    def _move(self, ref, alias, gate, force, how) -> ModelVersion:
        check_alias(alias)
        gate = parse_gate(gate) if gate is not None else None
        mv = self.get(ref)

        def build():
            held = self.index.one("SELECT version FROM aliases WHERE name=? AND alias=?",
                                  (mv.name, alias))
            held = held[0] if held else None
            if held == mv.version:
                return []
            act = {"op": "alias", "name": mv.name, "alias": alias, "version": mv.version,
                   "previous": held, "how": how}
            if gate is not None:
                key, op = gate
                new = self.metric_of(mv, key)
                if new is None:
                    raise GateError(f"gate {key}{op}: {mv.ref} has no metric {key!r} "
                                    f"(it has: {', '.join(sorted(self._metrics(mv))) or 'none'})")
                holder = self.get(f"{mv.name}:v{held}", refresh=False) if held else None
                old = self.metric_of(holder, key) if holder else None
                act["gate"] = {"metric": key, "op": op, "new": new, "held": old}
                if holder is not None and old is None:
                    if not force:
                        raise GateError(f"gate {key}{op}: the holder of {alias!r}, {holder.ref}, "
                                        f"has no metric {key!r}; pass force=True to move anyway")
                    act["forced"] = True  # the gate could not be evaluated: an override
                elif old is not None and not gate_passes(new, op, old):
                    if not force:
                        raise GateRejected(f"{mv.ref} not promoted to {alias!r}: {key} {new} is "
                                           f"not {op} {old} of the holder {holder.ref}")
                    act["forced"] = True  # the gate failed and was overridden
            return [act]

        self._commit(build)
        return self.get(mv.ref, refresh=False)

    def _metrics(self, mv: ModelVersion) -> dict:
        out = {}
        if mv.run_id:
            row = self.index.one("SELECT metrics FROM runs WHERE run_id=?", (mv.run_id,))
            if row and row[0]:
                out.update({k: v.get("last") for k, v in json.loads(row[0]).items()})
        out.update(mv.metrics)
        return out

    def metric_of(self, mv: ModelVersion, key: str) -> float | None:
        """``key`` of a version: its registered metric, else its run's last logged value."""
        v = self._metrics(mv).get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def tag(self, ref, **tags) -> None:
        """Add or change tags of a version (``name:vN``) or a run (``run:<id>``)."""
        target, on = None, "version"
        if isinstance(ref, str) and ref.startswith("run:"):
            try:
                target, on = "run:" + self.get_run(ref[4:])["run_id"], "run"
            except (UnknownReference, ValueError):
                if self._kind_of("run") is None:  # no artifact named "run" either
                    raise
        if target is None:
            target = self.get(ref).ref
        tags = {str(k): str(v) for k, v in tags.items()}
        self._commit(lambda: [{"op": "tag", "target": target, "on": on, "tags": tags}])

    # ------------------------------------------------------------------ runs
    def start_run(self, name: str, *, params: dict | None = None, tags: dict | None = None,
                  inputs=None) -> Run:
        """Begin a run; use it as a context manager. Records git commit and dirty flag,
        host, user, world size, rank and Slurm job id."""
        check_name(name, "run name")
        self._open(self._create)
        params = _json_dict(params, "params")
        tags = {str(k): str(v) for k, v in _json_dict(tags, "tags").items()}
        in_nodes = [self._input_node(i) for i in ([inputs] if isinstance(inputs, str) else inputs or [])]
        commit, dirty = git_info()
        world = world_info()
        run_id = new_run_id()
        info = {"cwd": os.getcwd(), "argv": list(sys.argv), "python": sys.version.split()[0],
                "rank": world["rank"]}
        self._commit(lambda: [{"op": "run_start", "run_id": run_id, "name": name, "start": now_iso(),
                               "params": params, "tags": tags, "git_commit": commit,
                               "git_dirty": dirty, "world_size": world["world_size"], "info": info,
                               "inputs": in_nodes}])
        return Run(self, name, run_id, params, world["rank"])

    def _log_run_input(self, run: Run, ref) -> str:
        n = self._input_node(ref)
        self._commit(lambda: [{"op": "run_input", "run_id": run.id, "node": n}])
        return n
