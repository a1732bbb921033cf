"""Collect garbage: packs and chunks no live root uses, and the leftovers of crashed writers.

What is live comes from the root providers recorded in the store
(:mod:`engine.store.roots`); the layers above decide which of their versions to
drop first (``engine.data.gc``, ``Registry.gc``) and then call :func:`collect`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .lease import gc_lock
from .pack import pack_key
from .roots import live_set, load_providers


@dataclass
class GcReport:
    """What ``gc`` removed (or, with ``dry_run``, would remove).

    ``versions_deleted`` lists the versions the calling layer dropped before the
    store was swept; the rest is the sweep: packs deleted and rewritten, bytes
    freed, leftovers of crashed writers removed.
    """

    dry_run: bool
    versions_deleted: list[str] = field(default_factory=list)
    packs_deleted: int = 0
    packs_repacked: int = 0
    bytes_freed: int = 0
    temporaries_removed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def check_options(grace, repack_below=0.5) -> None:
    """ValueError unless ``grace`` is seconds >= 0 and ``repack_below`` a fraction in [0, 1]
    (callers check before they delete versions of their own, then :func:`collect`).

    Examples
    --------
    >>> check_options(-1)
    Traceback (most recent call last):
    ...
    ValueError: grace must be a number of seconds >= 0, got -1
    """
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
        raise ValueError(f"grace must be a number of seconds >= 0, got {grace!r}")
    if isinstance(repack_below, bool) or not isinstance(repack_below, (int, float)) \
            or not 0 <= repack_below <= 1:
        raise ValueError(f"repack_below must be a fraction in [0, 1], got {repack_below!r}")


def collect(store, *, grace: float = 60.0, repack_below: float = 0.5, dry_run: bool = False,
            report: GcReport | None = None, providers: dict | None = None,
            ignore: dict | None = None, wait: float = 0.0) -> GcReport:
    """Delete the packs whose chunks no live root uses; rewrite those mostly dead.

    Parameters
    ----------
    store : Store
        The store to sweep.
    grace : float
        Seconds: packs and temporaries younger than this are never touched (default
        60). Writers hold leases that gc honours (:mod:`engine.store.lease`), so this
        is only a margin for file systems that show a new lock file late (NFS) and
        for writers of older mlops-engine versions, which took no lease.
    repack_below : float
        A pack whose live bytes are below this fraction is rewritten with only its
        live chunks; a pack with none is deleted.
    dry_run : bool
        Report what would be removed, change nothing.
    report : GcReport, optional
        A report to add to (the calling layer's, holding the versions it dropped).
    providers : dict, optional
        The loaded root providers (:func:`~engine.store.roots.load_providers`); by
        default loaded now, which raises
        :class:`~engine.store.roots.RootProviderError` before anything is deleted
        when one recorded in the store cannot be loaded.
    ignore : dict, optional
        Provider name -> labels of roots to count as gone: with ``dry_run``, the
        versions the caller would have deleted, so that the report says what a real
        run would free.
    wait : float
        Seconds to wait for snapshots and registrations in progress (their write
        leases, :mod:`engine.store.lease`) to finish; then, or at once with 0,
        :class:`~engine.store.lease.StoreBusy` is raised and nothing is deleted. A
        dry run changes nothing and takes no lock.

    Examples
    --------
    >>> import tempfile
    >>> from engine.store import Store
    >>> collect(Store(tempfile.mkdtemp() + "/s"), grace=0).packs_deleted
    0
    """
    check_options(grace, repack_below)
    rep = report if report is not None else GcReport(dry_run=dry_run)
    providers = load_providers(store) if providers is None else providers  # may refuse
    if dry_run:
        return _collect(store, grace, repack_below, dry_run, rep, providers, ignore)
    with gc_lock(store, "gc", wait=wait):  # no snapshot or registration runs meanwhile
        return _collect(store, grace, repack_below, dry_run, rep, providers, ignore)


def _collect(store, grace, repack_below, dry_run, rep: GcReport, providers, ignore) -> GcReport:
    live = live_set(store, providers, ignore)
    now = time.time()
    old_enough = lambda key: now - store.fs.mtime(key) >= grace  # noqa: E731
    _sweep_packs(store, live, old_enough, repack_below, dry_run, rep)
    # Leftovers of crashed writers, in one walk of the store: pack temporaries, packs with
    # no index (never published), and the dot-temporaries of atomic writes.
    for key in store.fs.walk_files(""):
        base = key.rsplit("/", 1)[-1]
        leftover = (key.startswith("tmp/")
                    or (key.startswith("packs/") and key.endswith(".pack")
                        and not store.fs.exists(key[:-5] + ".idx"))
                    or (base.startswith(".") and base.endswith(".tmp")))
        if leftover and old_enough(key):
            rep.temporaries_removed += 1
            if not dry_run:
                store.fs.delete(key)
    store.reload()
    return rep


def _sweep_packs(st, live: set, old_enough, repack_below, dry_run, rep: GcReport) -> None:
    writer = None if dry_run else st.writer()
    to_delete: list[str] = []
    try:
        for pid in st.pack_ids():
            if not old_enough(pack_key(pid, "idx")):
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
                    pack = st.fs.read_bytes(pack_key(pid, "pack"))
                    for e in entries[alive]:
                        off, n, cid = int(e["offset"]), int(e["stored"]), e["id"].tobytes()
                        # opened and sealed again (a fresh nonce in an encrypted store)
                        raw = st.unseal(cid, int(e["codec"]), pack[off:off + n], int(e["raw"]))
                        codec, payload = st.seal(cid, raw)
                        writer.add(cid, int(e["raw"]), codec, payload)
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
