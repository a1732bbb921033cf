"""Dataset manifests: an Arrow table per version, and the canonical version id.

Schema (format_version 1, in the schema metadata):

=========  ============================================  =====================
column     type                                          meaning
=========  ============================================  =====================
path       string                                        relative POSIX path
kind       string                                        "file" or "symlink"
mode       uint32                                        permission bits
size       uint64                                        bytes (0 for links)
mtime_ns   int64                                         informational only
file_id    fixed_size_binary(32), null for links         BLAKE3 of chunk list
target     string, null for files                        symlink target
chunks     list<struct<id: binary(32), length: uint32>>  the file's chunks
=========  ============================================  =====================

The version id hashes only content (path, kind, mode, size, file id or link
target), never times, hosts or serialization details, so the same tree gives
the same id on any machine; see :func:`version_id`.
"""

from __future__ import annotations

import struct

import blake3
import numpy as np
import pyarrow as pa

from ..store.arrow_build import table_from_columns
from ..store.errors import StoreCorruption, StoreFormatError
from ..store.ipc import read_ipc

FORMAT_VERSION = 1
ID_DOMAIN = b"mlops-engine dataset version v1\n"

CHUNK_TYPE = pa.struct([("id", pa.binary(32)), ("length", pa.uint32())])
SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("kind", pa.string()),
        ("mode", pa.uint32()),
        ("size", pa.uint64()),
        ("mtime_ns", pa.int64()),
        ("file_id", pa.binary(32)),
        ("target", pa.string()),
        ("chunks", pa.list_(CHUNK_TYPE)),
    ],
    metadata={"format": "mlops-engine manifest", "format_version": str(FORMAT_VERSION)},
)


def build(entries: list[dict]) -> pa.Table:
    """A manifest from entry dicts (keys as the schema; ``chunks`` a list of
    ``(id, length)`` pairs, or None for a link), sorted by path bytes.

    Built from buffers (:func:`engine.store.arrow_build.table_from_columns`):
    ``pyarrow.Table.from_pydict`` would import pandas, half the time of a re-snapshot.

    Examples
    --------
    >>> m = build([{"path": "b", "kind": "symlink", "mode": 0o777, "size": 0, "mtime_ns": 0,
    ...             "target": "a"},
    ...            {"path": "a", "kind": "file", "mode": 0o644, "size": 3, "mtime_ns": 0,
    ...             "file_id": bytes(32), "chunks": [(bytes(32), 3)]}])
    >>> m.column("path").to_pylist(), m.column("chunks")[0].as_py()[0]["length"]
    (['a', 'b'], 3)
    """
    entries = sorted(entries, key=lambda e: e["path"].encode())
    return table_from_columns({name: [e.get(name) for e in entries] for name in SCHEMA.names},
                              SCHEMA)


def version_id(manifest: pa.Table) -> str:
    """BLAKE3-256 (hex) of the canonical records of a sorted manifest.

    Canonical record, per entry in path-byte order: ``path (UTF-8) NUL``, a kind
    byte (``f`` or ``l``), ``mode`` as u32 LE, ``size`` as u64 LE, then the 32-byte
    file id for a file or ``target (UTF-8) NUL`` for a link; the whole prefixed by
    the domain string ``"mlops-engine dataset version v1\\n"``.
    """
    h = blake3.blake3(ID_DOMAIN)
    cols = manifest.select(["path", "kind", "mode", "size", "file_id", "target"]).to_pydict()
    pack = struct.Struct("<IQ").pack
    for path, kind, mode, size, fid, target in zip(
        cols["path"], cols["kind"], cols["mode"], cols["size"], cols["file_id"], cols["target"]
    ):
        h.update(path.encode() + b"\0")
        if kind == "file":
            h.update(b"f" + pack(mode, size) + fid)
        else:
            h.update(b"l" + pack(mode, size) + target.encode() + b"\0")
    return h.hexdigest()


def to_bytes(manifest: pa.Table) -> bytes:
    """Arrow IPC stream, uncompressed (so that manifests of nearby versions deduplicate)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, manifest.schema) as w:
        w.write_table(manifest)
    return sink.getvalue().to_pybytes()


def from_bytes(data, name: str = "manifest") -> pa.Table:
    """The manifest table of stored bytes, checked: :class:`StoreCorruption` naming ``name``
    (``"manifest of ds:v3"``) for anything that is not a manifest of this format.

    The bytes are read without trusting them (:func:`engine.store.ipc.read_ipc`: the
    schema must be :data:`SCHEMA`, no buffer is compressed, every batch is validated),
    then every row is held to the format: ``kind`` is ``file`` or ``symlink`` (a device,
    fifo or socket is never described, so never created), ``mode`` holds permission
    bits only, a file has a file id and chunks whose lengths add up to its ``size``, a
    link has a non-empty target without NUL, no size and no chunks.
    """
    t = read_ipc(data, name, file=False, schema=SCHEMA)
    meta = t.schema.metadata or {}
    raw = meta.get(b"format_version", b"0")
    try:
        v = int(raw)
    except ValueError:
        raise StoreCorruption(f"{name} has format_version {raw!r}, not a number") from None
    if v > FORMAT_VERSION:
        raise StoreFormatError(
            f"{name} has format_version {v}, newer than this mlops-engine supports "
            f"({FORMAT_VERSION}); upgrade mlops-engine"
        )
    problem = rows_problem(t)
    if problem is not None:
        raise StoreCorruption(f"{name} is damaged: {problem}")
    return t


def _one(col) -> pa.Array:
    return col.chunks[0] if col.num_chunks == 1 else pa.concat_arrays(col.chunks)


def _valid(arr: pa.Array) -> np.ndarray:
    """Which slots of ``arr`` are not null (from its validity bitmap, no Arrow compute)."""
    if arr.null_count == 0:
        return np.ones(len(arr), bool)
    bits = np.unpackbits(np.frombuffer(arr.buffers()[0], np.uint8), bitorder="little")
    return bits[arr.offset:arr.offset + len(arr)].astype(bool)


def _values(arr: pa.Array, dtype) -> np.ndarray:
    # count: a validated buffer is long enough, not always a multiple of the item size
    return np.frombuffer(arr.buffers()[1], dtype, count=arr.offset + len(arr))[arr.offset:]


def _offsets(arr: pa.Array) -> np.ndarray:
    """The int32 offsets of a string or list array (``len + 1`` of them)."""
    return np.frombuffer(arr.buffers()[1], np.int32, count=arr.offset + len(arr) + 1)[arr.offset:]


def _is_word(arr: pa.Array, offs: np.ndarray, word: bytes) -> np.ndarray:
    """Which values of the string array ``arr`` (offsets ``offs``) equal ``word``."""
    out = (offs[1:] - offs[:-1]) == len(word)
    if out.any():
        data = np.frombuffer(arr.buffers()[2], np.uint8)
        at = offs[:-1][out][:, None] + np.arange(len(word))
        out[out] = (data[at] == np.frombuffer(word, np.uint8)).all(axis=1)
    return out


def rows_problem(t: pa.Table) -> str | None:
    """What makes the rows of manifest table ``t`` (of :data:`SCHEMA`) break the format, or
    None. Vectorized over the columns' buffers: a manifest of millions of rows is checked in
    milliseconds, without Arrow compute."""
    if t.num_rows == 0:
        return None
    col = {n: _one(t.column(n)) for n in SCHEMA.names}

    def at(i) -> str:
        return repr(col["path"][int(i)].as_py())

    for n in ("path", "kind", "mode", "size", "mtime_ns"):
        if col[n].null_count:
            return f"its column {n!r} has nulls"
    kind = col["kind"]
    koffs = _offsets(kind)
    is_file, is_link = _is_word(kind, koffs, b"file"), _is_word(kind, koffs, b"symlink")
    bad = np.flatnonzero(~(is_file | is_link))
    if len(bad):
        return (f"entry {at(bad[0])} has kind {kind[int(bad[0])].as_py()!r}; a manifest holds "
                "only 'file' and 'symlink' entries (never devices, fifos or sockets)")
    mode = _values(col["mode"], np.uint32)
    bad = np.flatnonzero(mode > 0o7777)
    if len(bad):
        return (f"entry {at(bad[0])} has mode {oct(int(mode[bad[0]]))}, which holds more "
                "than permission bits")
    size = _values(col["size"], np.uint64)
    if (~_valid(col["file_id"]) & is_file).any():
        return f"file {at(np.flatnonzero(~_valid(col['file_id']) & is_file)[0])} has no file id"
    target = col["target"]
    tvalid = _valid(target)
    toffs = _offsets(target)
    no_target = is_link & (~tvalid | ((toffs[1:] - toffs[:-1]) == 0))
    if no_target.any():
        return f"symlink {at(np.flatnonzero(no_target)[0])} has no target"
    if target.buffers()[2] is not None and 0 in np.frombuffer(target.buffers()[2], np.uint8)[
            toffs[0]:toffs[-1]]:
        return "a symlink target holds a NUL byte"
    chunks = col["chunks"]
    cvalid = _valid(chunks)
    if (~cvalid & is_file).any():
        return f"file {at(np.flatnonzero(~cvalid & is_file)[0])} has no chunk list"
    loffs = _offsets(chunks)
    child = chunks.values
    ids, lengths = child.field("id"), child.field("length")
    if child.null_count or ids.null_count or lengths.null_count:
        return "a chunk of its chunk lists is null"
    if child.offset:  # not what IPC reading gives; slice the fields as the struct is
        ids, lengths = child.flatten()
    cum = np.concatenate([np.zeros(1, np.uint64), np.cumsum(_values(lengths, np.uint32),
                                                            dtype=np.uint64)])
    sums = cum[loffs[1:]] - cum[loffs[:-1]]
    bad = np.flatnonzero(is_file & (sums != size))
    if len(bad):
        return (f"file {at(bad[0])} has size {int(size[bad[0]])}, but its chunks hold "
                f"{int(sums[bad[0]])} bytes")
    bad = np.flatnonzero(is_link & ((size != 0) | ((loffs[1:] - loffs[:-1]) != 0)))
    if len(bad):
        return f"symlink {at(bad[0])} has a size or chunks"
    return None


def check_safe_path(path: str) -> str:
    """Reject a manifest path that could write outside the checkout directory."""
    if not isinstance(path, str) or not path:
        raise StoreCorruption(f"manifest path {path!r} is empty")
    if "\0" in path or "\\" in path:
        raise ValueError(f"manifest path {path!r} contains a NUL or backslash; refusing it")
    if path.startswith("/"):
        raise ValueError(f"manifest path {path!r} is absolute; refusing to write outside dest")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"manifest path {path!r} has an empty, '.' or '..' component; "
                         "refusing to write outside dest")
    return path
