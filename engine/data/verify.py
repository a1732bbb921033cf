"""``verify``: re-hash what the store holds and report every damaged object by path.

Damage never stops the check: a version record that does not parse, an index that
does not decode, a pack that is missing, unreadable or has a bad header, a chunk whose
bytes do not hash to its id, a manifest that does not read, a chunk a version needs
that no pack holds. Each problem names the file (``path``) and the versions it affects.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field

import blake3

from ..progress import Progress
from ..store import StoreError, UnknownVersion
from ..store.pack import HEADER, PACK_MAGIC, RECORD, decode_index, decompress, pack_key
from .ingest import using_store
from .maint import _referenced
from .version import KIND, Version, record_problem


@dataclass
class VerifyReport:
    """What ``verify`` found.

    ``problems`` holds one dict per damaged object: ``problem`` (what), ``path`` (the
    file in the store), ``versions`` (the references it affects) and, where they apply,
    ``pack``, ``chunk``, ``offset`` and ``detail``. ``damaged_versions`` and
    ``intact_versions`` split every version of the store by whether a problem touches it.
    """

    ok: bool
    packs: int = 0
    chunks_checked: int = 0
    bytes_checked: int = 0
    versions: int = 0
    problems: list[dict] = field(default_factory=list)
    damaged_versions: list[str] = field(default_factory=list)
    intact_versions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


def verify(*, store=None, sample: float | None = None, seed: int | None = None,
           progress: bool | None = None) -> VerifyReport:
    """Re-hash stored chunks and check every version record and that every chunk a version
    needs is stored.

    Parameters
    ----------
    sample : float, optional
        In (0, 1]: re-hash only this fraction of chunks (chosen at random); records,
        indexes and references are always checked in full.
    seed : int, optional
        Seed of the sample.
    progress : bool or None
        A progress bar (chunks) on stderr; default: only if stderr is a terminal.
    """
    if sample is not None and not (isinstance(sample, (int, float)) and 0 < sample <= 1):
        raise ValueError(f"sample must be a fraction in (0, 1], got {sample!r}")
    with using_store(store) as st:
        return _verify(st, sample, seed, progress)


def _records(st, problems: list) -> tuple[list[Version], list[str]]:
    """The versions whose records are sound, and the refs of all versions."""
    good, refs = [], []
    for name in st.list_names(KIND):
        for n in st.list_numbers(KIND, name):
            ref, key = f"{name}:v{n}", st.record_key(KIND, name, n)
            refs.append(ref)
            try:
                rec = st.read_record(KIND, name, n)
                detail = record_problem(rec, name, n)
            except UnknownVersion:
                refs.pop()  # deleted (by gc) since it was listed
                continue
            except (StoreError, OSError) as exc:
                detail = str(exc)
            if detail:
                problems.append({"problem": "version record damaged", "path": st.fs.path(key),
                                 "versions": [ref], "detail": detail})
            else:
                good.append(Version.from_record(rec, st))
    return good, refs


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


def _check_chunk(pack: bytes, e) -> str | None:
    """Why the chunk of index entry ``e`` is damaged in ``pack``, or None."""
    cid = e["id"].tobytes()
    off, stored, raw, codec = int(e["offset"]), int(e["stored"]), int(e["raw"]), int(e["codec"])
    if off + stored > len(pack) or off < HEADER.size + RECORD.size:
        return "record lies outside the pack (truncated pack?)"
    if RECORD.unpack_from(pack, off - RECORD.size) != (cid, codec, raw, stored):
        return "record header does not match the index"
    try:
        data = decompress(codec, pack[off:off + stored], raw)
    except Exception as exc:  # any codec failure is damage to report, not a crash
        return f"does not decompress ({exc})"
    if len(data) != raw or blake3.blake3(data).digest() != cid:
        return "bytes do not hash to the chunk id"
    return None


def _verify(st, sample, seed, progress):
    rng = random.Random(seed)
    problems: list[dict] = []
    rep = VerifyReport(ok=True)
    vs, all_refs = _records(st, problems)
    indexes = _indexes(st, problems)
    rep.packs = len(indexes) + sum(p["problem"] == "index damaged" for p in problems)
    present: set[bytes] = set()
    pack_problems: list[tuple[dict, list[bytes]]] = []  # with the chunks whose versions they affect
    bad_chunks: dict[bytes, dict] = {}
    with Progress(sum(len(e) for _, e in indexes), "verify", enabled=progress, unit="chunks") as bar:
        for pid, entries in indexes:
            pkey = pack_key(pid, "pack")
            ids = [e["id"].tobytes() for e in entries]
            try:
                pack = st.fs.read_bytes(pkey)
            except OSError as exc:
                what = "pack missing" if isinstance(exc, FileNotFoundError) else "pack unreadable"
                pack_problems.append(({"problem": what, "pack": pid, "path": st.fs.path(pkey),
                                       "detail": str(exc)}, ids))
                bar.advance(len(entries))
                continue
            if pack[:8] != PACK_MAGIC:
                pack_problems.append(({"problem": "pack header damaged", "pack": pid,
                                       "path": st.fs.path(pkey)}, ids))
            for e, cid in zip(entries, ids):
                present.add(cid)
                bar.advance(1)
                if sample is not None and rng.random() >= sample:
                    continue
                rep.chunks_checked += 1
                rep.bytes_checked += int(e["raw"])
                detail = _check_chunk(pack, e)
                if detail:
                    bad_chunks[cid] = {"problem": "chunk corrupted", "pack": pid,
                                       "path": st.fs.path(pkey), "chunk": cid.hex(),
                                       "offset": int(e["offset"]), "detail": detail}
    rep.versions = len(all_refs)
    used = _referenced(st, vs, problems)
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
    rep.problems = problems
    damaged = {r for p in problems for r in p.get("versions", [])}
    # registry versions (engine.registry) whose content lies in this store come last
    rep.damaged_versions = [r for r in all_refs if r in damaged] + sorted(damaged - set(all_refs))
    rep.intact_versions = [r for r in all_refs if r not in damaged]
    rep.ok = not problems
    return rep
