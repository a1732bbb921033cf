"""``checkout``: rebuild a version's files byte for byte, never writing outside ``dest``."""

from __future__ import annotations

import os
import re
import stat
import unicodedata
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
#: The mode bits checkout sets: never set-user-ID or set-group-ID, which would let whoever
#: can write the store plant a program that runs as the user who checks it out.
SAFE_MODE = 0o7777 & ~(stat.S_ISUID | stat.S_ISGID)


def _plan_dirs(dest_real: str, rels: list[str], link_rels: set[str]) -> tuple[list[str], list[str]]:
    """Check, before anything is written, every directory the paths ``rels`` need under
    ``dest_real``; returns ``(missing, existing)`` directories (absolute, parents first).

    Each component must be missing or a real directory on disk: a symlink found in
    ``dest`` is never followed (wherever it points), a file in the way is an error, and a
    manifest holding both a symlink and paths under it is refused. A path itself must not
    be a directory in ``dest`` (a rename onto it would fail half-way). Nothing is created
    or opened here, so a refusal leaves the disk as it was.
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
        parent = rel.rpartition("/")[0]
        if state.get(parent, True) if parent else True:
            p = os.path.join(dest_real, *rel.split("/"))
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                raise ValueError(f"refusing to write {rel!r}: {p!r} exists in dest and is a "
                                 "directory (checkout replaces files and links, never a "
                                 "directory)")
    return missing, existing


def _check_tree(paths: list[str], kinds: list[str], label: str) -> None:
    """Refuse a manifest whose paths do not form a tree: a path that is a file or link and
    also a directory of another path (``a`` and ``a/b``) could only be written half-way."""
    entries = dict(zip(paths, kinds))
    for p in paths:
        cur = p
        while "/" in cur:
            cur = cur.rpartition("/")[0]
            kind = entries.get(cur)
            if kind == "symlink":
                raise ValueError(f"refusing to write {p!r}: the version also holds {cur!r} as "
                                 "a symlink, and checkout never writes through a link")
            if kind is not None:
                raise ValueError(f"manifest of {label} holds {cur!r} both as a {kind} and as "
                                 f"the directory of {p!r}; refusing it")


def _fold(name: str) -> str:
    """How file systems that ignore case compare names (case and Unicode normalization)."""
    if name.isascii():
        return name.lower()
    return unicodedata.normalize("NFC", name).casefold()


def case_collisions(paths: list[str]) -> list[tuple[str, str, str]]:
    """``(directory, name, other name)`` for each two names of ``paths`` in one directory
    that differ but compare equal ignoring case (``A.txt`` and ``a.txt``)."""
    # every path and every directory on the way (each once): two of them fold to one
    # exactly when two names in one directory do, at the first component they differ in
    entries: set[str] = set()
    for rel in paths:
        while rel and rel not in entries:
            entries.add(rel)
            rel = rel.rpartition("/")[0]
    if len({_fold(e) for e in entries}) == len(entries):
        return []
    seen: dict[tuple[str, str], str] = {}
    done: set[tuple[str, str]] = set()  # (directory, name) already looked at
    out = []
    for rel in paths:
        parent = ""
        for name in rel.split("/"):
            if (parent, name) not in done:
                done.add((parent, name))
                other = seen.setdefault((parent, _fold(name)), name)
                if other != name:
                    out.append((parent, other, name))
            parent = f"{parent}/{name}" if parent else name
    return out


def folds_case(directory: str) -> bool | None:
    """Whether ``directory`` ignores case in names: True, False, or None when it holds no
    entry to tell by. Read-only: an entry's name with its case swapped is looked up."""
    try:
        with os.scandir(directory) as it:
            for n, entry in enumerate(it):
                if n >= 256:
                    break
                swapped = entry.name.swapcase()
                if swapped == entry.name:
                    continue
                try:
                    other = os.lstat(os.path.join(directory, swapped))
                except FileNotFoundError:
                    return False
                except OSError:
                    continue
                mine = entry.stat(follow_symlinks=False)
                return (other.st_dev, other.st_ino) == (mine.st_dev, mine.st_ino)
    except OSError:
        return None
    return None


def _dest_folds_case(path: str) -> bool | None:
    """Whether names written at ``path`` (a directory, possibly not made yet) ignore case:
    asked of the nearest existing directory, else of its name in its parent, up the same
    file system; None if nothing tells."""
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    found = folds_case(path)
    if found is not None:
        return found
    dev = os.lstat(path).st_dev
    while True:
        parent = os.path.dirname(path)
        if parent == path or os.lstat(parent).st_dev != dev:
            return None  # the root of its file system: nothing left to tell by
        name = os.path.basename(path)
        if name.swapcase() != name:
            try:
                other = os.lstat(os.path.join(parent, name.swapcase()))
            except FileNotFoundError:
                return False
            except OSError:
                return None
            mine = os.lstat(path)
            return (other.st_dev, other.st_ino) == (mine.st_dev, mine.st_ino)
        path = parent


def _check_names(dest_real: str, rels: list[str], label: str,
                 links: list[tuple[str, str]] = ()) -> None:
    """Refuse, before any write, names the destination cannot hold: a component longer than
    its ``NAME_MAX``, a path longer than its ``PATH_MAX``, a symlink ``(path, target)`` of
    ``links`` whose target is that long, and two names that differ only in case where its
    file system ignores case (one would overwrite the other)."""
    probe = dest_real
    while not os.path.isdir(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    try:
        name_max = os.pathconf(probe, "PC_NAME_MAX")
        path_max = os.pathconf(probe, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    base = len(os.fsencode(dest_real)) + 1
    for rel in rels:
        size = len(rel.encode())
        for comp in rel.split("/") if size > name_max else ():
            if len(comp.encode()) > name_max:
                raise ValueError(f"refusing to write {rel!r}: its name {comp[:40]!r}... is "
                                 f"{len(comp.encode())} bytes, more than the {name_max} the "
                                 "file system of dest allows")
        if base + size + TMP_EXTRA >= path_max:
            raise ValueError(f"refusing to write {rel[:80]!r}...: under {dest_real!r} its path "
                             f"is longer than the {path_max} bytes the system allows")
    for rel, target in links:
        if len(target.encode()) >= path_max:
            raise ValueError(f"refusing to write {rel!r}: its symlink target is "
                             f"{len(target.encode())} bytes, more than the {path_max} the "
                             "system allows")
    for parent, a, b in case_collisions(rels):
        folds = _dest_folds_case(os.path.join(dest_real, *parent.split("/")) if parent
                                 else dest_real)
        if folds is not False:
            where = f"{parent}/" if parent else ""
            why = ("ignores case" if folds else
                   "may ignore case (nothing in it tells whether it does)")
            raise ValueError(f"refusing to check out {label}: it holds {where}{a!r} and "
                             f"{where}{b!r}, which differ only in case, and the file system "
                             f"of dest {why}: one would overwrite the other")


#: Bytes a temporary's name adds to the name it stands for (``.`` ``.<8 hex>.mlops-tmp``).
TMP_EXTRA = 20


def _tmp_path(target: str, hidden: bool) -> str:
    """A temporary beside ``target`` (matching :data:`TMP_NAME`), its name cut to fit."""
    parent, name = os.path.split(target)
    suffix = f".{uuid.uuid4().hex[:8]}.mlops-tmp"
    keep = 255 - TMP_EXTRA
    while len(name.encode()) > keep:
        name = name[:-1]
    return os.path.join(parent, ("." if hidden else "") + name + suffix)


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
    in ``dest`` are left alone. The temporaries of an earlier, killed checkout in the
    directories written to are removed.

    A manifest comes from the store, and whoever can write the store can craft one, so
    it is checked whole before anything is written (``ValueError`` naming the path;
    exit code 2 in the CLI), and a refused checkout leaves the disk as it was, ``dest``
    included: paths that are absolute, contain ``.``, ``..``, an empty component, a NUL
    or a backslash, appear twice, or are a file or link and also the directory of
    another path; a name longer than the file system's ``NAME_MAX`` or a path longer
    than ``PATH_MAX``; a directory of ``dest`` on the way to a path that is a symlink
    (whoever made it, an earlier checkout included: checkout never follows a link it
    finds in ``dest``) or a file, and a path that is a directory in ``dest``; entries
    that are neither files nor symlinks (a manifest that describes a device, fifo or
    socket is damaged: :class:`StoreCorruption`, exit code 3).

    Names that differ only in case (``A.txt`` and ``a.txt`` in one directory) are
    refused when the file system of ``dest`` ignores case, where one would overwrite
    the other, or when it cannot be told whether it does. It is asked read-only: the
    nearest existing directory is looked up under an entry's name with its case
    swapped. On file systems that respect case (ext4, XFS, Lustre, GPFS, and NFS
    exports of them), such a version checks out as it was snapshotted, so a tree that
    could be snapshotted can be checked out again.

    Nothing is created, opened or followed outside ``dest``, and the version's own
    links are made last. Files get their recorded permission bits, except set-user-ID
    and set-group-ID, which checkout never sets (a crafted manifest could otherwise
    plant a program that runs as whoever checks it out).

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
        try:
            check_safe_path(p)
        except (ValueError, StoreCorruption) as exc:
            raise type(exc)(f"manifest of {label}: {exc}") from None
    if len(set(cols["path"])) != len(cols["path"]):
        seen: set = set()
        dup = next(p for p in cols["path"] if p in seen or seen.add(p))
        raise ValueError(f"manifest of {label} holds the path {dup!r} twice; refusing it")
    for p, kind in zip(cols["path"], cols["kind"]):
        if kind not in ("file", "symlink"):  # from_bytes refuses these; a table built in memory
            raise ValueError(f"manifest of {label} holds {p!r} of kind {kind!r}; checkout "
                             "writes only files and symlinks (never devices, fifos or sockets)")
    _check_tree(cols["path"], cols["kind"], label)
    chosen = sorted(_select(cols["path"], paths))
    dest = os.path.abspath(os.fspath(dest))
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise NotADirectoryError(f"dest exists and is not a directory: {dest!r}")
    files = [i for i in chosen if cols["kind"][i] == "file"]
    links = [i for i in chosen if cols["kind"][i] == "symlink"]
    link_rels = {cols["path"][i] for i in range(len(cols["path"]))
                 if cols["kind"][i] == "symlink"}
    dest_real = os.path.realpath(dest)
    rels = [cols["path"][i] for i in files + links]
    _check_names(dest_real, rels, label, [(cols["path"][i], cols["target"][i]) for i in links])
    missing, existing = _plan_dirs(dest_real, rels, link_rels)
    total = sum(cols["size"][i] for i in files)
    # One vectorized index lookup for every chunk of the checkout (a chunk the store lacks
    # is refused here, before anything is written).
    all_ids = [ch["id"] for i in files for ch in cols["chunks"][i]]
    refs = iter(st.locate_many(all_ids)) if all_ids else iter(())
    file_refs = {i: [next(refs) for _ in cols["chunks"][i]] for i in files}
    # every check is done: from here on, writes
    os.makedirs(dest_real, exist_ok=True)
    _remove_leftovers(existing)
    for d in missing:  # parents first; none of them existed, so none is a link
        try:
            os.mkdir(d)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(d).st_mode):
                raise ValueError(f"refusing to write under {d!r}: it appeared during the "
                                 "checkout and is not a directory") from None

    def write_file(i: int) -> int:
        rel = cols["path"][i]
        target = os.path.join(dest_real, *rel.split("/"))
        tmp = _tmp_path(target, hidden=True)
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
                os.fchmod(fd, cols["mode"][i] & SAFE_MODE)
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
        tmp = _tmp_path(target, hidden=False)
        os.symlink(cols["target"][i], tmp)
        try:
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)  # never leave a stray link (it may point outside dest)
            raise
    return dest, len(files), len(links), total
