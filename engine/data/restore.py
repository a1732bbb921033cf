"""``checkout``: rebuild a version's files byte for byte, never writing outside ``dest``."""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass

from ..progress import Progress
from ..store import StoreCorruption
from ..store.pipeline import file_id, file_workers, read_files
from .ingest import using_store
from .manifest import check_safe_path
from .version import Version, resolve


@dataclass
class CheckoutResult:
    version: Version
    dest: str
    files: int
    links: int
    bytes: int

    def to_dict(self) -> dict:
        return {"ref": self.version.ref, "id": self.version.id, "dest": self.dest,
                "files": self.files, "links": self.links, "bytes": self.bytes}


def _select(paths_col: list[str], paths) -> set[int]:
    if paths is None:
        return set(range(len(paths_col)))
    if isinstance(paths, str):
        paths = [paths]
    chosen: set[int] = set()
    for p in paths:
        if not isinstance(p, str) or not p:
            raise ValueError(f"paths must be non-empty strings, got {p!r}")
        q = p.strip("/")
        hits = {i for i, mp in enumerate(paths_col) if mp == q or mp.startswith(q + "/")}
        if not hits:
            raise FileNotFoundError(f"path {p!r} is not in the version")
        chosen |= hits
    return chosen


def _inside(dest_real: str, path: str) -> None:
    real = os.path.realpath(path)
    if real != dest_real and not real.startswith(dest_real + os.sep):
        raise ValueError(f"refusing to write {path!r}: it resolves outside dest ({real!r})")


def checkout(ref, dest, *, store=None, paths=None, progress: bool | None = None,
             workers: int | None = None) -> CheckoutResult:
    """Write the files of version ``ref`` under ``dest``.

    Every chunk is checked against its id while it is written, and each file is
    written to a temporary name and renamed into place, so a file is either old or
    complete, never torn. Existing files at the same paths are replaced; other files
    in ``dest`` are left alone. Manifest paths that are absolute or contain ``..``
    are rejected before anything is written, and no file is written through a
    symlink that leads outside ``dest``.

    Parameters
    ----------
    ref : str or Version
        ``name:vN``, ``name@latest``, ``name`` or an id prefix.
    dest : path
        Directory to write into (created if missing).
    paths : list of str, optional
        Restore only these files or directories (paths as in the version).
    """
    with using_store(store) as st:
        return _checkout(st, ref, dest, paths, progress, workers)


def _checkout(st, ref, dest, paths, progress, workers):
    v = resolve(st, ref)
    if not isinstance(dest, (str, os.PathLike)):
        raise TypeError(f"dest must be a path, got {type(dest).__name__}")
    dest, files, links, total = checkout_manifest(st, v.manifest(), v.ref, dest, paths, progress,
                                                  workers)
    return CheckoutResult(v, dest, files, links, total)


def checkout_manifest(st, man, label: str, dest, paths=None, progress=None, workers=None):
    """Write the files of manifest ``man`` under ``dest`` (see :func:`checkout`).

    Returns ``(dest, files, links, bytes)``. ``label`` names the version in messages.
    """
    if not isinstance(dest, (str, os.PathLike)):
        raise TypeError(f"dest must be a path, got {type(dest).__name__}")
    cols = man.to_pydict()
    for p in cols["path"]:
        check_safe_path(p)
    chosen = sorted(_select(cols["path"], paths))
    dest = os.path.abspath(os.fspath(dest))
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise NotADirectoryError(f"dest exists and is not a directory: {dest!r}")
    os.makedirs(dest, exist_ok=True)
    dest_real = os.path.realpath(dest)
    files = [i for i in chosen if cols["kind"][i] == "file"]
    links = [i for i in chosen if cols["kind"][i] == "symlink"]
    total = sum(cols["size"][i] for i in files)
    # One vectorized index lookup for every chunk of the checkout.
    all_ids = [ch["id"] for i in files for ch in cols["chunks"][i]]
    refs = iter(st.locate_many(all_ids)) if all_ids else iter(())
    file_refs = {i: [next(refs) for _ in cols["chunks"][i]] for i in files}
    checked_dirs: set[str] = set()
    dir_lock = threading.Lock()

    def parent_dir(target: str) -> str:
        parent = os.path.dirname(target)
        if parent not in checked_dirs:
            with dir_lock:
                os.makedirs(parent, exist_ok=True)
                _inside(dest_real, parent)
                checked_dirs.add(parent)
        return parent

    def write_file(i: int) -> int:
        rel = cols["path"][i]
        target = os.path.join(dest, *rel.split("/"))
        parent = parent_dir(target)
        tmp = os.path.join(parent, f".{os.path.basename(target)}.{uuid.uuid4().hex[:8]}.mlops-tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                for ch, ref in zip(cols["chunks"][i], file_refs[i]):
                    data = st.read_chunk(ch["id"], ref=ref)
                    if len(data) != ch["length"]:
                        raise StoreCorruption(f"chunk {ch['id'].hex()} of {rel!r} has the wrong length")
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                pairs = ((ch["id"], ch["length"]) for ch in cols["chunks"][i])
                if file_id(pairs) != cols["file_id"][i]:
                    raise StoreCorruption(f"file {rel!r} of {label}: chunk list does not match its file id")
                os.fchmod(fd, cols["mode"][i])
                os.utime(fd, ns=(cols["mtime_ns"][i], cols["mtime_ns"][i]))
            finally:
                os.close(fd)
            os.replace(tmp, target)  # rename replaces a link itself, never writes through it
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return cols["size"][i]

    nworkers = file_workers(total, len(files), workers)
    with Progress(total, f"checkout {label}", enabled=progress) as bar:
        for _, n in read_files(files, write_file, size=lambda i: cols["size"][i], workers=nworkers):
            bar.advance(n, files=1)
    for i in links:  # links last, so no file is ever written through a link we made
        rel = cols["path"][i]
        target = os.path.join(dest, *rel.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        _inside(dest_real, os.path.dirname(target))
        tmp = target + f".{uuid.uuid4().hex[:8]}.mlops-tmp"
        os.symlink(cols["target"][i], tmp)
        os.replace(tmp, target)
    return dest, len(files), len(links), total
