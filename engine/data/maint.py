"""Dataset maintenance: ``log``, ``datasets`` and ``gc`` (``verify`` is in ``verify.py``).

Sweeping packs is the store's (:mod:`engine.store.gc`); this layer decides which
dataset versions go, and the store keeps every chunk a live root of any layer uses.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import asdict, dataclass

from ..store import PurgedVersion, Store, StoreCorruption, UnknownVersion
from ..store.gc import GcReport, check_options, collect
from ..store.lease import gc_lock
from ..store.roots import load_providers
from .ingest import using_store
from .roots import NAME, unshared_chunks
from .version import (
    KIND,
    Version,
    names_hint,
    purged_message,
    read_version,
    resolve,
    versions,
    with_checksum,
)


def log(name: str, *, store=None) -> list[Version]:
    """The versions of dataset ``name``, newest first."""
    with using_store(store) as st:
        return _log(st, name)


def _log(st, name):
    """Newest first; a damaged version record is skipped with a warning naming its file
    (the others still list), never the whole log lost to it."""
    nums = st.list_numbers(KIND, name)
    if not nums:
        raise UnknownVersion(f"no dataset named {name!r} in {st.root}{names_hint(st, name)}")
    vs, damaged = [], []
    for n in nums:
        try:
            vs.append(read_version(st, name, n))
        except PurgedVersion:
            continue  # only a tombstone is left
        except StoreCorruption as exc:
            damaged.append(str(exc))
    if damaged:
        warnings.warn(f"{len(damaged)} damaged version record(s) of {name!r} not listed: "
                      f"{'; '.join(damaged)}", stacklevel=3)
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
            vs = versions(st, name)  # purged versions left out
            if vs:
                out.append(DatasetSummary(name, len(vs), vs[-1]))
        return out


def all_versions(st: Store) -> list[Version]:
    """Every dataset version of the store (a damaged record raises StoreCorruption)."""
    return [v for n in st.list_names(KIND) for v in versions(st, n)]


def gc(*, store=None, keep=None, keep_last: int | None = None, grace: float = 60.0,
       repack_below: float = 0.5, dry_run: bool = False, wait: float = 0.0) -> GcReport:
    """Remove versions that are not kept, then chunks and packs no kept version references.

    Parameters
    ----------
    keep : list of str, optional
        References of versions to keep; with ``keep_last`` too, the union is kept.
        With neither, every version is kept and only unreferenced data goes.
    keep_last : int, optional
        Keep the newest N versions of every dataset (N >= 1).
    grace : float
        Seconds: packs and temporaries younger than this are never touched (default
        60). Writers hold leases that gc honours, so this is only a margin for file
        systems that show a new lock file late (NFS) and for writers of older
        mlops-engine versions, which took no lease.
    repack_below : float
        A pack whose live bytes are below this fraction is rewritten with only its
        live chunks; a pack with none is deleted.
    dry_run : bool
        Report what would be removed, change nothing.
    wait : float
        Seconds to wait for snapshots and registrations in progress on the store (they
        hold write leases); then, or at once with 0, :class:`~engine.store.StoreBusy`
        is raised before any version is deleted. gc never runs beside a writer, so it
        never deletes a chunk that a version committed meanwhile names.

    Notes
    -----
    The newest version of each dataset is always kept, so version numbers are never
    reused. Content of the other layers that write to the store (registry
    artifacts) is kept: their root providers are loaded through entry points, and
    gc refuses (:class:`~engine.store.roots.RootProviderError`) before deleting
    anything if one recorded in the store cannot be loaded.

    Examples
    --------
    >>> import pathlib, tempfile, engine.data as data
    >>> src, store = pathlib.Path(tempfile.mkdtemp()), tempfile.mkdtemp()
    >>> for text in ("one", "two"):
    ...     _ = (src / "a.txt").write_text(text)
    ...     _ = data.snapshot(src, name="t", store=store)
    >>> data.gc(store=store, keep_last=1, grace=0).versions_deleted
    ['t:v1']
    """
    with using_store(store) as st:
        return _gc(st, keep, keep_last, grace, repack_below, dry_run, wait)


def _gc(st, keep, keep_last, grace, repack_below, dry_run, wait):
    if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1):
        raise ValueError(f"keep_last must be an integer >= 1, got {keep_last!r}")
    check_options(grace, repack_below)
    providers = load_providers(st)  # refuse before any version is deleted
    if dry_run:
        return _drop_and_collect(st, keep, keep_last, grace, repack_below, dry_run, providers)
    with gc_lock(st, "data gc", wait=wait):  # before any version is deleted
        return _drop_and_collect(st, keep, keep_last, grace, repack_below, dry_run, providers)


def _drop_and_collect(st, keep, keep_last, grace, repack_below, dry_run, providers):
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
    return collect(st, grace=grace, repack_below=repack_below, dry_run=dry_run, report=rep,
                   providers=providers, ignore={NAME: set(rep.versions_deleted)})


@dataclass
class PurgeResult:
    """What :func:`purge` removed: the ``version`` (``name:vN``), and from the store the
    chunks only it used (``chunks_removed``, ``bytes_removed`` stored bytes) out of the
    ``packs_rewritten``; ``chunks_kept``: its chunks that other versions still use."""

    version: str
    chunks_removed: int
    bytes_removed: int
    packs_rewritten: int
    chunks_kept: int
    dry_run: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def purge(ref, *, store=None, reason: str | None = None, wait: float = 0.0,
          dry_run: bool = False) -> PurgeResult:
    """Remove a dataset version and every chunk only it used, now (deletion requests).

    The version's record is replaced by a *tombstone* (who purged it, when, why; no
    content id), so its number is never reused and ``log`` and ``checkout`` say it was
    purged. Its chunks that no other version (dataset or registry) uses are cut out of
    their packs: the packs are rewritten without them (:func:`engine.store.purge.drop_chunks`)
    and the old packs deleted, so the bytes are gone from the store's files (not from
    the disk's free blocks, nor from backups of the store). Runs under the store's gc
    lock: it refuses (:class:`~engine.store.StoreBusy`) while a snapshot or
    registration runs, unless ``wait`` seconds let them finish. Killed half way, it
    leaves a tombstone marked pending (``verify`` reports it); run it again.

    Examples
    --------
    >>> import pathlib, tempfile, engine.data as data
    >>> src, store = pathlib.Path(tempfile.mkdtemp()), tempfile.mkdtemp()
    >>> _ = (src / "a.txt").write_text("personal data")
    >>> v = data.snapshot(src, name="t", store=store)
    >>> data.purge("t:v1", store=store, reason="erasure request 42").version
    't:v1'
    """
    import json

    from ..store.purge import drop_chunks
    from ..store.store import now_iso, who

    if reason is not None and not isinstance(reason, str):
        raise TypeError(f"reason must be a str, got {type(reason).__name__}")
    with using_store(store) as st:
        providers = load_providers(st)  # gc's question: refuse before anything changes
        with contextlib.nullcontext() if dry_run else gc_lock(st, f"purge {ref}", wait=wait):
            name, number, blob = _purge_target(st, ref)
            label = f"{name}:v{number}"
            key = st.record_key(KIND, name, number)
            tomb = {"format_version": 1, "kind": KIND, "name": name, "number": number,
                    "purged": {"time": now_iso(), "reason": reason, **who()}}
            if not dry_run:  # first: from now on the version is not live, nor readable
                st.fs.write_atomic(key, json.dumps(with_checksum({**tomb, "pending": blob}),
                                                   indent=1, sort_keys=True).encode())
            gone, kept = unshared_chunks(st, blob, label, providers,
                                         {NAME: {label}} if dry_run else None)
            if dry_run:
                return PurgeResult(label, len(gone), 0, 0, kept, True)
            rep = drop_chunks(st, gone, what=f"purge {label}")
            st.fs.write_atomic(key, json.dumps(with_checksum(tomb), indent=1,
                                               sort_keys=True).encode())
            return PurgeResult(label, rep.chunks_removed, rep.bytes_removed, rep.packs_rewritten,
                               kept)


def _purge_target(st, ref) -> tuple[str, int, dict]:
    """(name, number, manifest blob) of the version to purge; a pending tombstone (a purge
    that did not finish) names its manifest still, and is purged again."""
    if isinstance(ref, str) and ":" in ref and "@" not in ref:
        name, _, sel = ref.strip().partition(":")
        sel = sel[1:] if sel.startswith("v") else sel
        if sel.isdigit() and int(sel) in st.list_numbers(KIND, name):
            rec = st.read_record(KIND, name, int(sel))
            if isinstance(rec, dict) and isinstance(rec.get("purged"), dict):
                if isinstance(rec.get("pending"), dict):
                    return name, int(sel), rec["pending"]
                raise PurgedVersion(purged_message(rec))
    v = resolve(st, ref)
    return v.name, v.number, v.record["manifest"]
