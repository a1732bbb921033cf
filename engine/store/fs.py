"""File-system layer of the store: atomic writes, put-if-absent, listing, ranged reads.

Two implementations share one interface:

* :class:`LocalFS` for local and mounted cluster file systems (Lustre, GPFS, NFS).
  It calls ``os`` directly, because durability needs ``fsync`` of files and
  directories, which ``pyarrow.fs`` does not expose. Writes go to a temporary name in
  the same directory, are fsynced, and are published by ``rename`` (atomic replace)
  or ``link`` (atomic put-if-absent: it fails if the name exists). Then the
  directory is fsynced.
* :class:`ArrowFS` for any other ``pyarrow.fs`` URI (``s3://``, ``gs://``, ...).
  An object store's PUT is atomic by itself. Put-if-absent there needs a conditional
  PUT, which ``pyarrow.fs`` does not offer, so it is a check then a write; see
  docs/architecture.md.

Paths are POSIX-style keys relative to the store root.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator

TMP_DIR = "tmp"


def _tmp_name(key: str) -> str:
    d, _, base = key.rpartition("/")
    return f"{d}/.{base}.{uuid.uuid4().hex[:12]}.tmp" if d else f".{base}.{uuid.uuid4().hex[:12]}.tmp"


class LocalFS:
    """The store's files on a local or mounted POSIX file system."""

    local = True

    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    def path(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/")) if key else self.root

    def fsync_dir(self, key: str) -> None:
        try:
            fd = os.open(self.path(key), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:  # some file systems refuse fsync on directories
            pass
        finally:
            os.close(fd)

    def makedirs(self, key: str) -> None:
        os.makedirs(self.path(key), exist_ok=True)

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
        self.makedirs(d)
        tmp = self.path(_tmp_name(key))
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
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
        exists, also over NFSv3+ and Lustre).
        """
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

    def _create_excl_fallback(self, key: str, data: bytes) -> bool:
        try:
            fd = os.open(self.path(key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
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
    """The store's files on any ``pyarrow.fs`` file system (S3, GCS, HDFS, ...)."""

    local = False

    def __init__(self, filesystem, base: str):
        self.fs = filesystem
        self.root = base.rstrip("/")

    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def fsync_dir(self, key: str) -> None:  # object stores are durable on PUT
        pass

    def makedirs(self, key: str) -> None:
        self.fs.create_dir(self.path(key), recursive=True)

    def exists(self, key: str) -> bool:
        from pyarrow.fs import FileType

        return self.fs.get_file_info(self.path(key)).type != FileType.NotFound

    def read_bytes(self, key: str) -> bytes:
        with self.fs.open_input_stream(self.path(key)) as f:
            return f.read()

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        with self.fs.open_input_file(self.path(key)) as f:
            return f.read_at(length, offset)

    def size(self, key: str) -> int:
        return self.fs.get_file_info(self.path(key)).size

    def mtime(self, key: str) -> float:
        return self.fs.get_file_info(self.path(key)).mtime.timestamp()

    def write_atomic(self, key: str, data: bytes, fsync: bool = True) -> None:
        self.makedirs(key.rpartition("/")[0])
        tmp = self.path(_tmp_name(key))
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        self.fs.move(tmp, self.path(key))

    def create_exclusive(self, key: str, data: bytes) -> bool:
        if self.exists(key):
            return False
        self.write_atomic(key, data)
        return True

    def list(self, key: str) -> list[str]:
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
        self.makedirs(dst.rpartition("/")[0])
        self.fs.move(self.path(src), self.path(dst))


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
