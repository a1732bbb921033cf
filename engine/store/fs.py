"""File-system layer of the store: atomic writes, put-if-absent, listing, ranged reads.

Two implementations share one interface:

* :class:`LocalFS` for local and mounted cluster file systems (Lustre, GPFS, NFS).
  It calls ``os`` directly, because durability needs ``fsync`` of files and
  directories, which ``pyarrow.fs`` does not expose. Writes go to a temporary file in
  the same directory (an unnamed ``O_TMPFILE`` where the file system has them), are
  fsynced, and are published by ``rename`` (atomic replace) or ``link`` (atomic
  put-if-absent: it fails if the name exists). Then the directory is fsynced. A
  directory created on the way is made durable in its parent before anything is
  published in it.
* :class:`ArrowFS` for any other ``pyarrow.fs`` URI (``s3://``, ``gs://``, ...).
  An object store's PUT is atomic by itself. Put-if-absent there needs a conditional
  PUT, which ``pyarrow.fs`` does not offer: on S3 it is sent through boto3
  (:mod:`.s3`, ``If-None-Match: *``), and where it cannot be sent the store refuses
  to write rather than race; see docs/object-storage.md.

Paths are POSIX-style keys relative to the store root.
"""

from __future__ import annotations

import errno
import os
import stat
import uuid
from collections.abc import Iterator

TMP_DIR = "tmp"
# Linux's O_TMPFILE (an unnamed file in a directory); 0 where the platform has none.
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)


def datasync(fd: int) -> None:
    """Make a file's bytes and size durable (``fdatasync``; ``fsync`` where there is none).

    Every file the store syncs is new and about to be published, so what must survive
    a crash is its data and the size and block map that find it, which is what
    ``fdatasync`` writes; its timestamps are not needed. (On ext4 and XFS a new
    file's ``fdatasync`` commits the same journal transaction as ``fsync``: the
    saving is on file systems that would also flush timestamps.) ``os`` is looked up
    at call time, so tests that replace ``os.fdatasync`` see every call.
    """
    sync = getattr(os, "fdatasync", None)
    (sync or os.fsync)(fd)


def _tmp_name(key: str) -> str:
    d, _, base = key.rpartition("/")
    return f"{d}/.{base}.{uuid.uuid4().hex[:12]}.tmp" if d else f".{base}.{uuid.uuid4().hex[:12]}.tmp"


class LocalFS:
    """The store's files on a local or mounted POSIX file system.

    A store whose root directory is group-writable is *shared* (one project directory
    of a cluster, many users): every directory made in it gets the root's group and
    its group and other permission bits, plus set-group-ID so that what others create
    there keeps the group; every file gets the root's group and its group and other
    read/write bits, whatever the writer's umask. A store root this class creates
    takes those bits from the nearest existing directory above it. A root that is not
    group-writable is a one-user store: files and directories get the writer's umask.
    """

    local = True

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self._unnamed = bool(_O_TMPFILE)  # False once O_TMPFILE + link failed here
        self._share: tuple | bool | None = None  # (file mode, dir mode, gid), False, or unknown

    def _shared(self) -> tuple | None:
        """(file mode, directory mode, gid) of a shared store; None for a one-user store."""
        if self._share is None:
            try:
                st = os.stat(self.root)
            except FileNotFoundError:
                return None  # not made yet: ask again later
            self._share = _share_modes(st) or False
        return self._share or None

    def adopt(self, fd: int) -> None:
        """Give a file this process just created the shared store's group and modes (a
        no-op in a one-user store). Every file the store writes passes here."""
        share = self._shared()
        if share is None:
            return
        fmode, _, gid = share
        try:
            os.fchown(fd, -1, gid)  # usually inherited already (set-group-ID directories)
        except PermissionError:
            pass
        os.fchmod(fd, fmode)

    def _adopt_dir(self, path: str, share: tuple | None) -> None:
        if share is None:
            return
        _, dmode, gid = share
        try:
            os.chown(path, -1, gid)
        except PermissionError:
            pass
        try:
            os.chmod(path, dmode)
        except PermissionError:  # another user's directory made in the same moment
            pass

    def path(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/")) if key else self.root

    def fsync_dir(self, key: str) -> None:
        """Make the names in directory ``key`` (renames, links, new files) durable."""
        self._fsync_path(self.path(key))

    def makedirs(self, key: str, durable: bool = True) -> None:
        """Create directory ``key`` and its missing parents.

        ``durable`` (the default): every directory found missing is also made durable
        in its parent (the parent is fsynced), so that a file published in it and
        fsynced with its directory survives a crash together with the path that leads
        to it. Directories are made rarely (a store, ``packs/xx/``, a log shard, a
        dataset name), so this costs one fsync each, once; a directory that exists
        costs one ``stat``. When another writer creates the same directory at the
        same time, the parent is fsynced anyway: this writer cannot know whether the
        other one got that far. It is the default so that a directory made earlier
        without it (only writes that skip fsync skip it) cannot hide from a later
        durable write, which would see that it exists.
        """
        path = self.path(key)
        if not durable:
            if not os.path.isdir(path):
                self._makedirs_quick(path)
            return
        missing = []
        while not os.path.isdir(path):
            missing.append(path)
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
        for p in reversed(missing):  # top down: each parent exists before its child
            try:
                os.mkdir(p)
            except FileExistsError:
                if not os.path.isdir(p):  # a file in the way: as os.makedirs says
                    raise
            else:
                self._adopt_new_dir(p)
            self._fsync_path(os.path.dirname(p))

    def _adopt_new_dir(self, p: str) -> None:
        """Modes of a directory just made: the root's (a new root: its parent's)."""
        if p == self.root or not p.startswith(self.root + os.sep):
            share = _share_modes(os.stat(os.path.dirname(p)))  # the root or above it
            if p == self.root:
                self._share = None  # decided again from the root's new modes
        else:
            share = self._shared()
        self._adopt_dir(p, share)

    def _makedirs_quick(self, path: str) -> None:
        parent = os.path.dirname(path)
        if parent != path and not os.path.isdir(parent):
            self._makedirs_quick(parent)
        try:
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
            return
        self._adopt_new_dir(path)

    def _fsync_path(self, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:  # some file systems refuse fsync on directories
            pass
        finally:
            os.close(fd)

    def exists(self, key: str) -> bool:
        return os.path.exists(self.path(key))

    def read_bytes(self, key: str) -> bytes:
        with open(self.path(key), "rb") as f:
            return f.read()

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        with open(self.path(key), "rb") as f:
            return os.pread(f.fileno(), length, offset)

    def size(self, key: str) -> int:
        return os.stat(self.path(key)).st_size

    def mtime(self, key: str) -> float:
        return os.stat(self.path(key)).st_mtime

    def _write_temp(self, key: str, data: bytes, fsync: bool) -> tuple[str, str]:
        """Write ``data`` to a temporary file beside ``key``; returns (dir key, temp path)."""
        d = key.rpartition("/")[0]
        self.makedirs(d, durable=fsync)
        tmp = self.path(_tmp_name(key))
        try:
            with open(tmp, "wb") as f:
                self.adopt(f.fileno())
                f.write(data)
                if fsync:
                    f.flush()
                    datasync(f.fileno())
        except BaseException:
            _unlink_quiet(tmp)
            raise
        return d, tmp

    def write_atomic(self, key: str, data: bytes, fsync: bool = True) -> None:
        """Publish ``data`` under ``key``, replacing any old content atomically."""
        d, tmp = self._write_temp(key, data, fsync)
        try:
            os.replace(tmp, self.path(key))
        except BaseException:
            _unlink_quiet(tmp)
            raise
        if fsync:
            self.fsync_dir(d)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Put-if-absent: publish ``data`` under ``key`` only if no file has that name.

        Returns False (and changes nothing) if ``key`` exists. The content is
        complete and durable before the name appears: written to a temporary file,
        fsynced, then hard-linked to ``key`` (``link`` fails atomically if the name
        exists, also over NFSv3+ and Lustre); then the directory is fsynced, which
        makes the name durable. Where the file system has ``O_TMPFILE`` (Linux: ext4,
        XFS, btrfs, tmpfs) the temporary has no name at all: the same two fsyncs,
        without creating and removing a temporary name (a quarter of a small commit's
        time here), and a crash leaves no temporary behind.
        """
        if self._unnamed:
            self.makedirs(key.rpartition("/")[0])
            done = self._create_unnamed(key, data)
            if done is not None:
                return done
            self._unnamed = False  # not on this file system: do not pay for the attempt again
        d, tmp = self._write_temp(key, data, fsync=True)
        try:
            try:
                os.link(tmp, self.path(key))
            except FileExistsError:
                return False
            except OSError as exc:  # file systems without hard links: O_EXCL create
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                return self._create_excl_fallback(key, data)
        finally:
            _unlink_quiet(tmp)
        self.fsync_dir(d)
        return True

    def _create_unnamed(self, key: str, data: bytes) -> bool | None:
        """Put-if-absent through an ``O_TMPFILE``: None where the file system (or a
        missing ``/proc``) does not allow it, so that the caller uses a named temporary.

        The unnamed file is written and fdatasynced, then linked to ``key`` through
        ``/proc/self/fd`` (``linkat`` with ``AT_SYMLINK_FOLLOW``, which needs no
        privilege, unlike ``AT_EMPTY_PATH``); ``linkat`` fails atomically if ``key``
        exists. A crash before the link leaves an orphan inode that the file system
        frees on its next mount, never a visible file.
        """
        d, base = key.rpartition("/")[::2]
        try:
            # 0o666 less the umask, as the named temporary's open(..., "wb") gets
            fd = os.open(self.path(d), os.O_WRONLY | _O_TMPFILE, 0o666)
        except FileNotFoundError:
            raise
        except OSError:  # EOPNOTSUPP, EISDIR (kernels before 3.11), NFS, Lustre ...
            return None
        try:
            self.adopt(fd)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            datasync(fd)
            dfd = os.open(self.path(d), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                try:
                    os.link(f"/proc/self/fd/{fd}", base, dst_dir_fd=dfd, follow_symlinks=True)
                except FileExistsError:
                    return False
                except OSError:  # no /proc: the named temporary works everywhere
                    return None
                try:
                    os.fsync(dfd)  # the name is durable: the commit is made
                except OSError:  # some file systems refuse fsync on directories
                    pass
            finally:
                os.close(dfd)
        finally:
            os.close(fd)
        return True

    def _create_excl_fallback(self, key: str, data: bytes) -> bool:
        try:
            fd = os.open(self.path(key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            self.adopt(fd)
            f.write(data)
            f.flush()
            datasync(f.fileno())
        return True

    def list(self, key: str) -> list[str]:
        """Names in directory ``key`` (empty if it does not exist)."""
        try:
            return sorted(os.listdir(self.path(key)))
        except FileNotFoundError:
            return []

    def walk_files(self, key: str) -> Iterator[str]:
        base = self.path(key)
        for dirpath, _dirs, files in os.walk(base):
            rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            for f in files:
                yield f"{rel}/{f}" if rel != "." else f

    def delete(self, key: str) -> None:
        _unlink_quiet(self.path(key))

    def rename(self, src: str, dst: str) -> None:
        self.makedirs(dst.rpartition("/")[0])
        os.replace(self.path(src), self.path(dst))


class ArrowFS:
    """The store's files on any ``pyarrow.fs`` file system (S3, GCS, HDFS, ...).

    On an object store (S3, GCS, Azure Blob) a PUT is atomic by itself and a
    "directory" is only a key prefix: :meth:`write_atomic` is one PUT of the object
    (no temporary to copy and delete) and :meth:`makedirs` makes nothing. Put-if-absent
    (:meth:`create_exclusive`) is a conditional PUT on S3 (:mod:`.s3`, through boto3),
    a hard link on pyarrow's local file system, and a refusal anywhere else, never a
    check then a write (see docs/object-storage.md).
    """

    local = False
    #: ``pyarrow.fs`` type names of object stores: atomic PUTs, no directories
    OBJECT_STORES = frozenset({"s3", "gcs", "abfs"})

    def __init__(self, filesystem, base: str):
        self.fs = filesystem
        self.root = base.rstrip("/")
        under, _ = self.underlying()
        #: True on S3, GCS, Azure: a PUT is atomic, directories are key prefixes
        self.object_store = under.type_name in self.OBJECT_STORES
        self._exclusive = None  # the put-if-absent of this file system, made on first use

    def underlying(self):
        """``(file system, path prefix)`` beneath any ``SubTreeFileSystem`` wrappers: a
        path ``p`` of :attr:`fs` is ``prefix + p`` there."""
        fs, prefix = self.fs, ""
        while fs.type_name == "subtree":
            prefix = fs.base_path.rstrip("/") + "/" + prefix
            fs = fs.base_fs
        return fs, prefix

    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def fsync_dir(self, key: str) -> None:  # object stores are durable on PUT
        pass

    def makedirs(self, key: str, durable: bool = True) -> None:
        if not self.object_store:  # an object store has no directories to make
            self.fs.create_dir(self.path(key), recursive=True)

    def exists(self, key: str) -> bool:
        from pyarrow.fs import FileType

        return self.fs.get_file_info(self.path(key)).type != FileType.NotFound

    def _info(self, key: str):
        from pyarrow.fs import FileType

        info = self.fs.get_file_info(self.path(key))
        if info.type == FileType.NotFound:  # as os.stat: lease checks rely on it
            raise FileNotFoundError(f"no such file: {self.path(key)!r}")
        return info

    def read_bytes(self, key: str) -> bytes:
        with self.fs.open_input_stream(self.path(key)) as f:
            return f.read()

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        with self.fs.open_input_file(self.path(key)) as f:
            return f.read_at(length, offset)

    def size(self, key: str) -> int:
        return self._info(key).size

    def mtime(self, key: str) -> float:
        return self._info(key).mtime.timestamp()

    def write_atomic(self, key: str, data: bytes, fsync: bool = True) -> None:
        """Publish ``data`` under ``key``, replacing any old content atomically."""
        if self.object_store:  # a PUT replaces an object whole: readers see old or new
            with self.fs.open_output_stream(self.path(key)) as f:
                f.write(data)
            return
        self.makedirs(key.rpartition("/")[0])
        tmp = self.path(_tmp_name(key))
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        self.fs.move(tmp, self.path(key))

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Put-if-absent: publish ``data`` under ``key`` only if nothing has that name;
        False (nothing changed) if something has.

        S3: one ``PutObject`` with ``If-None-Match: *`` through boto3 (:mod:`.s3`), which
        refuses with :class:`~engine.store.s3.ConditionalWriteUnsupported` where the
        server ignores the header or boto3 is missing. pyarrow's local file system: the
        hard link of :class:`LocalFS`. Any other file system: that refusal, because a
        check then a write would let two writers both take one commit number.
        """
        if self._exclusive is None:
            self._exclusive = self._put_if_absent()
        return self._exclusive(key, data)

    def _put_if_absent(self):
        from pyarrow.fs import LocalFileSystem, S3FileSystem

        under, prefix = self.underlying()
        if isinstance(under, S3FileSystem):
            from .s3 import ConditionalPut

            put = ConditionalPut(under, prefix + self.root.lstrip("/"))
            return lambda key, data: put.put(prefix + self.path(key).lstrip("/"), data)
        if isinstance(under, LocalFileSystem):
            return LocalFS(prefix + self.root if prefix else self.root).create_exclusive

        def refuse(key: str, data: bytes) -> bool:
            from .s3 import refusal

            raise refusal(f"mlops-engine sends them to S3 only (through boto3), and the "
                          f"store {self.root!r} is on a pyarrow.fs {under.type_name!r} file "
                          "system; use an s3:// store or a local or mounted path")

        return refuse

    def list(self, key: str) -> list[str]:
        """Names in directory ``key`` (empty if it does not exist)."""
        from pyarrow.fs import FileSelector

        try:
            infos = self.fs.get_file_info(FileSelector(self.path(key), allow_not_found=True))
        except FileNotFoundError:
            return []
        return sorted(i.base_name for i in infos)

    def walk_files(self, key: str) -> Iterator[str]:
        from pyarrow.fs import FileSelector, FileType

        infos = self.fs.get_file_info(FileSelector(self.path(key), recursive=True, allow_not_found=True))
        for i in infos:
            if i.type == FileType.File:
                yield i.path[len(self.root) + 1:]

    def delete(self, key: str) -> None:
        try:
            self.fs.delete_file(self.path(key))
        except FileNotFoundError:
            pass

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` (on S3 a server-side copy, then a delete of ``src``:
        ``dst`` appears whole)."""
        self.makedirs(dst.rpartition("/")[0])
        self.fs.move(self.path(src), self.path(dst))


def _share_modes(st: os.stat_result) -> tuple | None:
    """(file mode, directory mode, gid) that a group-writable directory ``st`` hands down;
    None when it is not group-writable."""
    if not st.st_mode & stat.S_IWGRP:
        return None
    g, o = st.st_mode & 0o070, st.st_mode & 0o007
    return 0o600 | (g & 0o060) | (o & 0o006), 0o700 | g | o | stat.S_ISGID, st.st_gid


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def open_fs(root) -> LocalFS | ArrowFS:
    """A store file system for a local path, a ``file://`` URI, any ``pyarrow.fs`` URI,
    or a ``(pyarrow.fs.FileSystem, base_path)`` pair."""
    if isinstance(root, tuple) and len(root) == 2:
        return ArrowFS(root[0], root[1])
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"store must be a path, a URI or a Store, got {type(root).__name__}")
    root = os.fspath(root)
    if "://" not in root:
        return LocalFS(root)
    if root.startswith("file://"):
        return LocalFS(root[len("file://"):])
    from pyarrow.fs import FileSystem

    fs, base = FileSystem.from_uri(root)
    return ArrowFS(fs, base)
