"""``Registry.purge``: remove a registry version and every chunk only it used (deletion requests).

The registry's log is append-only and hash-chained, so a purge never rewrites it: it
appends a tombstone commit (a ``delete_version`` action with ``"purge": true`` and the
reason), which removes the version and its aliases from the registry's state and is
the audit record of the purge (who, where, when: the commit's own fields). Then the
chunks that no other version uses (registry or dataset) are cut out of the store's
packs (:func:`engine.store.purge.drop_chunks`). All of it under the store's gc lock,
so no snapshot or registration deduplicates against a chunk being removed.
"""

from __future__ import annotations

import contextlib

from ..store import StoreCorruption
from ..store.lease import gc_lock
from ..store.purge import drop_chunks
from ..store.roots import load_providers
from .errors import UnknownReference
from .models import VERSION_COLUMNS, version_from_row
from .refs import parse_ref
from .roots import NAME as ROOTS_NAME


def _target(reg, ref):
    """The version ``ref`` names, a deleted one too when named by number (its content may
    still be stored: a purge killed after its commit, or a version gc dropped)."""
    r = parse_ref(ref.ref if hasattr(ref, "ref") else ref)
    if r.version is not None:
        reg.index.refresh()
        rows = reg.index.query(f"SELECT {VERSION_COLUMNS} FROM versions WHERE name=? AND version=?",
                               (r.name, r.version))
        if rows:
            return version_from_row(rows[0])
    return reg.get(ref)


def purge(reg, ref, reason: str | None = None, wait: float = 0.0, dry_run: bool = False) -> dict:
    """See :meth:`Registry.purge`."""
    from ..data.roots import unshared_chunks  # not at import: `import engine.registry` stays light

    if reason is not None and not isinstance(reason, str):
        raise TypeError(f"reason must be a str, got {type(reason).__name__}")
    providers = load_providers(reg.store)  # refuse before anything changes
    with contextlib.nullcontext() if dry_run else gc_lock(reg.store, f"purge {ref}", wait=wait):
        mv = _target(reg, ref)
        label = mv.ref
        if not dry_run and not mv.deleted:
            def build():
                row = reg.index.one("SELECT deleted FROM versions WHERE name=? AND version=?",
                                    (mv.name, mv.version))
                if row is None:
                    raise UnknownReference(f"{label} is not in the registry")
                if row[0]:
                    return []  # deleted meanwhile: no second tombstone
                return [{"op": "delete_version", "name": mv.name, "version": mv.version,
                         "reason": reason or "purge", "purge": True}]

            reg.commit(build)
        blob = mv.content.get("manifest") if isinstance(mv.content, dict) else None
        if not isinstance(blob, dict):
            raise StoreCorruption(f"{label}: its commit names no manifest; nothing was removed")
        gone, kept = unshared_chunks(reg.store, blob, label, providers,
                                     {ROOTS_NAME: {label}} if dry_run else None)
        out = {"version": label, "dry_run": dry_run, "chunks_kept": kept}
        if dry_run:
            return {**out, "chunks_removed": len(gone), "bytes_removed": 0, "packs_rewritten": 0}
        rep = drop_chunks(reg.store, gone, what=f"purge {label}")
        return {**out, **rep.to_dict()}
