"""A working directory seen as a version: the other side of ``status`` and of ``diff``.

The directory is walked exactly as ``snapshot`` walks it (same paths, modes, links,
the store left out), and each file's id comes from the stat cache when its stat is
unchanged, so checking an unchanged tree costs one ``stat`` per file. Files whose
stat changed are read, chunked and hashed, never stored; their ids go into the
stat cache, so the next ``status`` or ``snapshot`` does not read them again.
"""

from __future__ import annotations

import os
import time

from ..progress import Progress
from ..store import Store
from ..store.pipeline import file_workers, read_files
from . import ingest
from .ingest import _manifest_entry, scan_source
from .statcache import StatCache
from .version import KIND, latest


class _Discard:
    """A chunk sink that keeps nothing: status and diff hash files, they never store them."""

    def offer(self, ids, views) -> None:
        pass


def is_path(x) -> bool:
    """Whether a ``diff`` argument names a directory (or file) rather than a version.

    An ``os.PathLike`` always does; a string does when it contains a ``/`` or starts with
    ``.`` (``./data``, ``../x``, ``/scratch/d``, ``.``), which no version reference can.
    """
    return isinstance(x, os.PathLike) or (
        isinstance(x, str) and ("/" in x or os.sep in x or x.startswith(".")))


def tree_entries(st: Store, path, progress: bool | None = False) -> dict[str, dict]:
    """path -> entry (kind, size, mode, file_id, target, chunks) of the tree at ``path``,
    in the form ``diff`` reads from a manifest."""
    src, entries, _skipped = scan_source(path, st)
    started_ns = time.time_ns()
    cache = StatCache(st, src)
    files = [e for e in entries if e.kind == "file"]
    done: dict[str, tuple] = {}
    todo = []
    for e in files:
        hit = cache.get(e.rel, e.st)
        if hit is None:
            todo.append(e)
        else:
            done[e.rel] = (e.st, hit[0], hit[1])
    if todo:
        sink = _Discard()
        nbytes = sum(e.st.st_size for e in todo)
        with Progress(nbytes, f"hashing {os.fspath(path)}", enabled=progress) as bar:
            for e, result in read_files(todo, lambda e: ingest._read_file(e, st, sink),
                                        size=lambda e: e.st.st_size,
                                        workers=file_workers(nbytes, len(todo))):
                done[e.rel] = result
                bar.advance(e.st.st_size, files=1)
        cache.save([(e.rel, *done[e.rel]) for e in files], started_ns)
    out = {}
    for e in entries:
        m = _manifest_entry(e, done)
        out[m["path"]] = {"kind": m["kind"], "size": m["size"], "mode": m["mode"],
                          "file_id": m["file_id"], "target": m["target"],
                          "chunks": [{"id": i, "length": n} for i, n in m["chunks"] or []]}
    return out


def default_dataset(st: Store, path) -> str:
    """The dataset ``status`` compares ``path`` with when no name is given: the one whose
    latest version was snapshotted from ``path`` (the most recent, if several were), else
    the store's only dataset."""
    src = os.path.abspath(os.fspath(path))
    names = st.list_names(KIND)
    latest_of = [v for v in (latest(st, n) for n in names) if v is not None]
    mine = [v for v in latest_of if v.record.get("source") == src]
    if mine:
        return max(mine, key=lambda v: v.created).name
    if len(latest_of) == 1:
        return latest_of[0].name
    if not latest_of:
        raise ValueError(f"the store {st.root!r} has no datasets; snapshot {src!r} first")
    raise ValueError(f"no dataset was snapshotted from {src!r}; give the dataset NAME "
                     f"(datasets: {', '.join(v.name for v in latest_of)})")
