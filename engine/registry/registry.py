"""``Registry``: artifacts, versions, aliases, promotion gates and runs over the commit log."""

from __future__ import annotations

import difflib
import json
import os
import sqlite3
import sys
import warnings

from .. import config
from ..store import AmbiguousReference, Store
from ..store.fs import open_fs
from ..store.lease import write_lease
from ..store.store import check_name, now_iso
from .aliases import RegistryAliases
from .errors import RegistryError, UnknownReference
from .index import Index, node
from .log import CommitLog
from .models import (
    VERSION_COLUMNS,
    ModelVersion,
    check_metrics,
    default_kind,
    json_dict,
    version_from_row,
)
from .reading import RegistryReads
from .redact import argv_for_record
from .refs import KINDS, check_alias, parse_ref
from .roots import record as record_root
from .runs import (
    RUN_ID_VARIABLE,
    Run,
    check_run_id,
    git_info,
    new_run_id,
    run_coordinator,
    world_info,
)
from .views import RegistryViews


class Registry(RegistryReads, RegistryViews, RegistryAliases):
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

    def commit(self, build, max_tries: int = 10_000) -> dict | None:
        """Commit ``build()``'s actions as ``head + 1``, re-reading and rebuilding on a lost race.

        The low-level write every registry operation goes through (public for the
        registry's own modules and for extensions; prefer the methods above it).
        ``build`` runs against the index at ``head``, so whatever it checks (the next
        version number, an alias holder, a gate) is checked against the true state
        the commit follows: compare-and-set. It returns a list of action dicts
        (docs/formats.md), or none when there is nothing to do; then nothing is
        committed and None is returned. Returns the commit (``seq``, ``actions``, ...).

        Examples
        --------
        >>> import tempfile
        >>> reg = Registry(tempfile.mkdtemp() + "/store", index_path=":memory:")
        >>> reg.commit(lambda: []) is None
        True
        """
        record_root(self.store)  # before the first commit: gc must ask the registry from now on
        with self.index.lock:
            for _ in range(max_tries):
                head = self.index.refresh()
                actions = build()
                if not actions:
                    self.last_commit = None
                    return None
                # the head commit as the index applied it (checked), for the new one's link
                body = self.log.create(head + 1, actions, self.index.body(head) if head else None)
                if body is not None:  # the commit is made: nothing below may say otherwise
                    self.last_commit = body
                    try:
                        self.index.apply([(head + 1, body)])
                    except sqlite3.Error as exc:  # the host's index file (a full disk)
                        self.index.use_memory(str(exc))
                        self.index.refresh()
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

    def kind_of(self, name: str) -> str | None:
        """The kind of artifact ``name`` (``model``, ``dataset``, ...), or None if there is none."""
        row = self.index.one("SELECT kind FROM artifacts WHERE name=?", (name,))
        return row[0] if row else None

    def aliases_of(self, mv: ModelVersion) -> list[str]:
        """The aliases naming ``mv`` (``latest`` last, if it is the newest live version)."""
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
        q = f"SELECT {VERSION_COLUMNS} FROM versions WHERE name=? AND "
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
        mv = version_from_row(rows[0])
        if mv.deleted:
            raise UnknownReference(f"{mv.ref} was deleted (registry gc); its commit log entry remains")
        mv.aliases = self.aliases_of(mv)
        return mv

    def _unknown(self, r, ref) -> UnknownReference:
        if self.kind_of(r.name) is None:
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
        rows = self.index.query(f"SELECT {VERSION_COLUMNS} FROM versions WHERE name=? "
                                + ("" if include_deleted else "AND deleted=0 ") + "ORDER BY version",
                                (name,))
        if not rows and self.kind_of(name) is None:
            raise UnknownReference(f"no artifact named {name!r} in the registry at "
                                   f"{self.store.root}{self._names_hint(name)}")
        out = [version_from_row(r) for r in rows]
        for mv in out:
            mv.aliases = self.aliases_of(mv)
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
        from .content import prepare

        check_name(name)
        kind = kind or default_kind(obj)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        metrics = check_metrics(metrics)
        params = json_dict(params, "params")
        tags = {str(k): str(v) for k, v in json_dict(tags, "tags").items()}
        alias_list = [check_alias(a) for a in ([aliases] if isinstance(aliases, str) else aliases or [])]
        if run is not None:
            run.check_running()
        prepared = prepare(obj, kind, name, filename)  # refused content leaves no trace
        self._open(self._create)
        in_nodes = self.input_nodes(inputs)
        existing = self.kind_of(name)
        if existing is not None and existing != kind:
            raise ValueError(f"{name!r} is a {existing} artifact; cannot register a {kind} under it")
        record_root(self.store)  # before its content is stored: gc keeps it from now on
        # A write lease from the first dedup lookup until the commit: gc waits for it
        with write_lease(self.store, f"register {name}"):
            return self._register_stored(name, kind, prepared, progress, metrics, params, tags,
                                         message, run, in_nodes, alias_list)

    def _register_stored(self, name, kind, prepared, progress, metrics, params, tags, message,
                         run, in_nodes, alias_list) -> ModelVersion:
        from .content import store_content

        c = store_content(self.store, prepared, progress)

        def build():
            k = self.kind_of(name)
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

        body = self.commit(build)
        return self.get(f"{name}:v{body['actions'][0]['version']}", refresh=False)

    def purge(self, ref, *, reason: str | None = None, wait: float = 0.0,
              dry_run: bool = False) -> dict:
        """Remove version ``ref`` and every chunk only it used, now (deletion requests).

        Appends a tombstone commit (``delete_version`` with ``"purge": true`` and
        ``reason``; the hash chain is never rewritten, and the commit is the audit
        record), then rewrites the store's packs without the chunks no other version
        (registry or dataset) uses, so the bytes are gone from the store's files. Runs
        under the store's gc lock: refuses (:class:`~engine.store.StoreBusy`) while a
        snapshot or registration runs, unless ``wait`` seconds let them finish. A
        version deleted earlier (by gc, or a purge that was killed) is purged again when
        named by number. Returns ``{"version", "chunks_removed", "bytes_removed",
        "packs_rewritten", "chunks_kept", "dry_run"}``.

        Examples
        --------
        >>> import tempfile
        >>> reg = Registry(tempfile.mkdtemp() + "/store", index_path=":memory:")
        >>> _ = reg.register("clf", b"weights of a model trained on personal data")
        >>> reg.purge("clf:v1", reason="erasure request 42")["chunks_removed"] >= 1
        True
        """
        from .purge import purge

        return purge(self, ref, reason, wait, dry_run)

    def log_profile(self, profile, *, of, role: str = "input", message: str | None = None,
                    run: Run | None = None) -> ModelVersion:
        """Register ``profile`` as the ``role`` profile of model version ``of``.

        The profile (a monitor ``Profile``, its bytes or a profile file; checked by the
        ``profile`` kind hooks like any profile) becomes the next version of the
        ``profile`` artifact ``"<model>.<role>-profile"`` (``glucose.input-profile``
        for ``of="glucose:v3"``), tagged ``profile_of=<model>:vN`` and
        ``profile_role=<role>``, with the model version as its lineage input. Logging
        again for the same version adds a newer one (the newest wins).
        ``engine.monitor.Guard.from_registry`` finds both profiles of a version this way.

        Parameters
        ----------
        of : str or ModelVersion
            The model version (``"glucose:v3"``, ``"glucose@production"``), resolved now.
        role : {"input", "output"}
            ``input``: the training inputs; ``output``: the model's predictions on its
            training or validation data (or the training targets).

        Examples
        --------
        >>> import tempfile
        >>> from engine.monitor import profile
        >>> reg = Registry(tempfile.mkdtemp() + "/store", index_path=":memory:")
        >>> _ = reg.register("glucose", b"weights")
        >>> reg.log_profile(profile({"y": [40.0, 200.0]}), of="glucose:v1", role="output").ref
        'glucose.output-profile:v1'
        """
        if role not in ("input", "output"):
            raise ValueError(f"role must be 'input' or 'output', got {role!r}")
        mv = self.get(of)
        if mv.kind == "profile":
            raise ValueError(f"of must name a model version, got {mv.ref}, a profile")
        return self.register(f"{mv.name}.{role}-profile", profile, kind="profile",
                             tags={"profile_of": mv.ref, "profile_role": role},
                             message=message, inputs=[mv.ref], run=run)

    # ------------------------------------------------------------------ lineage nodes
    def lineage_node(self, ref) -> str:
        """The node of the lineage graph that ``ref`` names.

        ``name:vN`` for a registry version (a ModelVersion, or any registry reference),
        ``data:name:vN`` for a dataset version (an ``engine.data`` Version, or
        ``data:`` followed by any dataset reference: ``data:imagenet@latest``), and
        ``run:<id>`` for a run (``run:`` and its id or a unique prefix of it). A plain
        reference that names no registry artifact is tried as a dataset reference.

        Examples
        --------
        >>> import tempfile
        >>> reg = Registry(tempfile.mkdtemp() + "/store", index_path=":memory:")
        >>> reg.lineage_node(reg.register("clf", b"weights"))
        'clf:v1'
        >>> reg.lineage_node("clf@latest")
        'clf:v1'
        """
        from ..data.version import Version as DataVersion
        from ..data.version import resolve as resolve_dataset
        from ..store import UnknownVersion

        if isinstance(ref, ModelVersion):
            return node(ref.name, ref.version)
        if isinstance(ref, DataVersion):
            return f"data:{ref.name}:v{ref.number}"
        self.index.refresh()
        if isinstance(ref, str) and ref.startswith(("run:", "data:")):
            try:
                if ref.startswith("run:"):
                    return "run:" + self.get_run(ref[4:])["run_id"]
                dv = resolve_dataset(self.store, ref[5:])
                return f"data:{dv.name}:v{dv.number}"
            except (UnknownReference, UnknownVersion, ValueError):
                if self.kind_of(ref.partition(":")[0]) is None:  # nor an artifact named so
                    raise
        r = parse_ref(ref)
        if self.kind_of(r.name) is not None:
            mv = self.get(ref, refresh=False)
            return node(mv.name, mv.version)
        try:
            dv = resolve_dataset(self.store, ref)
        except UnknownVersion:
            raise UnknownReference(f"{ref!r} is neither a registry artifact nor a dataset "
                                   f"version in {self.store.root}") from None
        return f"data:{dv.name}:v{dv.number}"

    def input_nodes(self, inputs) -> list[str]:
        """The lineage nodes of ``inputs`` (one reference or a list): versions, not runs."""
        out = []
        for ref in ([inputs] if isinstance(inputs, str) else inputs or []):
            n = self.lineage_node(ref)
            if n.startswith("run:"):
                raise ValueError(f"input {ref!r} is a run, not a version; link a version to "
                                 "the run that made it with run=... (run.log_model)")
            out.append(n)
        return out

    # ------------------------------------------------------------------ metrics
    def metrics_of(self, mv: ModelVersion) -> dict:
        """Every metric of a version: its run's last logged values, overridden by the
        metrics given at registration."""
        out = {}
        if mv.run_id:
            row = self.index.one("SELECT metrics FROM runs WHERE run_id=?", (mv.run_id,))
            if row and row[0]:
                out.update({k: v.get("last") for k, v in json.loads(row[0]).items()})
        out.update(mv.metrics)
        return out

    def metric_of(self, mv: ModelVersion, key: str) -> float | None:
        """``key`` of a version: its registered metric, else its run's last logged value."""
        v = self.metrics_of(mv).get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def tag(self, ref, **tags) -> None:
        """Add or change tags of a version (``name:vN``) or a run (``run:<id>``)."""
        target, on = None, "version"
        if isinstance(ref, str) and ref.startswith("run:"):
            try:
                target, on = "run:" + self.get_run(ref[4:])["run_id"], "run"
            except (UnknownReference, ValueError):
                if self.kind_of("run") is None:  # no artifact named "run" either
                    raise
        if target is None:
            target = self.get(ref).ref
        tags = {str(k): str(v) for k, v in tags.items()}
        self.commit(lambda: [{"op": "tag", "target": target, "on": on, "tags": tags}])

    # ------------------------------------------------------------------ runs
    def start_run(self, name: str, *, params: dict | None = None, tags: dict | None = None,
                  inputs=None, run_id: str | None = None) -> Run:
        """Begin a run; use it as a context manager. Records git commit and dirty flag,
        host, user, world size, rank and Slurm job id.

        ``run_id`` names the run (4 to 64 letters, digits or ``-``; default a new random
        id). If a run with that id exists, the new process *re-attaches* to it instead of
        starting another (a requeued job continuing its run): nothing is committed at
        the start, its metric series continue after the points already flushed, params
        and tags given now are added at its end, inputs now; the run keeps the status it
        had (``RUNNING`` after a killed process) until this process ends it. The name
        must be the run's. Without ``run_id``, ``$MLOPS_RUN_ID`` names it when set (``mlops
        submit`` sets it in the job, so a requeued job's attempts are one run).

        In a Slurm job the run is tagged with ``slurm.job_id`` and ``slurm.attempt`` (1 +
        ``SLURM_RESTART_COUNT``) when it starts or is re-attached to (then in a commit of
        its own), so every attempt shows on the run.

        Under a run coordinator (``engine.dist`` installs one when its world has several
        ranks; :func:`~engine.registry.runs.set_run_coordinator`), every rank must call
        ``start_run``: all get a :class:`Run` with rank 0's id, only rank 0 commits, and
        on the other ranks the run's logging methods do nothing.

        Examples
        --------
        >>> import tempfile
        >>> reg = Registry(tempfile.mkdtemp() + "/store", index_path=":memory:")
        >>> with reg.start_run("train", run_id="job-42") as run:
        ...     run.log_metric("loss", 0.5)
        >>> with reg.start_run("train", run_id="job-42") as again:   # requeued
        ...     again.log_metric("loss", 0.4)
        >>> len(reg.runs()), reg.get_run("job-42")["metrics"]["loss"]["count"]
        (1, 2)
        """
        check_name(name, "run name")
        params = json_dict(params, "params")
        tags = {str(k): str(v) for k, v in json_dict(tags, "tags").items()}
        if run_id is None and os.environ.get(RUN_ID_VARIABLE):
            run_id = os.environ[RUN_ID_VARIABLE]
        proposed = new_run_id() if run_id is None else check_run_id(run_id)
        world = world_info()
        coordinate = run_coordinator()
        leader = True
        if coordinate is not None:
            # a collective: every rank of the job is here; rank 0's id wins
            run_id, leader = coordinate(proposed)
            run_id = check_run_id(run_id)
        else:
            run_id = proposed
        if not leader:
            return Run(self, name, run_id, params, world["rank"], leader=False)
        self._open(self._create)
        in_nodes = self.input_nodes(inputs)
        git_commit, dirty = git_info()
        info = {"cwd": os.getcwd(), "argv": argv_for_record(), "python": sys.version.split()[0],
                "rank": world["rank"]}
        found: list = []

        def build():
            found[:] = [self.index.one("SELECT name, params FROM runs WHERE run_id=?", (run_id,))]
            if found[0] is not None:  # re-attach: the inputs only
                if found[0][0] != name:
                    raise ValueError(f"run {run_id} is named {found[0][0]!r}, not {name!r}: "
                                     f"re-attach to it with start_run({found[0][0]!r}, "
                                     f"run_id={run_id!r}), or give another run_id")
                return [{"op": "run_input", "run_id": run_id, "node": n} for n in in_nodes]
            return [{"op": "run_start", "run_id": run_id, "name": name, "start": now_iso(),
                     "params": params, "tags": tags, "git_commit": git_commit,
                     "git_dirty": dirty, "world_size": world["world_size"], "info": info,
                     "inputs": in_nodes}]

        if world["slurm_job_id"]:
            slurm = {"slurm.job_id": world["slurm_job_id"],
                     "slurm.attempt": str(world["slurm_attempt"])}
            tags = {**slurm, **tags}
        self.commit(build)
        if world["slurm_job_id"] and found[0] is not None:
            self.tag("run:" + run_id, **slurm)  # now: this attempt may never reach its end
        if found[0] is None:
            return Run(self, name, run_id, params, world["rank"])
        had_params = json.loads(found[0][1] or "{}")
        run = Run(self, name, run_id, had_params, world["rank"])
        run._continue_series()
        run.log_params({k: v for k, v in params.items() if had_params.get(k, object()) != v})
        for k, v in tags.items():
            run.set_tag(k, v)
        return run
