"""Remove chunks from the store's packs for good (``purge``: deletion requests).

``gc`` leaves a dead chunk in a pack that is mostly live (rewriting a pack to free a
few bytes is not worth it). A deletion request cannot wait for that:
:func:`drop_chunks` rewrites every pack holding one of the given chunks without it
(the other records are copied as they are stored: compressed, and encrypted in an
encrypted store), publishes the new packs, and only then deletes the old ones. The
layers above decide which chunks no other version needs (``engine.data.purge``,
``Registry.purge``) and hold the gc lock (:func:`~engine.store.lease.gc_lock`) while
they do, so no writer deduplicates against a chunk being removed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .lease import gc_lock
from .pack import pack_key


@dataclass
class PurgeReport:
    """What :func:`drop_chunks` removed: chunks (and their stored bytes) and packs rewritten."""

    chunks_removed: int = 0
    bytes_removed: int = 0
    packs_rewritten: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def drop_chunks(store, ids, *, what: str = "purge", wait: float = 0.0) -> PurgeReport:
    """Rewrite every pack that holds one of ``ids`` (32-byte chunk ids) without it.

    Every copy is removed (a chunk stored twice, by writers that raced, is in two
    packs). The rewritten packs are durable before the old ones are deleted, index
    first, so a crash leaves either the old pack or both (the next ``gc`` or purge
    removes the duplicate), never neither. Takes the gc lock (reentrant: a caller may
    hold it already).

    Examples
    --------
    >>> import tempfile
    >>> from engine.store import Store
    >>> from engine.store.pipeline import ChunkSink
    >>> st = Store(tempfile.mkdtemp() + "/s")
    >>> with ChunkSink(st) as sink:
    ...     blob = sink.put_bytes(b"secret")
    >>> drop_chunks(st, [bytes.fromhex(blob["chunks"][0][0])]).chunks_removed
    1
    """
    drop = {bytes(i) for i in ids}
    rep = PurgeReport()
    if not drop:
        return rep
    with gc_lock(store, what, wait=wait):
        store.require_intact()  # a damaged index could hide a copy of a chunk to remove
        store.reload()
        doomed: list[str] = []
        writer = store.writer()
        try:
            for pid in store.pack_ids():
                entries = store.read_index(pid)
                if not len(entries):
                    continue
                hit = np.fromiter((e.tobytes() in drop for e in entries["id"]), bool,
                                  count=len(entries))
                if not hit.any():
                    continue
                rep.chunks_removed += int(hit.sum())
                rep.bytes_removed += int(entries["stored"][hit].sum())
                rep.packs_rewritten += 1
                key = pack_key(pid, "pack")
                for e in entries[~hit]:
                    off, n = int(e["offset"]), int(e["stored"])
                    payload = store.fs.read_range(key, off, n)
                    if len(payload) != n:
                        raise OSError(f"pack {key} is truncated at offset {off}; nothing was "
                                      "removed; run `mlops data verify`")
                    writer.add(e["id"].tobytes(), int(e["raw"]), int(e["codec"]), payload)
                doomed.append(pid)
            writer.close()  # the kept chunks are durable in new packs before the old go
        except BaseException:
            writer.abort()
            raise
        for pid in doomed:
            store.fs.delete(pack_key(pid, "idx"))  # unpublish first, then drop the data
            store.fs.delete(pack_key(pid, "pack"))
        store.reload()
    return rep
