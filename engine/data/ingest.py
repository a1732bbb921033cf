"""``snapshot``: version a directory, a file, or an Arrow table into the store.

The tree is walked (links recorded, never followed); files whose stat matches the
stat cache are taken from it; the others go through the store's chunk pipeline
(:mod:`engine.store.pipeline`: read in blocks, cut, hash, dedup, compress, pack),
one file per thread. The manifest goes through the same pipeline. The version
record is written last, with put-if-absent, after every pack it needs is durable:
a crash at any point leaves the store as it was, plus garbage that ``gc`` removes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..progress import Progress
from ..store import Store
from ..store.arrow_build import (
    table_from_columns,
)
from ..store.lease import write_lease
from ..store.pipeline import (
    ChunkSink,
    FileChangedError,
    FileChunks,
    FileVanishedError,
    file_workers,
    read_file,
    read_files,
)
from ..store.store import check_name, now_iso, who
from . import manifest as mf
from .roots import record as record_roots
from .statcache import RACY_NS, ChunkLists, StatCache, links_digest
from .version import KIND, Version, latest, with_checksum

__all__ = ["FileChangedError", "FileVanishedError", "StoredTree", "open_store", "scan_source",
           "snapshot", "store_bytes", "store_tree", "using_store"]


@dataclass
class _Entry:
    rel: str
    abspath: str
    kind: str  # "file" | "symlink"
    st: os.stat_result
    target: str | None = None


def open_store(store, create: bool = False) -> Store:
    """A :class:`Store` from a Store, a path or a URI (default ``$MLOPS_HOME``/``./.mlops``).

    Only writers create a missing store; readers given a mistyped path get
    ``FileNotFoundError`` rather than an empty store that "verifies".
    """
    return store if isinstance(store, Store) else Store(store, create=create)


@contextlib.contextmanager
def using_store(store, create: bool = False):
    """``open_store`` that closes the pack files of a store it opened itself."""
    st = open_store(store, create)
    try:
        yield st
    finally:
        if st is not store:
            st.close()


def _is_table_like(obj) -> bool:
    import pyarrow as pa

    return isinstance(obj, (pa.Table, pa.RecordBatch)) or (
        type(obj).__name__ == "DataFrame" and hasattr(obj, "columns")
    )


# ---------------------------------------------------------------------- walking


def _walk(root: str, exclude: str | None) -> tuple[list[_Entry], list[str]]:
    """Regular files and symlinks under ``root`` (links are not followed); skipped paths."""
    out: list[_Entry] = []
    skipped: list[str] = []
    stack = [("", root)]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            it = list(os.scandir(abs_dir))
        except PermissionError:
            raise PermissionError(f"cannot list directory {abs_dir!r}: permission denied") from None
        for de in it:
            rel = f"{rel_dir}/{de.name}" if rel_dir else de.name
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"file name is not valid UTF-8: {os.fsencode(de.path)!r}") from None
            try:
                st = de.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # vanished between listing and stat: not part of this snapshot
            if stat.S_ISLNK(st.st_mode):
                out.append(_Entry(rel, de.path, "symlink", st, os.readlink(de.path)))
            elif stat.S_ISDIR(st.st_mode):
                if exclude is not None and os.path.realpath(de.path) == exclude:
                    continue
                stack.append((rel, de.path))
            elif stat.S_ISREG(st.st_mode):
                out.append(_Entry(rel, de.path, "file", st))
            else:
                skipped.append(rel)  # fifo, socket, device
    out.sort(key=lambda e: e.rel.encode())
    return out, skipped


# ---------------------------------------------------------------------- reading files


def _read_file(e: _Entry, st: Store, sink) -> FileChunks:
    """Read one file of the walk through the pipeline into ``sink`` (anything with
    ``offer(ids, views)``; status and diff pass one that keeps nothing)."""
    return read_file(e.abspath, sink, st.params, key=st.id_key)  # keyed ids: encrypted store


# ---------------------------------------------------------------------- snapshot


def snapshot(source, name: str, message: str | None = None, *, store=None,
             progress: bool | None = None, workers: int | None = None) -> Version:
    """Snapshot a directory, a single file, a ``pyarrow.Table`` or a pandas DataFrame.

    Parameters
    ----------
    source : path, pyarrow.Table or pandas.DataFrame
        A directory (every regular file; symlinks recorded as links, never
        followed), a regular file, or a table (stored as Parquet with content-defined
        chunking, so that inserted and appended rows deduplicate).
    name : str
        Dataset name; versions are numbered per name (``name:v1``, ``name:v2``, ...).
    message : str, optional
        A note stored with the version.
    store : path, URI or Store, optional
        Default ``$MLOPS_HOME`` or ``./.mlops``.
    progress : bool, optional
        A progress bar on stderr; default: only if stderr is a terminal.
    workers : int, optional
        Reading/chunking threads (default: cores - 1, at least 1, plus this thread).

    Returns
    -------
    Version
        The new version, or the latest one (``unchanged=True``) if the content is
        identical to it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "a.txt").write_text("hello")
    5
    >>> v = snapshot(d, name="demo", store=tempfile.mkdtemp())
    >>> v.ref, v.files
    ('demo:v1', 1)
    """
    check_name(name, "name")
    if message is not None and not isinstance(message, str):
        raise TypeError(f"message must be a str, got {type(message).__name__}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    with using_store(store, create=True) as st:
        record_roots(st)  # before the first write: gc must know dataset versions live here
        # gc waits for (or refuses beside) this lease: no chunk this version dedups
        # against is deleted before the version is committed
        with write_lease(st, f"snapshot {name}"):
            if _is_table_like(source):
                return _snapshot_table(source, name, message, st)
            return _snapshot_path(source, name, message, st, progress, workers)


@dataclass
class StoredTree:
    """A tree (or single file) whose chunks and manifest are in the store, not yet committed."""

    manifest: pa.Table | None  # None when the stat cache vouched for the whole tree
    blob: dict  # the manifest's blob record
    id: str  # content id (mf.version_id)
    files: int  # manifest entries (files and links)
    bytes: int  # bytes of the regular files
    source: str  # absolute source path
    skipped: list
    new_bytes: int


def _snapshot_path(source, name, message, st: Store, progress, workers) -> Version:
    t = store_tree(source, st, f"snapshot {name}", progress, workers)
    return _commit(st, name, message, t.id, t.blob, t.files, t.bytes, t.source, "files",
                   {"skipped": t.skipped, "new_bytes": t.new_bytes})


def scan_source(source, st: Store) -> tuple[str, list[_Entry], list[str]]:
    """The absolute path of ``source`` (a directory or a regular file), its entries in
    manifest order, and the paths skipped (fifos, sockets, devices). A store inside the
    tree is left out; a source inside the store is an error."""
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError("source must be a directory or file path, a pyarrow.Table or a pandas "
                        f"DataFrame; got {type(source).__name__}")
    src = os.path.abspath(os.fspath(source))
    try:
        sst = os.stat(src)
    except FileNotFoundError:
        raise FileNotFoundError(f"source does not exist: {src!r}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(f"source is a symlink loop: {src!r}") from None
        raise
    exclude = None
    if st.fs.local:
        real_src, real_store = os.path.realpath(src), os.path.realpath(st.root)
        if real_src == real_store or real_src.startswith(real_store + os.sep):
            raise ValueError(f"source {src!r} is the store itself or inside it ({st.root!r})")
        if real_store.startswith(real_src + os.sep):
            exclude = real_store  # the store lives inside the tree: leave it out
    if stat.S_ISDIR(sst.st_mode):
        entries, skipped = _walk(src, exclude)
    elif stat.S_ISREG(sst.st_mode):
        entries, skipped = [_Entry(os.path.basename(src), src, "file", sst)], []
    else:
        raise ValueError(f"source is neither a directory nor a regular file: {src!r}")
    return src, entries, skipped


def store_tree(source, st: Store, label: str, progress=None, workers=None) -> StoredTree:
    """Chunk, deduplicate and store the files under ``source`` and their manifest.

    Shared by dataset snapshots and registry artifacts; the caller commits a record
    naming the returned manifest blob.
    """
    src, entries, skipped = scan_source(source, st)
    started_ns = time.time_ns()
    cache = StatCache(st, src)
    files = [e for e in entries if e.kind == "file"]
    links = [(e.rel, e.target, e.st) for e in entries if e.kind == "symlink"]
    tree = cache.unchanged_tree([(e.rel, e.st) for e in files], links)
    if tree is not None and _all_stored(st, cache.chunk_ids(), tree["blob"]):
        # the same files with the same stats as the last time: the same manifest
        return StoredTree(None, tree["blob"], tree["id"], len(entries),
                          sum(e.st.st_size for e in files), src, skipped, 0)
    rows = cache.hit_rows([(e.rel, e.st) for e in files])
    cached = cache.chunk_lists()
    _drop_unstored(st, cached, rows)  # gc may have dropped the chunks of an old version
    todo = [e for e, r in zip(files, rows) if r < 0]

    todo_bytes = sum(e.st.st_size for e in todo)
    cached_bytes = sum(e.st.st_size for e, r in zip(files, rows) if r >= 0)
    done: dict[str, FileChunks] = {}
    # A small job (one checkpoint file, a config) runs in this thread, into one pack
    # for its chunks and manifest; larger ones keep one pack per reading thread.
    nworkers = file_workers(todo_bytes, len(todo), workers)
    with ChunkSink(st, parallel=nworkers > 1) as sink:
        with Progress(todo_bytes + cached_bytes, label, enabled=progress) as bar:
            # files the stat cache vouches for are done already: the bar counts the whole tree
            bar.advance(cached_bytes, files=len(files) - len(todo))
            for e, fc in read_files(todo, lambda e: _read_file(e, st, sink),
                                    size=lambda e: e.st.st_size, workers=nworkers):
                done[e.rel] = fc
                bar.advance(fc.stat.st_size, files=1)
        man, file_chunks, file_ids = _manifest(entries, files, rows, done, cache, cached)
        blob = sink.put_bytes(mf.to_bytes(man), small_chunks=True)
    vid = mf.version_id(man)
    tree = ({"id": vid, "blob": blob, "links": links_digest(links)}
            if all(lst.st_mtime_ns < started_ns - RACY_NS for _, _, lst in links) else None)
    cache.save_columns([e.rel for e in files],
                       [done[e.rel].stat if r < 0 else e.st for e, r in zip(files, rows)],
                       file_ids, file_chunks, started_ns, tree, unchanged=not todo)
    return StoredTree(man, blob, vid, len(entries),
                      sum(e.st.st_size for e in files), src, skipped, sink.new_bytes)


def _drop_unstored(st: Store, cached: ChunkLists, rows: list[int]) -> None:
    """Set to -1 the ``rows`` (cache hits) that name a chunk the store no longer holds."""
    hits = np.flatnonzero(np.asarray(rows, np.int64) >= 0)
    if not len(hits):
        return
    lists = cached.take(np.asarray(rows, np.int64)[hits])
    if not len(lists.ids):
        return
    have = st.index.contains(lists.ids)
    if not have.all():
        owner = np.repeat(hits, np.diff(lists.offsets))
        for i in np.unique(owner[~have]).tolist():
            rows[i] = -1


def _manifest(entries: list[_Entry], files: list[_Entry], rows: list[int], done: dict,
              cache: StatCache, cached: ChunkLists) -> tuple[pa.Table, ChunkLists, list]:
    """The manifest of a walk (``entries`` in manifest order), and the chunk lists and
    ids of its files (for the stat cache), vectorized over the files the cache vouched
    for: their chunk lists are gathered from the cache's arrays, never built as Python
    objects."""
    row_of = {e.rel: r for e, r in zip(files, rows)}
    fids = cache.file_ids()
    ncached = len(cached)
    new_chunks: list = []
    cols: dict[str, list] = {n: [] for n in ("path", "kind", "mode", "size", "mtime_ns",
                                             "file_id", "target")}
    take: list[int] = []
    for e in entries:
        if e.kind == "symlink":
            st1, fid, target, idx = e.st, None, e.target, -1
        else:
            r = row_of[e.rel]
            if r >= 0:
                st1, fid, idx = e.st, fids[r], r
            else:
                fc = done[e.rel]
                st1, fid, idx = fc.stat, fc.id, ncached + len(new_chunks)
                new_chunks.append(fc.chunks)
            target = None
        cols["path"].append(e.rel)
        cols["kind"].append(e.kind)
        cols["mode"].append(stat.S_IMODE(st1.st_mode))
        cols["size"].append(st1.st_size if e.kind == "file" else 0)
        cols["mtime_ns"].append(st1.st_mtime_ns)
        cols["file_id"].append(fid)
        cols["target"].append(target)
        take.append(idx)
    pool = ChunkLists.concat([cached, ChunkLists.from_pylists(new_chunks)])
    cols["chunks"] = pool.take(take).to_arrow()
    file_take = [t for t in take if t >= 0]
    file_ids = [f for f, k in zip(cols["file_id"], cols["kind"]) if k == "file"]
    return table_from_columns(cols, mf.SCHEMA), pool.take(file_take), file_ids


def _all_stored(st: Store, ids, blob: dict) -> bool:
    """Whether the store holds every chunk in ``ids`` and the chunks of the manifest
    ``blob`` (gc may have dropped the versions a stat cache remembers)."""
    mids = [bytes.fromhex(c) for c, _ in blob.get("chunks", [])]
    need = np.concatenate([np.asarray(ids, np.uint8).reshape(-1, 32),
                           np.frombuffer(b"".join(mids), np.uint8).reshape(-1, 32)])
    return bool(st.index.contains(need).all()) if len(need) else True


def _manifest_entry(e: _Entry, done: dict) -> dict:
    if e.kind == "symlink":
        return {"path": e.rel, "kind": "symlink", "mode": stat.S_IMODE(e.st.st_mode), "size": 0,
                "mtime_ns": e.st.st_mtime_ns, "file_id": None, "target": e.target, "chunks": None}
    st1, fid, chunks = done[e.rel]
    return {"path": e.rel, "kind": "file", "mode": stat.S_IMODE(st1.st_mode), "size": st1.st_size,
            "mtime_ns": st1.st_mtime_ns, "file_id": fid, "target": None, "chunks": chunks}


def _commit(st: Store, name, message, vid, blob, nfiles, nbytes, source, fmt, extra) -> Version:
    cur = latest(st, name)
    if cur is not None and cur.id == vid:
        cur.unchanged = True
        return cur

    def make(number, parent):
        rec = {"format_version": 1, "kind": KIND, "format": fmt, "name": name, "number": number,
               "id": vid, "parent": parent.get("id") if parent else None, "message": message,
               "created": now_iso(), "source": source, "files": nfiles, "bytes": nbytes,
               "manifest": blob}
        rec.update(who())
        rec.update(extra)
        return with_checksum(rec)

    rec = st.commit_record(KIND, name, make)
    return Version.from_record(rec, st)


def _snapshot_table(table, name, message, st: Store) -> Version:
    from .tables import as_arrow_table, table_to_parquet_bytes

    t = as_arrow_table(table)
    data = table_to_parquet_bytes(t)
    man, blob = store_bytes(data, "data.parquet", st)
    return _commit(st, name, message, mf.version_id(man), blob, 1, len(data), "<table>", "table",
                   {"num_rows": t.num_rows, "columns": t.column_names})


def store_bytes(data, filename: str, st: Store, mode: int = 0o644, *,
                on_device: bool = False) -> tuple[pa.Table, dict]:
    """Store ``data`` as a one-file tree named ``filename``; returns (manifest, manifest blob).

    ``data`` is any C-contiguous buffer; its chunks and the manifest's go into one pack.
    With ``on_device``, ``data`` is a buffer in GPU memory, stored by
    :meth:`ChunkSink.put_device` (only the chunks the store lacks leave the GPU).
    """
    with ChunkSink(st) as sink:
        fblob = sink.put_device(data) if on_device else sink.put_bytes(data)
        chunks = [(bytes.fromhex(c), n) for c, n in fblob["chunks"]]
        entry = {"path": filename, "kind": "file", "mode": mode, "size": fblob["size"],
                 "mtime_ns": 0, "file_id": bytes.fromhex(fblob["id"]), "target": None,
                 "chunks": chunks}
        man = mf.build([entry])
        blob = sink.put_bytes(mf.to_bytes(man), small_chunks=True)
    return man, blob
