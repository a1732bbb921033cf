"""Stat cache: (path, size, mtime_ns, ctime_ns, inode, device) -> file id and chunk list.

A re-snapshot of an unchanged tree then costs one ``stat`` per file. The cache is
a host-local acceleration: an Arrow IPC file in ``engine.config.cache_dir()``
(``~/.cache/mlops-engine/stat/``), keyed by host, store and source directory.
Deleting it is always safe. Cached chunk lists are used only if the store still
holds every chunk they name.

Racy entries are never cached. A file whose mtime is within ``RACY_NS`` of the
snapshot's start could be rewritten within the same timestamp tick without its
stat changing, so it is re-read next time.
"""

from __future__ import annotations

import hashlib
import os
import socket

import pyarrow as pa

from .. import config
from ..store.arrow_build import numpy_from_array, table_from_columns
from ..store.fs import LocalFS

RACY_NS = 2_000_000_000
SCHEMA = pa.schema([
    ("path", pa.string()), ("size", pa.uint64()), ("mtime_ns", pa.int64()),
    ("ctime_ns", pa.int64()), ("ino", pa.uint64()), ("dev", pa.uint64()),
    ("file_id", pa.binary(32)),
    ("chunks", pa.list_(pa.struct([("id", pa.binary(32)), ("length", pa.uint32())]))),
])


def _cache_fs(store_root: str, source: str) -> tuple[LocalFS, str]:
    h = hashlib.sha256(f"{socket.gethostname()}\0{store_root}\0{source}".encode()).hexdigest()[:32]
    return LocalFS(os.path.join(config.cache_dir(), "stat")), f"{h}.arrow"


def stat_key(st: os.stat_result) -> tuple:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


class StatCache:
    def __init__(self, store, source: str):
        self.entries: dict[str, tuple] = {}
        self.fs, self.key = _cache_fs(str(store.root), source)
        self._load()

    def _load(self) -> None:
        try:
            data = self.fs.read_bytes(self.key)
            t = pa.ipc.open_file(data).read_all()
        except (FileNotFoundError, pa.ArrowInvalid, OSError):
            return  # a missing or damaged cache is just a cold cache
        if not t.schema.equals(SCHEMA):
            return  # another layout: a cold cache too
        cols = t.drop_columns(["chunks"]).to_pydict()
        # the chunk lists from their flat columns: to_pydict would build a dict per chunk
        chunks = t.column("chunks").combine_chunks()
        ids, lengths = (f.to_pylist() for f in chunks.values.flatten())
        offsets = numpy_from_array(chunks.offsets).tolist()
        keys = zip(cols["size"], cols["mtime_ns"], cols["ctime_ns"], cols["ino"], cols["dev"])
        for i, (path, key, fid) in enumerate(zip(cols["path"], keys, cols["file_id"])):
            lo, hi = offsets[i], offsets[i + 1]
            self.entries[path] = (key, fid, list(zip(ids[lo:hi], lengths[lo:hi])))

    def get(self, path: str, st: os.stat_result):
        e = self.entries.get(path)
        if e is not None and e[0] == stat_key(st):
            return e[1], e[2]
        return None

    def save(self, files: list[tuple[str, os.stat_result, bytes, list]], started_ns: int) -> None:
        rows = [(p, st, fid, ch) for p, st, fid, ch in files if st.st_mtime_ns < started_ns - RACY_NS]
        if len(rows) == len(self.entries) and all(
                self.entries.get(p) == (stat_key(st), fid, ch) for p, st, fid, ch in rows):
            return  # the cache already says exactly this (an unchanged tree): no rewrite
        t = table_from_columns({
            "path": [r[0] for r in rows],
            "size": [r[1].st_size for r in rows],
            "mtime_ns": [r[1].st_mtime_ns for r in rows],
            "ctime_ns": [r[1].st_ctime_ns for r in rows],
            "ino": [r[1].st_ino for r in rows],
            "dev": [r[1].st_dev for r in rows],
            "file_id": [r[2] for r in rows],
            "chunks": [r[3] for r in rows],  # (id, length) pairs
        }, SCHEMA)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, SCHEMA) as w:
            w.write_table(t)
        try:
            self.fs.write_atomic(self.key, sink.getvalue().to_pybytes(), fsync=False)
        except OSError:
            pass  # a read-only or full cache directory only costs speed next time
