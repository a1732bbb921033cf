"""Store maintenance: ``log``, ``datasets`` and ``gc`` (``verify`` is in ``verify.py``)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..store import Store, StoreError, UnknownVersion
from ..store.pack import compress, decompress, pack_key
from . import manifest as mf
from .ingest import using_store
from .version import KIND, Version, names_hint, read_version, resolve, versions


def log(name: str, *, store=None) -> list[Version]:
    """The versions of dataset ``name``, newest first."""
    with using_store(store) as st:
        return _log(st, name)


def _log(st, name):
    vs = versions(st, name)
    if not vs:
        raise UnknownVersion(f"no dataset named {name!r} in {st.root}{names_hint(st, name)}")
    return vs[::-1]


@dataclass
class DatasetSummary:
    """One dataset of a store: its ``name``, how many ``versions`` it has, its ``latest``."""

    name: str
    versions: int
    latest: Version

    def to_dict(self) -> dict:
        return {"name": self.name, "versions": self.versions, "latest": self.latest.to_dict()}


def datasets(*, store=None) -> list[DatasetSummary]:
    """Every dataset of the store, by name, with its number of versions and its latest version."""
    with using_store(store) as st:
        out = []
        for name in st.list_names(KIND):
            nums = st.list_numbers(KIND, name)
            if nums:
                out.append(DatasetSummary(name, len(nums), read_version(st, name, nums[-1])))
        return out


def all_versions(st: Store) -> list[Version]:
    return [v for n in st.list_names(KIND) for v in versions(st, n)]


def _referenced(st: Store, vs: list[Version], problems: list | None = None) -> dict[bytes, list[str]]:
    """chunk id -> refs of the versions using it (their manifests' chunks included).

    Registry versions (``engine.registry``) count too: their refs are ``name:vN`` of
    the registry, and their manifests live in the same store.
    """
    from ..registry.views import live_manifest_blobs

    used: dict[bytes, list[str]] = {}
    pairs = [(v.ref, v.record["manifest"]) for v in vs] + live_manifest_blobs(st)
    for ref, blob in pairs:
        for cid, _ in blob["chunks"]:
            used.setdefault(bytes.fromhex(cid), []).append(ref)
        try:
            man = mf.from_bytes(st.get_blob(blob), f"manifest of {ref}")
        except StoreError as exc:
            if problems is None:
                raise
            problems.append({"problem": "manifest unreadable", "versions": [ref], "detail": str(exc)})
            continue
        for chunks in man.column("chunks").to_pylist():
            for c in chunks or []:
                refs = used.setdefault(c["id"], [])
                if not refs or refs[-1] != ref:
                    refs.append(ref)
    return used


@dataclass
class GcReport:
    dry_run: bool
    versions_deleted: list[str] = field(default_factory=list)
    packs_deleted: int = 0
    packs_repacked: int = 0
    bytes_freed: int = 0
    temporaries_removed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def gc(*, store=None, keep=None, keep_last: int | None = None, grace: float = 3600.0,
       repack_below: float = 0.5, dry_run: bool = False) -> GcReport:
    """Remove versions that are not kept, then chunks and packs no kept version references.

    Parameters
    ----------
    keep : list of str, optional
        References of versions to keep; with ``keep_last`` too, the union is kept.
        With neither, every version is kept and only unreferenced data goes.
    keep_last : int, optional
        Keep the newest N versions of every dataset (N >= 1).
    grace : float
        Seconds: packs and temporaries younger than this are never touched, so that
        a snapshot running concurrently does not lose the packs it has not yet
        committed a version for.
    repack_below : float
        A pack whose live bytes are below this fraction is rewritten with only its
        live chunks; a pack with none is deleted.
    dry_run : bool
        Report what would be removed, change nothing.

    The newest version of each dataset is always kept, so version numbers are never
    reused.
    """
    with using_store(store) as st:
        return _gc(st, keep, keep_last, grace, repack_below, dry_run)


def _gc(st, keep, keep_last, grace, repack_below, dry_run):
    if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1):
        raise ValueError(f"keep_last must be an integer >= 1, got {keep_last!r}")
    if not isinstance(grace, (int, float)) or grace < 0:
        raise ValueError(f"grace must be a number of seconds >= 0, got {grace!r}")
    rep = GcReport(dry_run=dry_run)
    vs = all_versions(st)
    if keep is not None or keep_last is not None:
        kept: set[tuple[str, int]] = set()
        for r in ([keep] if isinstance(keep, str) else (keep or [])):
            v = resolve(st, r)
            kept.add((v.name, v.number))
        by_name: dict[str, list[Version]] = {}
        for v in vs:
            by_name.setdefault(v.name, []).append(v)
        for _name, lst in by_name.items():
            lst.sort(key=lambda v: v.number)
            for v in lst[-(keep_last or 1):]:
                kept.add((v.name, v.number))
        for v in vs:
            if (v.name, v.number) not in kept:
                rep.versions_deleted.append(v.ref)
                if not dry_run:
                    st.delete_record(KIND, v.name, v.number)
        vs = [v for v in vs if (v.name, v.number) in kept]
    live = set(_referenced(st, vs))
    now = time.time()
    old_enough = lambda key: now - st.fs.mtime(key) >= grace  # noqa: E731
    writer = None if dry_run else st.writer()
    to_delete: list[str] = []
    try:
        for pid in st.pack_ids():
            ikey, pkey = pack_key(pid, "idx"), pack_key(pid, "pack")
            if not old_enough(ikey):
                continue
            entries = st.read_index(pid)
            alive = np.array([e["id"].tobytes() in live for e in entries], dtype=bool)
            total = int(entries["stored"].sum()) if len(entries) else 0
            live_bytes = int(entries["stored"][alive].sum()) if len(entries) else 0
            if alive.all():
                continue
            if alive.any() and total and live_bytes / total >= repack_below:
                continue
            if alive.any():
                rep.packs_repacked += 1
                if not dry_run:
                    pack = st.fs.read_bytes(pkey)
                    for e in entries[alive]:
                        off, n = int(e["offset"]), int(e["stored"])
                        raw = decompress(int(e["codec"]), pack[off:off + n], int(e["raw"]))
                        codec, payload = compress(raw)
                        writer.add(e["id"].tobytes(), int(e["raw"]), codec, payload)
            rep.packs_deleted += 0 if alive.any() else 1
            rep.bytes_freed += total - live_bytes
            to_delete.append(pid)
        if writer is not None:
            writer.close()  # the repacked chunks are durable before the old packs go
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if not dry_run:
        for pid in to_delete:
            st.fs.delete(pack_key(pid, "idx"))  # unpublish first, then drop the data
            st.fs.delete(pack_key(pid, "pack"))
    # Leftovers of crashed writers, in one walk of the store: pack temporaries, packs with
    # no index (never published), and the dot-temporaries of atomic writes.
    for key in st.fs.walk_files(""):
        base = key.rsplit("/", 1)[-1]
        leftover = (key.startswith("tmp/")
                    or (key.startswith("packs/") and key.endswith(".pack")
                        and not st.fs.exists(key[:-5] + ".idx"))
                    or (base.startswith(".") and base.endswith(".tmp")))
        if leftover and old_enough(key):
            rep.temporaries_removed += 1
            if not dry_run:
                st.fs.delete(key)
    st.reload()
    return rep
