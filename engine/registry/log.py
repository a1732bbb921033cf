"""The registry's truth: a log of numbered, immutable commit files in the store.

Layout under the store root (format_version 1, see docs/formats.md)::

    registry/log/<seq // 10000, 10 digits>/<seq, 20 digits>.json   one commit each
    registry/checkpoints/<last seq, 20 digits>.arrow                commits first..last

A commit is created with put-if-absent (a fsynced temporary, unnamed where the
file system allows, hard-linked to its name, then the directory fsynced), so a
number is taken exactly once and a half-written commit is never visible. Every writer commits ``head + 1`` after reading the state at ``head``;
losing the race means re-reading and retrying, which makes alias moves and
promotion gates compare-and-set. Commit files are never deleted: a deleted
number could be taken again by a writer that read an older head.

Checkpoints compact ranges of the log into one Arrow file each (``seq``, the
commit JSON), so a cold start reads a few files instead of every commit. State
snapshots (``<seq>.state``, every ``REGISTRY_STATE_EVERY`` commits) hold the whole
query index at commit ``seq``, so a host without an index starts from the newest
snapshot and replays only the commits after it.
"""

from __future__ import annotations

import json
import struct
import time

import blake3
import pyarrow as pa

from ..store.arrow_build import table_from_columns
from ..store.store import now_iso, who
from .errors import RegistryCorruption, RegistryFormatError

#: 2: every commit carries ``checksum`` (over its whole content) and ``prev`` (the
#: checksum of the commit before it), so a changed, removed, reordered or replaced commit
#: is detected. Commits of format 1 have neither; they are read, and reported unchecked.
FORMAT_VERSION = 2
LOG_DIR = "registry/log"
CHECKPOINT_DIR = "registry/checkpoints"
SHARD = 10_000
STATE_MAGIC = b"MLOPS-REGISTRY-STATE\n"
#: The most metadata bytes a state snapshot header may claim (a bound before reading it).
STATE_META_MAX = 1 << 20
CHECKPOINT_SCHEMA = pa.schema([("seq", pa.int64()), ("commit", pa.string())])


def commit_key(seq: int) -> str:
    return f"{LOG_DIR}/{seq // SHARD:010d}/{seq:020d}.json"


def checkpoint_key(last: int) -> str:
    return f"{CHECKPOINT_DIR}/{last:020d}.arrow"


def state_key(seq: int) -> str:
    return f"{CHECKPOINT_DIR}/{seq:020d}.state"


def check_format(obj: dict, where: str) -> dict:
    v = obj.get("format_version")
    if not isinstance(v, int):
        raise RegistryCorruption(f"{where} has no format_version")
    if v > FORMAT_VERSION:
        raise RegistryFormatError(
            f"{where} has format_version {v}, newer than this mlops-engine supports "
            f"({FORMAT_VERSION}); upgrade mlops-engine")
    return obj


def commit_checksum(body: dict) -> str:
    """BLAKE3 (hex) of a commit's canonical JSON without its ``checksum`` field: what a
    format-2 commit carries, and what the next commit's ``prev`` holds (for a format-1
    commit, which has no checksum, the hash of its whole canonical JSON)."""
    rest = {k: v for k, v in body.items() if k != "checksum"}
    return blake3.blake3(encode_body(rest).encode()).hexdigest()


def encode(seq: int, actions: list[dict], prev: str | None = None) -> bytes:
    body = {"format_version": FORMAT_VERSION, "seq": seq, "time": now_iso(), "actions": actions,
            "prev": prev}
    body.update(who())
    body["checksum"] = commit_checksum(body)
    return encode_body(body).encode()


def encode_body(body: dict) -> str:
    """The canonical JSON text of a commit (as its file holds it)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def decode(data: bytes, seq: int, where: str) -> dict:
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise RegistryCorruption(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise RegistryCorruption(f"{where} is not a JSON object")
    check_format(body, where)
    if body.get("seq") != seq or not isinstance(body.get("actions"), list):
        raise RegistryCorruption(f"{where} does not hold commit {seq}")
    if body["format_version"] >= 2 and body.get("checksum") != commit_checksum(body):
        raise RegistryCorruption(f"{where} fails its checksum: it was changed after it was "
                                 "written; run `mlops model verify`")
    return body


def check_chain(body: dict, prev_body: dict | None, where: str) -> None:
    """Raise unless commit ``body`` follows ``prev_body`` (its ``prev`` is that commit's
    checksum). A format-1 commit carries no link and is not checked."""
    if body.get("format_version", 1) < 2 or prev_body is None and body.get("seq") != 1:
        return
    want = None if prev_body is None else commit_checksum(prev_body)
    if body.get("prev") != want:
        raise RegistryCorruption(f"{where} does not follow commit {body.get('seq', 0) - 1}: a "
                                 "commit before it was changed, removed or replaced; run "
                                 "`mlops model verify`")


class CommitLog:
    """Reads and appends commit files on a store file system (``Store.fs``)."""

    def __init__(self, fs):
        self.fs = fs

    def read(self, seq: int) -> dict | None:
        """Commit ``seq``, or None if it does not exist (yet)."""
        key = commit_key(seq)
        for attempt in range(3):
            try:
                data = self.fs.read_bytes(key)
            except FileNotFoundError:
                return None
            try:
                return decode(data, seq, f"registry commit {self.fs.path(key)}")
            except RegistryCorruption:
                # Only the O_EXCL fallback (file systems without hard links) can show a
                # commit before its bytes are complete; give the writer a moment.
                if attempt == 2:
                    raise
                time.sleep(0.05 * (attempt + 1))
        return None  # unreachable

    def create(self, seq: int, actions: list[dict], before: dict | None = None) -> dict | None:
        """Put-if-absent of commit ``seq``; the commit, or None if the number is taken.
        The commit links to commit ``seq - 1`` (``prev``): ``before`` when the caller has
        it (the registry's index does), else read from its file."""
        if seq > 1 and before is None:
            before = self.read(seq - 1)
        data = encode(seq, actions, None if before is None else commit_checksum(before))
        key = commit_key(seq)
        if seq % SHARD == 0 or seq == 1:
            self.fs.makedirs(key.rpartition("/")[0])
        try:
            ok = self.fs.create_exclusive(key, data)
        except FileNotFoundError:  # the shard directory vanished or was never made
            self.fs.makedirs(key.rpartition("/")[0])
            ok = self.fs.create_exclusive(key, data)
        return json.loads(data) if ok else None

    def last_file(self) -> int:
        """The highest commit number with a file, by listing the log (gaps included)."""
        top = 0
        try:
            shards = self.fs.list(LOG_DIR)
        except FileNotFoundError:
            return 0
        for shard in shards:
            for name in self.fs.list(f"{LOG_DIR}/{shard}"):
                stem = name[:-5] if name.endswith(".json") else ""
                if stem.isdigit():
                    top = max(top, int(stem))
        return top

    # ------------------------------------------------------------------ checkpoints
    def compactions(self) -> tuple[list[int], list[int]]:
        """``(checkpoints, states)``: the last commit numbers of the published log
        checkpoints and of the index snapshots, ascending, from one directory listing."""
        found: dict[str, list[int]] = {".arrow": [], ".state": []}
        for f in self.fs.list(CHECKPOINT_DIR):
            kind = f[-6:]
            if kind in found and f[:-6].isdigit() and len(f) == 26:
                found[kind].append(int(f[:-6]))
        return sorted(found[".arrow"]), sorted(found[".state"])

    def checkpoints(self) -> list[int]:
        """Last sequence numbers of the published checkpoints, ascending."""
        return self.compactions()[0]

    def read_checkpoint(self, last: int) -> tuple[int, list[tuple[int, str]]]:
        """``(first, [(seq, commit json), ...])`` of the checkpoint ending at ``last``."""
        key = checkpoint_key(last)
        where = f"registry checkpoint {self.fs.path(key)}"
        try:
            t = pa.ipc.open_file(pa.py_buffer(self.fs.read_bytes(key))).read_all()
        except pa.ArrowInvalid as exc:
            raise RegistryCorruption(f"{where} is not a readable Arrow file: {exc}") from None
        meta = {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items()}
        check_format({"format_version": int(meta.get("format_version", "0") or 0)}, where)
        if t.schema.remove_metadata() != CHECKPOINT_SCHEMA:
            raise RegistryCorruption(f"{where} has schema {t.schema}, expected {CHECKPOINT_SCHEMA}")
        seqs = t.column("seq").to_pylist()
        first = int(meta.get("first", "0"))
        if not seqs or seqs != list(range(first, last + 1)):
            raise RegistryCorruption(f"{where} does not hold commits {first}..{last} in order")
        return first, list(zip(seqs, t.column("commit").to_pylist()))

    def write_checkpoint(self, rows: list[tuple[int, str]]) -> bool:
        """Publish a checkpoint of contiguous commits ``rows`` (put-if-absent)."""
        first, last = rows[0][0], rows[-1][0]
        meta = {"format": "mlops-engine registry checkpoint", "format_version": str(FORMAT_VERSION),
                "first": str(first), "last": str(last)}
        t = table_from_columns({"seq": [s for s, _ in rows], "commit": [c for _, c in rows]},
                               CHECKPOINT_SCHEMA.with_metadata(meta))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, t.schema,
                             options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
            w.write_table(t)
        self.fs.makedirs(CHECKPOINT_DIR)
        return self.fs.create_exclusive(checkpoint_key(last), sink.getvalue().to_pybytes())

    # ------------------------------------------------------------------ state snapshots
    def states(self) -> list[int]:
        """Commit numbers of the published index snapshots, ascending."""
        return self.compactions()[1]

    def write_state(self, seq: int, meta: dict, raw: bytes) -> bool:
        """Publish an index snapshot at commit ``seq`` (put-if-absent).

        Layout: ``STATE_MAGIC``, a u32 LE length, that many bytes of JSON metadata
        (``format_version``, ``seq``, ``index_version``, ``raw_size``, ``blake3`` of the
        compressed payload), then the zstd-compressed SQLite database.
        """
        payload = pa.compress(raw, codec="zstd", asbytes=True)
        head = dict(meta, format_version=FORMAT_VERSION, seq=seq, raw_size=len(raw),
                    codec="zstd", blake3=blake3.blake3(payload).hexdigest())
        h = json.dumps(head, sort_keys=True).encode()
        self.fs.makedirs(CHECKPOINT_DIR)
        return self.fs.create_exclusive(state_key(seq),
                                        STATE_MAGIC + struct.pack("<I", len(h)) + h + payload)

    def read_state(self, seq: int) -> tuple[dict, bytes]:
        """``(metadata, SQLite database bytes)`` of the snapshot at ``seq``, verified."""
        key = state_key(seq)
        where = f"registry state snapshot {self.fs.path(key)}"
        data = self.fs.read_bytes(key)
        n = len(STATE_MAGIC)
        if data[:n] != STATE_MAGIC or len(data) < n + 4:
            raise RegistryCorruption(f"{where} does not start with the state magic")
        (hl,) = struct.unpack("<I", data[n:n + 4])
        if hl > min(len(data) - n - 4, STATE_META_MAX):
            raise RegistryCorruption(f"{where} claims {hl} bytes of metadata, more than the "
                                     f"file holds or {STATE_META_MAX} bytes")
        try:
            meta = json.loads(data[n + 4:n + 4 + hl])
        except ValueError as exc:
            raise RegistryCorruption(f"{where} has unreadable metadata: {exc}") from None
        if not isinstance(meta, dict):
            raise RegistryCorruption(f"{where} has metadata that is not a JSON object")
        check_format(meta, where)
        payload = data[n + 4 + hl:]
        if meta.get("seq") != seq or blake3.blake3(payload).hexdigest() != meta.get("blake3"):
            raise RegistryCorruption(f"{where} fails its checksum")
        size = meta.get("raw_size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise RegistryCorruption(f"{where} has raw_size {size!r}, not a byte count")
        # raw_size lies outside the checksum: decompress by streaming, which allocates what
        # the payload really holds, and compare, instead of trusting it as a buffer size
        parts, got = [], 0
        try:
            with pa.CompressedInputStream(pa.BufferReader(payload), "zstd") as stream:
                while got <= size:
                    part = stream.read(min(size + 1 - got, 16 << 20))
                    if not part:
                        break
                    parts.append(part)
                    got += len(part)
            raw = b"".join(parts)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise RegistryCorruption(f"{where} does not decompress: {exc}") from None
        if len(raw) != size:
            raise RegistryCorruption(f"{where} holds {len(raw)}{'+' if len(raw) > size else ''} "
                                     f"bytes, not the {size} its metadata says")
        return meta, raw
