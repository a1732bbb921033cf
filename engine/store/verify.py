"""Verify the store: re-hash stored chunks, check packs and indexes, and find the chunks
that live roots need but no pack holds.

Damage never stops the check: an index that does not decode, a pack that is
missing, unreadable or has a bad header, a chunk whose bytes do not hash to its id,
a root whose chunk list does not read, a chunk a root needs that no pack holds.
Each problem names the file (``path``) and the roots (``versions``) it affects;
which roots are live comes from the root providers (:mod:`engine.store.roots`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import blake3

from ..progress import Progress
from .errors import StoreCorruption, StoreError
from .pack import FORMAT_VERSION as PACK_FORMAT_VERSION
from .pack import HEADER, PACK_MAGIC, RECORD, decode_index, decompress, pack_key
from .roots import live_chunks


@dataclass
class StoreCheck:
    """What :func:`verify_store` found: counts, and one dict per problem (``problem``,
    ``path``, ``versions`` and, where they apply, ``pack``, ``chunk``, ``offset``,
    ``detail``)."""

    packs: int = 0
    chunks_checked: int = 0
    bytes_checked: int = 0
    problems: list[dict] = field(default_factory=list)


def _indexes(st, problems: list) -> list[tuple[str, object]]:
    """(pack id, index entries) of every pack whose index decodes."""
    out = []
    for pid in st.pack_ids():
        ikey = pack_key(pid, "idx")
        try:
            out.append((pid, decode_index(st.fs.read_bytes(ikey), ikey)))
        except (StoreError, OSError) as exc:
            problems.append({"problem": "index damaged", "pack": pid, "path": st.fs.path(ikey),
                             "detail": str(exc)})
    return out


def check_chunk(pack: bytes, entry, limit: int | None = None, *, store=None) -> str | None:
    """Why the chunk of index entry ``entry`` is damaged in the bytes ``pack``, or None
    (``limit``: the store's largest chunk, see ``Store.max_chunk``). With ``store``, its
    payloads are opened and its ids computed as that store does (an encrypted store's
    are sealed and keyed: a damaged sealed payload fails its AES-GCM tag)."""
    cid = entry["id"].tobytes()
    off, stored = int(entry["offset"]), int(entry["stored"])
    raw, codec = int(entry["raw"]), int(entry["codec"])
    if off + stored > len(pack) or off < HEADER.size + RECORD.size:
        return "record lies outside the pack (truncated pack?)"
    if bytes(pack[off - RECORD.size:off]) != RECORD.pack(cid, codec, raw, stored):  # pads too
        return "record header does not match the index"
    payload = memoryview(pack)[off:off + stored]
    if store is not None:
        try:
            data = store.unseal(cid, codec, payload, raw)
        except StoreCorruption as exc:
            return str(exc)
        if len(data) != raw or store.chunk_id(data) != cid:
            return "bytes do not hash to the chunk id"
        return None
    try:
        data = decompress(codec, bytes(payload), raw, limit)
    except Exception as exc:  # any codec failure is damage to report, not a crash
        return f"does not decompress ({exc})"
    if len(data) != raw or blake3.blake3(data).digest() != cid:
        return "bytes do not hash to the chunk id"
    return None


def verify_store(store, *, sample: float | None = None, seed: int | None = None,
                 progress: bool | None = None, problems: list | None = None) -> StoreCheck:
    """Re-hash stored chunks, check every pack and index, and that every chunk a live root
    needs is stored.

    Parameters
    ----------
    store : Store
        The store to check.
    sample : float, optional
        In (0, 1]: re-hash only this fraction of chunks (chosen at random); indexes
        and references are always checked in full.
    seed : int, optional
        Seed of the sample.
    progress : bool or None
        A progress bar (chunks) on stderr; default: only if stderr is a terminal.
    problems : list, optional
        Problems the caller found already (damaged version records): they come
        first in the result, and a root they name is not reported again.

    Examples
    --------
    >>> import tempfile
    >>> from engine.store import Store
    >>> verify_store(Store(tempfile.mkdtemp() + "/s")).problems
    []
    """
    if sample is not None and not (isinstance(sample, (int, float)) and 0 < sample <= 1):
        raise ValueError(f"sample must be a fraction in (0, 1], got {sample!r}")
    rng = random.Random(seed)
    problems = [] if problems is None else problems
    reported = {r for p in problems for r in p.get("versions", [])}
    rep = StoreCheck(problems=problems)
    indexes = _indexes(store, problems)
    rep.packs = len(indexes) + sum(p["problem"] == "index damaged" for p in problems)
    present: set[bytes] = set()
    pack_problems: list[tuple[dict, list[bytes]]] = []  # with the chunks whose versions they affect
    bad_chunks: dict[bytes, dict] = {}
    with Progress(sum(len(e) for _, e in indexes), "verify", enabled=progress, unit="chunks") as bar:
        for pid, entries in indexes:
            pkey = pack_key(pid, "pack")
            ids = [e["id"].tobytes() for e in entries]
            try:
                pack = store.fs.read_bytes(pkey)
            except OSError as exc:
                what = "pack missing" if isinstance(exc, FileNotFoundError) else "pack unreadable"
                pack_problems.append(({"problem": what, "pack": pid, "path": store.fs.path(pkey),
                                       "detail": str(exc)}, ids))
                bar.advance(len(entries))
                continue
            if bytes(pack[:HEADER.size]) != HEADER.pack(PACK_MAGIC, PACK_FORMAT_VERSION, 0):
                pack_problems.append(({"problem": "pack header damaged", "pack": pid,
                                       "path": store.fs.path(pkey)}, ids))
            for e, cid in zip(entries, ids):
                present.add(cid)
                bar.advance(1)
                if sample is not None and rng.random() >= sample:
                    continue
                rep.chunks_checked += 1
                rep.bytes_checked += int(e["raw"])
                detail = check_chunk(pack, e, store.max_chunk, store=store)
                if detail:
                    bad_chunks[cid] = {"problem": "chunk corrupted", "pack": pid,
                                       "path": store.fs.path(pkey), "chunk": cid.hex(),
                                       "offset": int(e["offset"]), "detail": detail}
    used = live_chunks(store, problems=problems, reported=reported)
    for info, ids in pack_problems:
        info["versions"] = sorted({r for cid in ids for r in used.get(cid, [])})
        problems.append(info)
    for cid, info in bad_chunks.items():
        info["versions"] = used.get(cid, [])
        problems.append(info)
    missing = [{"problem": "chunk missing", "chunk": cid.hex(), "versions": refs}
               for cid, refs in used.items() if cid not in present]
    unindexed = sorted({r for p in missing for r in p["versions"]})
    for p in problems:
        if p["problem"] == "index damaged":  # its chunks can be anywhere: those not found
            p["versions"] = unindexed
    problems += missing
    return rep
