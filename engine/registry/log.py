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
import re
import struct
import time

import blake3
import pyarrow as pa

from ..store.arrow_build import table_from_columns
from ..store.ipc import read_ipc
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
#: A checkpoint's compressed buffers may claim at most this many times the file's size, plus
#: CHECKPOINT_MAX_EXTRA bytes, uncompressed (a larger claim is refused before it is allocated).
CHECKPOINT_MAX_RATIO = 64
CHECKPOINT_MAX_EXTRA = 64 << 20


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
    """Commit ``seq`` from its bytes, checked (format, number, checksum, and every known
    action's fields, :func:`commit_problem`); :class:`RegistryCorruption` naming ``where``."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise RegistryCorruption(f"{where} is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(body, dict):
        raise RegistryCorruption(f"{where} is not a JSON object")
    check_format(body, where)
    if not _int(body.get("seq")) or body["seq"] != seq or not isinstance(body.get("actions"), list):
        raise RegistryCorruption(f"{where} does not hold commit {seq}")
    if body["format_version"] >= 2 and body.get("checksum") != commit_checksum(body):
        raise RegistryCorruption(f"{where} fails its checksum: it was changed after it was "
                                 "written; run `mlops model verify`")
    problem = commit_problem(body)
    if problem is not None:
        raise RegistryCorruption(f"{where} is damaged: {problem}; run `mlops model verify`")
    return body


# ----------------------------------------------------------------------------- commit fields
# A commit's checksum proves it unchanged, not well-formed: whoever can write the store
# can write any JSON with a matching checksum. So every field that the index stores or
# reads is held to its type before a commit is applied (a bad one fails naming the file).


def _int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and -(1 << 63) <= x < 1 << 63


def _str(x) -> bool:
    return isinstance(x, str)


def _dict(x) -> bool:
    return isinstance(x, dict)


def _opt(check):
    return lambda x: x is None or check(x)


def _strs(x) -> bool:
    return isinstance(x, list) and all(isinstance(v, str) for v in x)


def _sql(x) -> bool:
    """A value SQLite stores as it is (the audit fields)."""
    return x is None or isinstance(x, (str, float)) or _int(x)


def _gate(g) -> bool:
    return isinstance(g, dict) and {"metric", "op", "new", "held"} <= g.keys()


_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


def _blob(b) -> bool:
    """A stored blob reference: ``{"id": 64 hex, "size": n, "chunks": [[64 hex, n], ...]}``."""
    return (isinstance(b, dict) and _str(b.get("id")) and bool(_HEX64.match(b["id"]))
            and _int(b.get("size")) and b["size"] >= 0 and isinstance(b.get("chunks"), list)
            and all(isinstance(c, list) and len(c) == 2 and _str(c[0]) and _HEX64.match(c[0])
                    and _int(c[1]) and c[1] >= 0 for c in b["chunks"]))


def content_ok(c) -> bool:
    return (isinstance(c, dict) and _blob(c.get("manifest")) and _opt(_str)(c.get("file"))
            and _opt(_str)(c.get("data")))


def _version_ref(t: str) -> bool:
    """``name:vN``, as a tag on a version names its target."""
    name, sep, v = t.rpartition(":v")
    return bool(sep and name and v.isdigit() and v.isascii() and len(v) < 19)


#: op -> field -> check of ``action.get(field)`` (required fields fail on None)
ACTION_FIELDS = {
    "register": {"name": _str, "version": _int, "kind": _str, "id": _str, "format": _opt(_str),
                 "size": _opt(_int), "files": _opt(_int), "content": content_ok,
                 "metrics": _opt(_dict), "params": _opt(_dict), "tags": _opt(_dict),
                 "message": _opt(_str), "run_id": _opt(_str), "inputs": _opt(_strs)},
    "alias": {"name": _str, "alias": _str, "version": _opt(_int), "previous": _opt(_int),
              "how": _opt(_str), "gate": _opt(_gate)},
    "delete_version": {"name": _str, "version": _int, "reason": _opt(_str)},
    "run_start": {"run_id": _str, "name": _str, "start": _opt(_str), "params": _opt(_dict),
                  "tags": _opt(_dict), "git_commit": _opt(_str), "world_size": _opt(_int),
                  "info": _opt(_dict), "inputs": _opt(_strs)},
    "run_input": {"run_id": _str, "node": _str},
    "run_output": {"run_id": _str, "node": _str},
    "run_end": {"run_id": _str, "status": _str, "end": _opt(_str), "params": _opt(_dict),
                "tags": _opt(_dict), "metrics": _opt(_dict)},
    "tag": {"target": _str, "on": lambda x: x in (None, "version", "run"), "tags": _dict},
}
#: commit fields the index stores
COMMIT_FIELDS = {"time": _sql, "user": _sql, "host": _sql, "slurm_job_id": _sql,
                 "prev": _opt(_str)}


def commit_problem(body: dict) -> str | None:
    """What makes a parsed commit unfit to apply, or None. Unknown actions (a newer minor
    version's) need only an ``op``: they are kept in the audit trail and otherwise skipped."""
    for key, ok in COMMIT_FIELDS.items():
        if not ok(body.get(key)):
            return f"its field {key!r} is {str(body.get(key))[:80]!r}"
    for i, a in enumerate(body["actions"]):
        if not isinstance(a, dict) or not _str(a.get("op")):
            return f"action {i} is not an object with an 'op'"
        if "name" in a and not _str(a["name"]):  # the audit trail lists every action's name
            return f"action {i} ({a['op']}) has a 'name' that is not a string"
        for key, ok in ACTION_FIELDS.get(a["op"], {}).items():
            if not ok(a.get(key)):
                return (f"action {i} ({a['op']}) has {key!r} = {str(a.get(key))[:80]!r}, "
                        "missing or of the wrong type")
        if a["op"] == "tag" and not (a["on"] == "run" if a.get("on") is not None
                                     else a["target"].startswith("run:")):
            if not _version_ref(a["target"]):
                return f"action {i} (tag) has target {a['target'][:80]!r}, not name:vN"
    return None


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
        data = self.fs.read_bytes(key)
        # zstd: the uncompressed lengths its buffers claim are held to a bound before
        # anything is allocated (commits compress about 5 to 10 times)
        t = read_ipc(data, where, file=True, schema=CHECKPOINT_SCHEMA, compressed=True,
                     max_raw=CHECKPOINT_MAX_RATIO * len(data) + CHECKPOINT_MAX_EXTRA,
                     error=RegistryCorruption)
        try:
            meta = {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items()}
            version = int(meta.get("format_version", "0") or 0)
            first = int(meta.get("first", "0"))
        except ValueError as exc:  # UnicodeDecodeError too
            raise RegistryCorruption(f"{where} has unreadable metadata: {exc}") from None
        check_format({"format_version": version}, where)
        if t.column("seq").null_count or t.column("commit").null_count:
            raise RegistryCorruption(f"{where} has null commits")
        seqs = t.column("seq").to_pylist()
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
        except (ValueError, RecursionError) as exc:
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
        if size > CHECKPOINT_MAX_RATIO * len(payload) + CHECKPOINT_MAX_EXTRA:
            raise RegistryCorruption(f"{where} has raw_size {size}, more than "
                                     f"{CHECKPOINT_MAX_RATIO} times its payload (zstd compresses "
                                     "a SQLite index about 3 to 5 times)")
        # raw_size lies outside the checksum: decompress by streaming, which allocates what
        # the payload really holds, and compare, instead of trusting it as a buffer size
        parts, got = [], 0
        try:
            with pa.CompressedInputStream(pa.BufferReader(payload), "zstd") as stream:
                while got <= size:
                    part = stream.read(min(size + 1 - got, 1 << 20))
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
