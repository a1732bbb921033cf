"""Store maintenance: ``log``, ``verify`` and ``gc``."""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field

import blake3
import numpy as np

from ..store import Store, StoreCorruption, StoreError
from ..store.pack import HEADER, PACK_MAGIC, RECORD, compress, decode_index, decompress, pack_key
from . import manifest as mf
from .ingest import using_store
from .version import KIND, Version, resolve, versions


def log(name: str, *, store=None) -> list[Version]:
    """The versions of dataset ``name``, newest first."""
    with using_store(store) as st:
        return _log(st, name)


def _log(st, name):
    vs = versions(st, name)
    if not vs:
        from ..store import UnknownVersion

        raise UnknownVersion(f"no dataset named {name!r} in {st.root}")
    return vs[::-1]


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
            problems.append({"problem": "manifest unreadable", "version": ref, "detail": str(exc)})
            continue
        for chunks in man.column("chunks").to_pylist():
            for c in chunks or []:
                refs = used.setdefault(c["id"], [])
                if not refs or refs[-1] != ref:
                    refs.append(ref)
    return used


@dataclass
class VerifyReport:
    ok: bool
    packs: int = 0
    chunks_checked: int = 0
    bytes_checked: int = 0
    versions: int = 0
    problems: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


def verify(*, store=None, sample: float | None = None, seed: int | None = None) -> VerifyReport:
    """Re-hash stored chunks and check that every version's chunks exist.

    With ``sample`` in (0, 1], only that fraction of chunks is re-hashed (chosen at
    random); the reference check always covers every version. Each problem names
    the pack, the chunk and the versions affected.
    """
    if sample is not None and not (isinstance(sample, (int, float)) and 0 < sample <= 1):
        raise ValueError(f"sample must be a fraction in (0, 1], got {sample!r}")
    with using_store(store) as st:
        return _verify(st, sample, seed)


def _verify(st, sample, seed):
    rng = random.Random(seed)
    problems: list[dict] = []
    rep = VerifyReport(ok=True)
    present: set[bytes] = set()
    bad_chunks: dict[bytes, dict] = {}
    for pid in st.pack_ids():
        rep.packs += 1
        ikey = pack_key(pid, "idx")
        try:
            entries = decode_index(st.fs.read_bytes(ikey), ikey)
        except StoreCorruption as exc:
            problems.append({"problem": "index damaged", "pack": pid, "detail": str(exc)})
            continue
        try:
            pack = st.fs.read_bytes(pack_key(pid, "pack"))
        except FileNotFoundError:
            problems.append({"problem": "pack missing", "pack": pid})
            continue
        if pack[:8] != PACK_MAGIC:
            problems.append({"problem": "pack header damaged", "pack": pid})
        for e in entries:
            cid = e["id"].tobytes()
            present.add(cid)
            if sample is not None and rng.random() >= sample:
                continue
            off, stored, raw, codec = int(e["offset"]), int(e["stored"]), int(e["raw"]), int(e["codec"])
            rep.chunks_checked += 1
            rep.bytes_checked += raw
            detail = None
            if off + stored > len(pack) or off < HEADER.size + RECORD.size:
                detail = "record lies outside the pack (truncated pack?)"
            else:
                hid, hcodec, hraw, hstored = RECORD.unpack_from(pack, off - RECORD.size)
                if (hid, hcodec, hraw, hstored) != (cid, codec, raw, stored):
                    detail = "record header does not match the index"
                else:
                    try:
                        data = decompress(codec, pack[off:off + stored], raw)
                        if len(data) != raw or blake3.blake3(data).digest() != cid:
                            detail = "bytes do not hash to the chunk id"
                    except Exception as exc:
                        detail = f"does not decompress ({exc})"
            if detail:
                bad_chunks[cid] = {"problem": "chunk corrupted", "pack": pid, "chunk": cid.hex(),
                                   "offset": off, "detail": detail}
    vs = all_versions(st)
    rep.versions = len(vs)
    used = _referenced(st, vs, problems)
    for cid, info in bad_chunks.items():
        info["versions"] = used.get(cid, [])
        problems.append(info)
    for cid, refs in used.items():
        if cid not in present:
            problems.append({"problem": "chunk missing", "chunk": cid.hex(), "versions": refs})
    rep.problems = problems
    rep.ok = not problems
    return rep


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
