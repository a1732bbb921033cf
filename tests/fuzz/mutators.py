"""Hypothesis strategies that turn a valid file of each format into a hostile one.

Two kinds of mutation, drawn at random per example:

- **bytes**: flips, overwrites, truncation, insertion, deletion, copies, and
  "interesting" integers (0, -1, 2^31, 2^32 - 1, 2^63, 2^64 - 1, ...) written over 1, 4
  or 8 bytes: what a bad disk, a partial write or a careless tool does;
- **structure**: the file is decoded with a trusting reader, one of its fields is
  replaced (wrong types, huge or negative numbers, missing keys, hex fields with
  non-hex digits, hostile paths, deep nesting), and the file is written again the way
  its writer would, checksums recomputed: what someone who can write the store does.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import struct

import blake3
import pyarrow as pa
from hypothesis import assume
from hypothesis import strategies as st

from engine.data import manifest as mf
from engine.registry.log import STATE_MAGIC, commit_checksum, encode_body

INTERESTING = [0, 1, 7, 8, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 2**31 - 1, 2**31, 2**32 - 1,
               2**32, 2**40, 2**62, 2**63 - 1, 2**63, 2**64 - 1]

DEEP = "\0DEEP\0"  # stands for 100,000 nested lists, spliced in after json.dumps

HOSTILE = [None, True, False, 0, -1, 1, 255, 2**31, 2**32, 2**53 + 1, 2**63, 2**64,
           -(2**63) - 1, 10**30, -(10**30), 1.5, -0.0, 1e308, float("nan"), float("inf"), "",
           "x", "zz" * 32, "0" * 64, "g" * 64, "0" * 63, "../../etc/passwd", "/etc/passwd",
           "a\x00b", "A.TXT", "run:", "name:v", "name:vx", "name:v99999999999999999999",
           [], [1], [[]], [None], {}, {"a": 1}, [["0" * 64, -1]], [["zz", 1]],
           [["0" * 64, 2**70]], {"id": "0" * 64, "size": 1, "chunks": [["0" * 64, "1"]]},
           "x" * 5000, DEEP]


def hostile() -> st.SearchStrategy:
    # copies: a mutation may change a drawn list or dict in place later on
    return st.one_of(st.sampled_from(HOSTILE).map(copy.deepcopy), st.integers(),
                     st.text(max_size=8), st.floats(allow_nan=True))


# ----------------------------------------------------------------------------- bytes


def _apply(data: bytearray, op) -> bytearray:
    kind, a, b, c = op
    n = len(data)
    if kind == "flip" and n:
        data[a % n] ^= b or 1
    elif kind == "set" and n:
        data[a % n] = b
    elif kind == "truncate":
        del data[a % (n + 1):]
    elif kind == "insert":
        data[a % (n + 1):a % (n + 1)] = c
    elif kind == "delete" and n:
        del data[a % n:a % n + b]
    elif kind == "copy" and n:
        src = data[a % n:a % n + 64]
        at = b % n
        data[at:at + len(src)] = src
    elif kind == "int" and n:
        width = (1, 4, 8)[b % 3]
        v = (c if isinstance(c, int) else int.from_bytes(c[:8], "little")) % (1 << (8 * width))
        at = a % max(n - width + 1, 1)
        data[at:at + width] = v.to_bytes(width, "little")[:max(n - at, 0)]
    return data


_OPS = st.tuples(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "copy", "int"]),
                 st.integers(0, 1 << 20), st.integers(0, 255),
                 st.binary(min_size=1, max_size=32))


def byte_mutation(valid: bytes) -> st.SearchStrategy[bytes]:
    """``valid`` with one to four byte-level changes."""

    @st.composite
    def draw(d):
        out = bytearray(valid)
        for op in d(st.lists(_OPS, min_size=1, max_size=4)):
            if op[0] == "int":
                op = (op[0], op[1], op[2], d(st.sampled_from(INTERESTING)))
            out = _apply(out, op)
        return bytes(out)

    return draw()


# ----------------------------------------------------------------------------- JSON


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def mutate_doc(d, doc):
    """A deep copy of JSON ``doc`` with one to three of its values replaced, deleted, made
    non-hex, wrapped, or given an extra key."""
    doc = copy.deepcopy(doc)
    for _ in range(d(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = d(st.sampled_from(paths))
        op = d(st.sampled_from(["replace", "replace", "replace", "delete", "nonhex", "wrap",
                                "add"]))
        try:
            if not path:
                if op in ("replace", "wrap"):
                    doc = [doc] if op == "wrap" else d(hostile())
                continue
            parent, key = _get(doc, path[:-1]), path[-1]
            old = parent[key]
            if op == "replace":
                parent[key] = d(hostile())
            elif op == "delete":
                del parent[key]
            elif op == "nonhex" and isinstance(old, str):
                parent[key] = ("z" * len(old)) if old else "z"
            elif op == "wrap":
                parent[key] = [old]
            elif op == "add" and isinstance(old, dict):
                old[d(st.sampled_from(["op", "__ckpt_dict__", "__ckpt_tensor__", "name",
                                       "purged", "x"]))] = d(hostile())
        except (KeyError, IndexError, TypeError):
            continue
    return doc


def dumps(doc) -> str:
    text = json.dumps(doc, allow_nan=True)
    return text.replace(json.dumps(DEEP), "[" * 100_000 + "]" * 100_000)


def json_mutation(valid: bytes) -> st.SearchStrategy[bytes]:
    doc = json.loads(valid)

    @st.composite
    def draw(d):
        return dumps(mutate_doc(d, doc)).encode()

    return draw()


def commit_mutation(valid: bytes) -> st.SearchStrategy[bytes]:
    """A changed commit, its checksum recomputed (as a writer of the store could) or not."""
    doc = json.loads(valid)

    @st.composite
    def draw(d):
        body = mutate_doc(d, doc)
        if d(st.booleans()) and isinstance(body, dict):
            try:
                body["checksum"] = commit_checksum(body)
                return encode_body(body).replace(json.dumps(DEEP), "[" * 50_000 + "]" * 50_000) \
                    .encode()
            except (TypeError, ValueError):
                pass
        return dumps(body).encode()

    return draw()


# ----------------------------------------------------------------------------- pack index


def signed_index_mutation(valid: bytes) -> st.SearchStrategy[bytes]:
    """An index whose entries (or count) changed and whose checksum was recomputed."""
    body = valid[:-32]
    n = (len(body) - 16) // 56

    @st.composite
    def draw(d):
        out = bytearray(body)
        for _ in range(d(st.integers(1, 3))):
            if d(st.booleans()) and n:
                e = 16 + 56 * d(st.integers(0, n - 1))
                at, width = d(st.sampled_from([(32, 8), (40, 4), (44, 4), (48, 1), (0, 8)]))
                v = d(st.sampled_from(INTERESTING)) % (1 << (8 * width))
                out[e + at:e + at + width] = v.to_bytes(width, "little")
            else:
                out = _apply(out, d(_OPS))
        return bytes(out) + blake3.blake3(bytes(out)).digest()

    return draw()


# ----------------------------------------------------------------------------- manifest

_MANIFEST_VALUES = {
    "path": ["../x", "/abs", "a/../b", "", ".", "a//b", "x\x00y", "x\\y", "A.BIN", "sub",
             "link/x", "a.bin/x", "n" * 300, "d/" * 2100 + "f", None],
    "kind": ["chardev", "blockdev", "fifo", "socket", "dir", "", "FILE", None],
    "mode": [0o4755, 0o2755, 0o20644, 0o60644, 0o10644, 0o140644, 2**32 - 1, 0, None],
    "size": [0, 1, 2**63, 2**64 - 1, None],
    "mtime_ns": [-(2**63), 2**63 - 1, 0, None],
    "file_id": [None, bytes(32), b"\xff" * 32],
    "target": [None, "", "/etc", "../../../..", "a\x00b", "x" * 5000, "a.bin"],
    "chunks": [None, [], [(bytes(32), 5)], [(b"\xff" * 32, 2**32 - 1)]],
}


def manifest_mutation(valid: bytes) -> st.SearchStrategy[bytes]:
    """A manifest with rows changed, added or removed, or a column of another type."""
    table = pa.ipc.open_stream(valid).read_all()
    cols = table.to_pydict()
    n = table.num_rows

    @st.composite
    def draw(d):
        c = copy.deepcopy(cols)
        schema = mf.SCHEMA
        for _ in range(d(st.integers(1, 3))):
            op = d(st.sampled_from(["value", "value", "value", "copy_row", "drop_row",
                                    "other_chunks", "retype"]))
            rows = len(c[next(iter(c))]) if c else 0
            if not rows:
                break
            i = d(st.integers(0, rows - 1))
            fields = sorted(set(_MANIFEST_VALUES) & set(c))
            if op == "value" and fields:
                f = d(st.sampled_from(fields))
                c[f][i] = copy.deepcopy(d(st.sampled_from(_MANIFEST_VALUES[f])))
            elif op == "copy_row":
                for f in c:
                    c[f].append(c[f][i])
                if d(st.booleans()) and "path" in c:
                    c["path"][-1] = d(st.sampled_from(["A.bin", "SUB/b.txt", "a.bin/x", "link/y",
                                                       c["path"][-1]]))
            elif op == "drop_row":
                for f in c:
                    del c[f][i]
            elif op == "other_chunks" and "chunks" in c and n > 1:
                c["chunks"][i] = c["chunks"][d(st.integers(0, rows - 1))]
            elif op == "retype" and len(schema) > 1:
                f = d(st.sampled_from(schema.names))
                if d(st.booleans()):
                    schema = schema.remove(schema.get_field_index(f))
                    del c[f]
                else:
                    schema = schema.set(schema.get_field_index(f), pa.field(f, pa.string()))
                    c[f] = [None if v is None else str(v) for v in c[f]]
        try:
            t = pa.table(c, schema=schema)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            assume(False)
        return mf.to_bytes(t)

    return draw()


# ----------------------------------------------------------------------------- registry checkpoint


def checkpoint_mutation(valid: bytes) -> st.SearchStrategy[bytes]:
    table = pa.ipc.open_file(pa.py_buffer(valid)).read_all()
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    seqs = table.column("seq").to_pylist()
    commits = table.column("commit").to_pylist()

    @st.composite
    def draw(d):
        m, s, c = dict(meta), list(seqs), list(commits)
        op = d(st.sampled_from(["commit", "commit", "meta", "seq", "null", "plain"]))
        if op == "commit":
            i = d(st.integers(0, len(c) - 1))
            c[i] = d(commit_mutation(c[i].encode())).decode()
        elif op == "meta":
            m[d(st.sampled_from(["first", "last", "format_version"]))] = d(st.sampled_from(
                ["", "x", "-1", "0", "99", str(2**70), "\xff"]))
        elif op == "seq":
            s[d(st.integers(0, len(s) - 1))] = d(st.sampled_from([0, -1, 2**63 - 1, 5, 1]))
        elif op == "null":
            c[d(st.integers(0, len(c) - 1))] = None
        schema = pa.schema([("seq", pa.int64()), ("commit", pa.string())], metadata=m)
        t = pa.table({"seq": s, "commit": c}, schema=schema)
        sink = pa.BufferOutputStream()
        comp = None if op == "plain" else "zstd"
        with pa.ipc.new_file(sink, t.schema,
                             options=pa.ipc.IpcWriteOptions(compression=comp)) as w:
            w.write_table(t)
        return sink.getvalue().to_pybytes()

    return draw()


# ----------------------------------------------------------------------------- state snapshot

_SQL = [
    "UPDATE meta SET value='abc' WHERE key='last_seq'",
    "UPDATE meta SET value=? WHERE key='last_seq'",
    "UPDATE versions SET content=?",
    "UPDATE versions SET version=?",
    "UPDATE versions SET metrics=?",
    "UPDATE commits SET body=? WHERE seq=(SELECT max(seq) FROM commits)",
    "UPDATE commits SET seq=?",
    "UPDATE aliases SET version=?",
    "UPDATE runs SET params=?",
    "UPDATE edges SET src=?",
    "DELETE FROM commits",
    "DROP TABLE versions",
    "CREATE TABLE extra(x)",
    "CREATE VIEW v AS SELECT 1",
    "CREATE TRIGGER t AFTER INSERT ON commits BEGIN DELETE FROM versions; END",
    "INSERT INTO meta VALUES('index_version', 'x')",
]


def _sql_value(v):
    if v is None or isinstance(v, (int, float, str)) and not isinstance(v, bool):
        if isinstance(v, int) and not -(2**63) <= v < 2**63:
            return str(v)
        return v
    return json.dumps(v)


def state_mutation(valid: bytes) -> st.SearchStrategy[bytes]:
    n = len(STATE_MAGIC)
    (hl,) = struct.unpack("<I", valid[n:n + 4])
    meta = json.loads(valid[n + 4:n + 4 + hl])
    payload = valid[n + 4 + hl:]
    raw = pa.decompress(payload, meta["raw_size"], codec="zstd", asbytes=True)

    def pack(m: dict, p: bytes) -> bytes:
        h = json.dumps(m, sort_keys=True).encode()
        return STATE_MAGIC + struct.pack("<I", len(h)) + h + p

    @st.composite
    def draw(d):
        op = d(st.sampled_from(["meta", "sql", "sql", "raw_size"]))
        if op == "meta":
            m = mutate_doc(d, meta)
            return STATE_MAGIC + struct.pack("<I", len(dumps(m))) + dumps(m).encode() + payload
        if op == "raw_size":
            m = dict(meta, raw_size=d(st.sampled_from([0, 1, meta["raw_size"] - 1, 2**40,
                                                       2**63 - 1])))
            return pack(m, payload)
        db = sqlite3.connect(":memory:")
        try:
            db.deserialize(raw)
            stmt = d(st.sampled_from(_SQL))
            args = (_sql_value(d(hostile())),) if "?" in stmt else ()
            try:
                db.execute(stmt, args)
                db.commit()
            except sqlite3.Error:
                assume(False)
            new = db.serialize()
        finally:
            db.close()
        p = pa.compress(new, codec="zstd", asbytes=True)
        return pack(dict(meta, raw_size=len(new), blake3=blake3.blake3(p).hexdigest()), p)

    return draw()


# ----------------------------------------------------------------------------- dist checkpoint


def tensor_file_mutation(valid: bytes) -> st.SearchStrategy[bytes]:
    """A checkpoint whose header (tensor table, or the state tree in its metadata) changed."""
    (hl,) = struct.unpack("<Q", valid[:8])
    header = json.loads(valid[8:8 + hl])
    body = valid[8 + hl:]
    state = json.loads(header["__metadata__"]["mlops_checkpoint"])

    @st.composite
    def draw(d):
        h = copy.deepcopy(header)
        if d(st.booleans()):
            h["__metadata__"]["mlops_checkpoint"] = dumps(mutate_doc(d, state))
        else:
            tensors = {k: v for k, v in h.items() if k != "__metadata__"}
            if d(st.booleans()):
                changed = mutate_doc(d, tensors)
                h = {**changed, "__metadata__": h["__metadata__"]} if isinstance(
                    changed, dict) else changed
            else:
                name = d(st.sampled_from(sorted(tensors)))
                field = d(st.sampled_from(["dtype", "shape", "data_offsets"]))
                h[name][field] = d(st.sampled_from(
                    [None, "F32", "BF16", "C64", [], [2**40, 2**40], [-1], [1.5], [2**64],
                     [0, 2**63], [8, 4], [0, 1], "x", {}, [True]]))
        text = dumps(h).encode()
        text += b" " * (-len(text) % 8)
        return struct.pack("<Q", len(text)) + text + body

    return draw()


# ----------------------------------------------------------------------------- profile


def profile_mutation(valid: bytes) -> st.SearchStrategy[bytes]:
    table = pa.ipc.open_file(pa.py_buffer(valid)).read_all()
    cols = table.to_pydict()
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    n = table.num_rows

    @st.composite
    def draw(d):
        c, m, schema = copy.deepcopy(cols), dict(meta), table.schema
        op = d(st.sampled_from(["stats", "stats", "head", "kind", "array", "meta", "zstd"]))
        i = d(st.integers(0, n - 1))
        if op == "stats":
            c["stats"][i] = dumps(mutate_doc(d, json.loads(c["stats"][i])))
        elif op == "head":
            m["profile"] = dumps(mutate_doc(d, json.loads(m["profile"])))
        elif op == "kind":
            c["kind"][i] = d(st.sampled_from(["numeric", "categorical", "text", "invalid", "x",
                                              None]))
        elif op == "array":
            f = d(st.sampled_from(["edges", "hist", "sample", "sample_keys", "trigrams"]))
            c[f][i] = d(st.sampled_from([None, [], [1], list(range(50))]))
        elif op == "meta":
            m[d(st.sampled_from(["format", "format_version", "profile"]))] = d(st.sampled_from(
                ["", "x", "2", "-1", "{}", "[]", "null", '{"n_rows": -1}']))
        t = pa.table(c, schema=schema.with_metadata(m))
        sink = pa.BufferOutputStream()
        comp = "zstd" if op == "zstd" else None
        with pa.ipc.new_file(sink, t.schema,
                             options=pa.ipc.IpcWriteOptions(compression=comp)) as w:
            w.write_table(t)
        return sink.getvalue().to_pybytes()

    return draw()


#: target name -> strategies of structured mutations of its valid bytes
STRUCTURED = {
    "pack_index": signed_index_mutation,
    "pack_index_signed": signed_index_mutation,
    "manifest": manifest_mutation,
    "version_record": json_mutation,
    "commit": commit_mutation,
    "commit_middle": commit_mutation,
    "registry_checkpoint": checkpoint_mutation,
    "state_snapshot": state_mutation,
    "dist_checkpoint": tensor_file_mutation,
    "profile": profile_mutation,
}


def hostile_file(name: str, valid: bytes) -> st.SearchStrategy[bytes]:
    """Byte-level or structured mutations of ``valid`` (a file of target ``name``)."""
    return st.one_of(byte_mutation(valid), STRUCTURED[name](valid))


__all__ = ["STRUCTURED", "byte_mutation", "hostile_file"]
