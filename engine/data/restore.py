"""``checkout``: rebuild a version's files byte for byte, never writing outside ``dest``."""

from __future__ import annotations

import os
import re
import stat
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


#: Names of checkout's temporaries (``.NAME.<8 hex>.mlops-tmp`` for files,
#: ``NAME.<8 hex>.mlops-tmp`` for links): a killed checkout may leave them behind, and the
#: next checkout into the same directories removes them.
TMP_NAME = re.compile(r".+\.[0-9a-f]{8}\.mlops-tmp$")


def _plan_dirs(dest_real: str, rels: list[str], link_rels: set[str]) -> tuple[list[str], list[str]]:
    """Check, before anything is written, every directory the paths ``rels`` need under
    ``dest_real``; returns ``(missing, existing)`` directories (absolute, parents first).

    Each component must be missing or a real directory on disk: a symlink found in
    ``dest`` is never followed (wherever it points), a file in the way is an error, and a
    manifest holding both a symlink and paths under it is refused. Nothing is created or
    opened here, so a refusal leaves the disk as it was.
    """
    state: dict[str, bool] = {}  # relative dir -> exists on disk
    missing, existing = [], [dest_real]
    for rel in rels:
        cur = ""
        for comp in rel.split("/")[:-1]:
            cur = comp if not cur else f"{cur}/{comp}"
            if cur in state:
                continue
            if cur in link_rels:
                raise ValueError(f"refusing to write {rel!r}: the version also holds {cur!r} as "
                                 "a symlink, and checkout never writes through a link")
            p = os.path.join(dest_real, *cur.split("/"))
            parent_exists = state.get(cur.rpartition("/")[0], True) if "/" in cur else True
            if not parent_exists:
                state[cur] = False
                missing.append(p)
                continue
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                state[cur] = False
                missing.append(p)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise ValueError(f"refusing to write {rel!r}: {cur!r} in dest is a symlink (to "
                                 f"{os.readlink(p)!r}); checkout never follows a link it finds "
                                 "in dest, since it could lead outside dest")
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(f"cannot write {rel!r}: {p!r} exists and is not a "
                                         "directory")
            state[cur] = True
            existing.append(p)
    return missing, existing


def _remove_leftovers(dirs: list[str]) -> None:
    """Remove the temporaries a killed checkout left in ``dirs`` (never following links)."""
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            if TMP_NAME.match(n):
                p = os.path.join(d, n)
                try:
                    if not stat.S_ISDIR(os.lstat(p).st_mode):
                        os.unlink(p)
                except OSError:
                    pass


def checkout(ref, dest, *, store=None, paths=None, progress: bool | None = None,
             workers: int | None = None) -> CheckoutResult:
    """Write the files of version ``ref`` under ``dest``.

    Every chunk is checked against its id while it is written, and each file is
    written to a temporary name and renamed into place, so a file is either old or
    complete, never torn. Existing files at the same paths are replaced; other files
    in ``dest`` are left alone. Manifest paths that are absolute, contain ``..``
    or appear twice are rejected before anything is written; nothing is created,
    opened or followed outside ``dest``: a symlink found in ``dest`` on the way to
    a path is never followed, and the version's own links are made last. The
    temporaries of an earlier, killed checkout in the directories written to
    are removed.

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
    if len(set(cols["path"])) != len(cols["path"]):
        seen: set = set()
        dup = next(p for p in cols["path"] if p in seen or seen.add(p))
        raise ValueError(f"manifest of {label} holds the path {dup!r} twice; refusing it")
    chosen = sorted(_select(cols["path"], paths))
    dest = os.path.abspath(os.fspath(dest))
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise NotADirectoryError(f"dest exists and is not a directory: {dest!r}")
    files = [i for i in chosen if cols["kind"][i] == "file"]
    links = [i for i in chosen if cols["kind"][i] == "symlink"]
    link_rels = {cols["path"][i] for i in range(len(cols["path"]))
                 if cols["kind"][i] == "symlink"}
    os.makedirs(dest, exist_ok=True)
    dest_real = os.path.realpath(dest)
    missing, existing = _plan_dirs(dest_real, [cols["path"][i] for i in files + links], link_rels)
    _remove_leftovers(existing)
    for d in missing:  # parents first; none of them existed, so none is a link
        try:
            os.mkdir(d)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(d).st_mode):
                raise ValueError(f"refusing to write under {d!r}: it appeared during the "
                                 "checkout and is not a directory") from None
    total = sum(cols["size"][i] for i in files)
    # One vectorized index lookup for every chunk of the checkout.
    all_ids = [ch["id"] for i in files for ch in cols["chunks"][i]]
    refs = iter(st.locate_many(all_ids)) if all_ids else iter(())
    file_refs = {i: [next(refs) for _ in cols["chunks"][i]] for i in files}
    def write_file(i: int) -> int:
        rel = cols["path"][i]
        target = os.path.join(dest_real, *rel.split("/"))
        parent = os.path.dirname(target)
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
        target = os.path.join(dest_real, *rel.split("/"))
        tmp = target + f".{uuid.uuid4().hex[:8]}.mlops-tmp"
        os.symlink(cols["target"][i], tmp)
        try:
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)  # never leave a stray link (it may point outside dest)
            raise
    return dest, len(files), len(links), total
