"""Pack files and their sorted indexes (format version 1; see docs/formats.md).

A pack holds chunk records back to back after a 16-byte header. Each record is a
48-byte record header (chunk id, codec, raw and stored lengths) followed by the
stored payload. The index beside a pack lists every record sorted by chunk id,
in fixed 56-byte entries, and ends with a BLAKE3 of all bytes before it. A pack
counts as published only once its index exists. A pack with no index is garbage
from a crashed writer, and ``gc`` removes it.

The layouts are the same in an encrypted store (docs/encryption.md); there each
payload is sealed by ``Store.seal`` before it reaches :class:`PackWriter` (stored
length = compressed length + 28), and ``codec`` is the compression under the seal.
"""

from __future__ import annotations

import os
import struct
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

import blake3
import numpy as np

from .errors import StoreCorruption

FORMAT_VERSION = 1
PACK_MAGIC = b"MLOPSPK\0"
INDEX_MAGIC = b"MLOPSIX\0"
HEADER = struct.Struct("<8sII")  # magic, format_version, count (index) / reserved (pack)
RECORD = struct.Struct("<32sB3xII4x")  # chunk id, codec, raw length, stored length (48 bytes)
ENTRY_DTYPE = np.dtype(
    [("id", "u1", (32,)), ("offset", "<u8"), ("stored", "<u4"), ("raw", "<u4"), ("codec", "u1"),
     ("pad", "u1", (7,))]
)
assert RECORD.size == 48 and ENTRY_DTYPE.itemsize == 56
FOOTER_SIZE = 32

CODEC_RAW, CODEC_LZ4, CODEC_ZSTD = 0, 1, 2
CODEC_NAMES = {CODEC_RAW: "raw", CODEC_LZ4: "lz4", CODEC_ZSTD: "zstd"}


def pack_key(pack_id: str, ext: str) -> str:
    return f"packs/{pack_id[:2]}/{pack_id}.{ext}"


# ----------------------------------------------------------------------------- codecs

_codecs = threading.local()


def _codec(name: str):
    import pyarrow as pa

    c = getattr(_codecs, name, None)
    if c is None:
        c = pa.Codec("zstd", compression_level=3) if name == "zstd" else pa.Codec(name)
        setattr(_codecs, name, c)
    return c


def compress(raw, min_saving: float = 0.10) -> tuple[int, bytes]:
    """``(codec, payload)``: compressed only if that saves at least ``min_saving``.

    A raw payload is ``raw`` itself (bytes or a memoryview), not a copy.

    lz4 goes first as a cheap probe (about 13 GB/s on incompressible data). Only
    if lz4 saves enough is zstd tried, and the smaller payload is kept.
    """
    n = len(raw)
    if n < 64:
        return CODEC_RAW, raw
    limit = n * (1.0 - min_saving)
    lz = _codec("lz4").compress(raw, asbytes=True)
    if len(lz) > limit:
        return CODEC_RAW, raw  # no copy: the caller writes it out before the buffer changes
    zs = _codec("zstd").compress(raw, asbytes=True)
    return (CODEC_ZSTD, zs) if len(zs) < len(lz) else (CODEC_LZ4, lz)


def decompress(codec: int, payload: bytes, raw_len: int, limit: int | None = None) -> bytes:
    """The raw bytes of a stored chunk. ``raw_len`` comes from disk: with ``limit`` (the
    store's largest chunk) a larger claim is refused before anything is allocated."""
    if limit is not None and (raw_len > limit or len(payload) > limit):
        raise StoreCorruption(f"a chunk claims {max(raw_len, len(payload))} bytes, more than the "
                              f"store's largest chunk ({limit} bytes): its record is damaged")
    if codec == CODEC_RAW:
        return payload
    if codec == CODEC_LZ4:
        return _codec("lz4").decompress(payload, raw_len, asbytes=True)
    if codec == CODEC_ZSTD:
        return _codec("zstd").decompress(payload, raw_len, asbytes=True)
    raise StoreCorruption(f"unknown codec {codec}")


# ----------------------------------------------------------------------------- index


def encode_index(entries: np.ndarray) -> bytes:
    entries = np.sort(entries, order=["id"]) if len(entries) else entries
    body = HEADER.pack(INDEX_MAGIC, FORMAT_VERSION, len(entries)) + entries.tobytes()
    return body + blake3.blake3(body).digest()


def decode_index(data: bytes, name: str) -> np.ndarray:
    """Entries of an index file; :class:`StoreCorruption` naming the file if it is damaged."""
    if len(data) < HEADER.size + FOOTER_SIZE:
        raise StoreCorruption(f"index {name} is truncated ({len(data)} bytes)")
    magic, version, count = HEADER.unpack_from(data)
    if magic != INDEX_MAGIC:
        raise StoreCorruption(f"index {name} has a bad magic number")
    if version > FORMAT_VERSION:
        raise StoreCorruption(
            f"index {name} has format_version {version}, newer than this mlops-engine "
            f"supports ({FORMAT_VERSION}); upgrade mlops-engine"
        )
    expect = HEADER.size + count * ENTRY_DTYPE.itemsize + FOOTER_SIZE
    if len(data) != expect:
        raise StoreCorruption(f"index {name} is truncated: {len(data)} bytes, expected {expect}")
    body, footer = data[:-FOOTER_SIZE], data[-FOOTER_SIZE:]
    if blake3.blake3(body).digest() != footer:
        raise StoreCorruption(f"index {name} fails its checksum")
    return np.frombuffer(body, dtype=ENTRY_DTYPE, offset=HEADER.size, count=count)


# ----------------------------------------------------------------------------- writer


class PackWriter:
    """Appends chunk records to packs of at most ``max_bytes`` and publishes them.

    Each finished pack is fsynced and published (pack renamed into place, then its
    index) on a background thread, while the next pack is being written; a writer's
    only pack is published by :meth:`close` in the calling thread. Call
    :meth:`close` to finish the last pack and wait until every pack is durable.
    Nothing is visible to readers before its index is published.
    """

    def __init__(self, fs, max_bytes: int = 64 << 20):
        self.fs = fs
        self.max_bytes = max_bytes
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="mlops-pack-publish")
        self._pending: list[Future] = []
        self._file = None
        self.published: list[tuple[str, np.ndarray]] = []  # (pack id, entries)
        self.bytes_written = 0
        self._error: BaseException | None = None  # a failed background publish
        self._lock = threading.Lock()

    def _open(self):
        self.fs.makedirs("tmp")
        self._tmp = f"tmp/{uuid.uuid4().hex}.pack.tmp"
        if self.fs.local:
            self._file = open(self.fs.path(self._tmp), "wb", buffering=1 << 20)
            self.fs.adopt(self._file.fileno())  # a shared store's group and modes
        else:  # any pyarrow.fs: an output stream (a multipart upload on object stores)
            self._file = self.fs.fs.open_output_stream(self.fs.path(self._tmp))
        self._file.write(HEADER.pack(PACK_MAGIC, FORMAT_VERSION, 0))
        self._offset = HEADER.size
        self._entries: list[tuple] = []

    def add(self, chunk_id: bytes, raw_len: int, codec: int, payload: bytes) -> None:
        """Append one chunk (already deduplicated and compressed by the caller)."""
        with self._lock:
            if self._error is not None:
                # Fail fast: a pack could not be published (disk full?); writing more
                # would only fill the disk further.
                raise self._error
            if self._file is None:
                self._open()
            rec = RECORD.pack(chunk_id, codec, raw_len, len(payload))
            self._file.write(rec)
            self._file.write(payload)
            self._entries.append((chunk_id, self._offset + RECORD.size, len(payload), raw_len, codec))
            self._offset += RECORD.size + len(payload)
            self.bytes_written += RECORD.size + len(payload)
            if self._offset >= self.max_bytes:
                self._finish_pack()

    def _finish_pack(self) -> None:
        """Hand the current pack to the background thread (called holding the lock)."""
        self._pending.append(self._pool.submit(self._publish, *self._take_pack()))

    def _take_pack(self) -> tuple:
        """(file, temporary key, entries) of the current pack, which is closed to adds."""
        f, tmp, entries = self._file, self._tmp, self._entries
        self._file = None
        if self.fs.local:
            try:
                f.flush()
            except BaseException:  # a full disk: abort() cannot see this pack any more
                try:
                    f.close()
                except Exception:
                    pass
                self.fs.delete(tmp)
                raise
        arr = np.zeros(len(entries), dtype=ENTRY_DTYPE)
        if entries:
            arr["id"] = np.frombuffer(b"".join(e[0] for e in entries), np.uint8).reshape(-1, 32)
            arr["offset"] = [e[1] for e in entries]
            arr["stored"] = [e[2] for e in entries]
            arr["raw"] = [e[3] for e in entries]
            arr["codec"] = [e[4] for e in entries]
        return f, tmp, arr

    def _publish(self, f, tmp: str, entries: np.ndarray) -> None:
        """Make a finished pack durable and publish it: three fsyncs.

        1. fsync the pack under its temporary name: its bytes are durable before any
           name of it can be.
        2. Rename it into ``packs/xx/``: a pack without an index is not published (a
           crash from here on leaves garbage that ``gc`` removes, never a dangling
           object).
        3. ``write_atomic`` of the index: its bytes are fsynced under a temporary name,
           renamed to ``<id>.idx`` (this publishes the pack), then ``packs/xx/`` is
           fsynced. That one directory fsync makes both renames durable, the pack's
           and the index's, because both names are in that directory: a second fsync
           of it (there was one) adds nothing. The index's rename is issued after the
           pack's, and metadata in one directory reaches the disk in that order on the
           file systems the store runs on (journaled: ext4, XFS, Lustre's and GPFS's
           servers; NFS renames are synchronous), so a crash cannot keep the index's
           name without the pack's.

        No version names a chunk before ``close()`` returns (records and commits are
        written afterwards), and ``close()`` returns only after step 3: every byte a
        record or commit names is durable before the record or commit exists. A
        ``packs/xx/`` directory made here is fsynced into ``packs/`` first.
        """
        pack_id = None
        try:
            try:
                if self.fs.local:
                    os.fsync(f.fileno())
            finally:
                f.close()
            index = encode_index(entries)
            pack_id = blake3.blake3(index).hexdigest()[:32]
            self.fs.makedirs(f"packs/{pack_id[:2]}")  # durable: a new one is fsynced into packs/
            self.fs.rename(tmp, pack_key(pack_id, "pack"))
            self.fs.write_atomic(pack_key(pack_id, "idx"), index)  # publishes the pack
        except BaseException as exc:
            # Nothing of a pack that failed to publish may stay behind (on a full
            # disk least of all). No version can reference it yet (records are written
            # only after close() succeeds), so unpublish it: index first, then data.
            self.fs.delete(tmp)
            if pack_id is not None:
                self.fs.delete(pack_key(pack_id, "idx"))
                self.fs.delete(pack_key(pack_id, "pack"))
            with self._lock:
                self._error = self._error or exc
            raise
        sorted_entries = decode_index(index, pack_id)
        with self._lock:
            self.published.append((pack_id, sorted_entries))

    def close(self) -> list[tuple[str, np.ndarray]]:
        """Finish the current pack and wait until every pack is published and durable."""
        last = None
        with self._lock:
            if self._file is not None:
                if self._pending:
                    self._finish_pack()
                else:
                    # The only pack of this writer (a registration, a small snapshot) is
                    # published in this thread: close() waits for it anyway, and starting
                    # the background thread for it cost about 0.1 ms.
                    last = self._take_pack()
        try:
            if last is not None:
                self._publish(*last)  # outside the lock, which _publish takes
            for fut in self._pending:
                fut.result()  # re-raises ENOSPC and friends
        finally:
            self._pool.shutdown(wait=True)
        return self.published

    def abort(self) -> None:
        """Drop the unfinished pack (its temporary file is removed)."""
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close()
                except Exception:  # the disk may be full: still drop the temporary
                    pass
                self._file = None
                self.fs.delete(self._tmp)
        for fut in self._pending:
            try:
                fut.result()
            except Exception:
                pass
        self._pool.shutdown(wait=True)


class ParallelPackWriter:
    """One :class:`PackWriter` per thread that adds chunks, behind the same interface.

    Filling the page cache is a large part of storing new data (about 1.8 s per GiB
    on one core of the project's machines), so threads that each append to their
    own pack write in parallel instead of queueing on one pack's lock.
    """

    def __init__(self, fs, max_bytes: int = 64 << 20):
        self.fs = fs
        self.max_bytes = max_bytes
        self._local = threading.local()
        self._writers: list[PackWriter] = []
        self._lock = threading.Lock()

    def _mine(self) -> PackWriter:
        w = getattr(self._local, "writer", None)
        if w is None:
            w = PackWriter(self.fs, self.max_bytes)
            with self._lock:
                self._writers.append(w)
            self._local.writer = w
        return w

    def add(self, chunk_id: bytes, raw_len: int, codec: int, payload) -> None:
        self._mine().add(chunk_id, raw_len, codec, payload)

    @property
    def published(self) -> list[tuple[str, np.ndarray]]:
        return [p for w in self._writers for p in w.published]

    @property
    def bytes_written(self) -> int:
        return sum(w.bytes_written for w in self._writers)

    def close(self) -> list[tuple[str, np.ndarray]]:
        """Finish every thread's pack; raises the first error after closing them all."""
        error = None
        for w in list(self._writers):
            try:
                w.close()
            except BaseException as exc:
                error = error or exc
        if error is not None:
            for w in self._writers:
                w.abort()
            raise error
        return self.published

    def abort(self) -> None:
        for w in list(self._writers):
            w.abort()
