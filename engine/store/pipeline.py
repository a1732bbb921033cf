"""The one chunk pipeline: read or receive bytes -> cut -> hash -> dedup -> compress -> pack.

Every path that turns bytes into chunks runs through this module:

=====================  ============================================  ================
entry point            bytes from                                    stops after
=====================  ============================================  ================
``chunk_bytes``        a buffer in memory                            hashing
``chunk_file``         a file, read in 16 MiB blocks                 hashing
``read_file``          a file, read in 8 MiB blocks, checked by      packing (hashing
                       ``stat`` before and after                     with no sink)
``read_files``         many files, ``read_file`` on a thread pool    as ``read_file``
``ChunkSink``          ``put_bytes``: a buffer in memory (a          packing
                       manifest, a model, a checkpoint shard);
                       ``open_stream``: bytes written piece by piece
=====================  ============================================  ================

The stages, and why each is built the way it is:

* cut: ``kernels.cdc.Chunker`` finds boundaries block by block, releasing the GIL.
  A chunk that spans two blocks is carried over, and that is the only copy made.
* hash: BLAKE3-256 per chunk (keyed by the store's id key in an encrypted store:
  ``key=``, or the sink's ``id_key``), which releases the GIL. One stream (``chunk_bytes``,
  ``chunk_file``, a large ``put_bytes``) hashes each block on a thread pool while
  the next block is cut. A snapshot already reads one file per thread, so there
  the reading thread hashes.
* dedup: one batched index lookup per block (``ChunkIndex.contains``), plus the set
  of chunks this write has already packed (``ChunkSink.pending``).
* compress: lz4 first as a cheap probe, zstd only where lz4 saves 10%
  (:func:`.pack.compress`); in an encrypted store then sealed with AES-256-GCM
  (``Store.seal``).
* pack: ``PackWriter`` appends the record. A background thread fsyncs and
  publishes each full pack while the next one fills. Nothing is visible to
  readers before :meth:`ChunkSink.close`.

The file is over 500 lines on purpose: it is the pipeline's one home, and every
entry point shares the same private stages (``_Stream``, ``_cut_buffer``,
``_hash_offer``).
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import NamedTuple

import blake3
import numpy as np

from .. import config
from ..kernels.cdc import CdcParams, Chunker, as_byte_view, cut_points
from .pack import compress

ID_SIZE = 32
CHUNK_DTYPE = np.dtype([("offset", "<i8"), ("length", "<i8"), ("id", "u1", (ID_SIZE,))])
BLOCK_SIZE = 16 << 20  # one stream whose blocks are hashed on a pool
READ_BLOCK = 8 << 20  # one file per reading thread: this much memory per thread
# A buffer in memory at least this large is cut on every thread (cut_points' block-parallel
# candidate scan needs more than two of its 8 MiB blocks to run in parallel).
PARALLEL_CUT_BYTES = 32 << 20
STREAM_BLOCK = 1 << 20  # open_stream gathers small writes to this size before cutting
DEVICE_BATCH = 64 << 20  # put_device: missing chunks gathered and copied per batch of this size
BATCH_FILES = 64  # read_files hands files to threads in batches of this many files ...
BATCH_BYTES = 16 << 20  # ... or bytes, whichever comes first
SMALL_JOB_BYTES = 16 << 20  # up to this much (one batch), files are read in the calling thread
INLINE_BELOW = 512 << 10  # read_files keeps files smaller than this in the calling thread


def __getattr__(name: str):
    # CHUNK_SCHEMA is built on first use: `import engine.store` does not import pyarrow.
    if name == "CHUNK_SCHEMA":
        import pyarrow as pa

        return pa.schema([("offset", pa.int64()), ("length", pa.int64()),
                          ("id", pa.binary(ID_SIZE))])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class FileChangedError(RuntimeError):
    """A file kept changing while the pipeline read it."""


class FileVanishedError(FileNotFoundError):
    """A file listed to be read was gone when the pipeline came to read it."""


def default_workers() -> int:
    """Hashing threads: one per core beyond the chunking thread, at least one.

    Examples
    --------
    >>> default_workers() >= 1
    True
    """
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    return max(1, n - 1)


def meta_params() -> CdcParams:
    """The small chunk sizes of metadata (manifests): a few changed rows add a few KiB."""
    return CdcParams(config.META_CHUNK_AVG_SIZE, config.META_CHUNK_MIN_SIZE,
                     config.META_CHUNK_MAX_SIZE)


# ----------------------------------------------------------------------------- stages


def split_block(carry: bytes, block: memoryview, block_start: int, cuts: np.ndarray):
    """Chunks completed in ``block`` by ``cuts``, and the bytes carried to the next block.

    ``block`` starts at stream offset ``block_start``; ``carry`` holds the bytes since
    the last cut (from earlier blocks); ``cuts`` are absolute chunk end offsets. Only a
    chunk that straddles blocks is copied; the others are views into ``block``.
    Returns ``(chunk views, new carry)``.

    Examples
    --------
    >>> views, carry = split_block(b"ab", memoryview(b"cdef"), 2, np.array([4]))
    >>> [bytes(v) for v in views], carry
    ([b'abcd'], b'ef')
    """
    prev = block_start - len(carry)  # stream offset where the next chunk starts
    views = []
    for c in cuts.tolist():
        if prev < block_start:
            views.append(memoryview(carry + bytes(block[:c - block_start])))
        else:
            views.append(block[prev - block_start:c - block_start])
        prev = c
    carry = carry + bytes(block) if prev < block_start else bytes(block[prev - block_start:])
    return views, carry


def _id_key(key: bytes | None, sink) -> bytes | None:
    """The chunk id key: ``key`` if given, else the sink's (its store's), else None."""
    if key is not None:
        if not isinstance(key, bytes) or len(key) != ID_SIZE:
            raise ValueError(f"key must be {ID_SIZE} bytes (a store's id_key), got {key!r:.40}")
        return key
    return getattr(sink, "id_key", None)


def _hash_offer(views: list, sink, key: bytes | None = None) -> list[bytes]:
    """Hash each chunk view (keyed BLAKE3 with ``key``), then hand the block's chunks to
    ``sink`` (if any)."""
    if key is None:
        ids = [blake3.blake3(v).digest() for v in views]
    else:
        ids = [blake3.blake3(v, key=key).digest() for v in views]
    if sink is not None:
        sink.offer(ids, views)  # consumes the views: a reused read buffer may follow
    return ids


def _hash_span(mv: memoryview, start: int, cuts: np.ndarray, sink,
               key: bytes | None = None) -> list[bytes]:
    """``_hash_offer`` of the chunks of ``mv`` from ``start`` to each of ``cuts``."""
    b = cuts.tolist()
    return _hash_offer([mv[p:c] for p, c in zip([start, *b[:-1]], b)], sink, key)


def _cut_buffer(mv: memoryview, chunker: Chunker, block_size: int, workers: int | None,
                sink, backend: str | None = None, key: bytes | None = None
                ) -> tuple[np.ndarray, list[bytes]]:
    """(chunk end offsets, chunk ids) of a buffer in memory; no byte of it is copied."""
    key = _id_key(key, sink)
    n = len(mv)
    if n <= block_size:  # one block: hash it here, no thread start-up (manifests, small blobs)
        if n == 0:
            return np.empty(0, dtype=np.int64), []
        cuts = np.concatenate([chunker.update(mv), chunker.finish()])
        return cuts, _hash_span(mv, 0, cuts, sink, key)
    futures: list[Future] = []
    ends = []
    prev = 0
    # Cutting in this thread while the pool hashes leaves the serial cut as the bound (the
    # chunker is ~3x slower per byte than BLAKE3): a large buffer is scanned for candidates
    # on every core, resolved, then hashed on every core, with this thread waiting.
    parallel = chunker.offset == 0 and n >= PARALLEL_CUT_BYTES
    threads = (workers or default_workers()) + (1 if parallel else 0)
    with ThreadPoolExecutor(threads, thread_name_prefix="mlops-hash") as pool:
        if parallel and threads > 1:
            cuts = cut_points(mv, chunker.params, backend=backend, executor=pool)
            split = np.unique(np.searchsorted(cuts, np.arange(block_size, n, block_size)))
            for seg in np.split(cuts, split[(split > 0) & (split < len(cuts))]):
                futures.append(pool.submit(_hash_span, mv, prev, seg, sink, key))
                prev = int(seg[-1])
            ids: list[bytes] = []
            for fut in futures:
                ids += fut.result()
            return cuts, ids
        for lo in range(0, n, block_size):
            cuts = chunker.update(mv[lo:lo + block_size])
            if lo + block_size >= n:
                cuts = np.concatenate([cuts, chunker.finish()])
            if len(cuts):
                futures.append(pool.submit(_hash_span, mv, prev, cuts, sink, key))
                ends.append(cuts)
                prev = int(cuts[-1])
        ids: list[bytes] = []
        for fut in futures:
            ids += fut.result()
    return np.concatenate(ends), ids


class _Stream:
    """Cut and hash a stream fed block by block; each block's chunks go to ``sink``.

    With ``pool``, blocks are hashed there while the next one is read, so every block
    must be a fresh buffer. Without it they are hashed (and offered) before
    :meth:`update` returns, so the caller may reuse its buffer. ``key``: keyed ids
    (default: the sink's ``id_key``).
    """

    def __init__(self, params: CdcParams, sink=None, pool: ThreadPoolExecutor | None = None,
                 backend: str | None = None, key: bytes | None = None):
        self.chunker = Chunker(params, backend)
        self.sink = sink
        self.key = _id_key(key, sink)
        self.pool = pool
        self.carry = b""  # bytes of the chunk in progress, from earlier blocks
        self.ends: list[np.ndarray] = []
        self.lengths: list[int] = []  # chunk lengths, in order (cheaper than diffing ends)
        self.ids: list[bytes] = []
        self.futures: list[Future] = []

    def update(self, block: memoryview) -> None:
        self._push(self.chunker.update(block), block)

    def finish(self) -> tuple[np.ndarray, list[bytes]]:
        """(chunk end offsets, chunk ids) of the whole stream."""
        self._push(self.chunker.finish(), memoryview(b""))
        for fut in self.futures:
            self.ids += fut.result()
        ends = np.concatenate(self.ends) if self.ends else np.empty(0, dtype=np.int64)
        return ends, self.ids

    def _push(self, cuts: np.ndarray, block: memoryview) -> None:
        views, self.carry = split_block(self.carry, block, self.chunker.offset - len(block), cuts)
        if not views:
            return
        self.ends.append(cuts)
        self.lengths += map(len, views)
        if self.pool is None:
            self.ids += _hash_offer(views, self.sink, self.key)
        else:
            self.futures.append(self.pool.submit(_hash_offer, views, self.sink, self.key))


def _lengths(ends: np.ndarray) -> list[int]:
    # plain Python: np.diff(prepend=) costs ~10 us, a snapshot of small files pays it per file
    e = ends.tolist()
    return [b - a for a, b in zip([0] + e[:-1], e)]


def file_id(chunks) -> bytes:
    """A file's id: BLAKE3-256 of its ordered ``(chunk id, length as u64 little-endian)`` list.

    ``chunks`` is what ``chunk_bytes``/``chunk_file`` return (Arrow or NumPy), or an
    iterable of ``(chunk id bytes, length)`` pairs. This is the only implementation of
    the record layout; snapshot, checkout and the registry call it too. It is not keyed:
    in an encrypted store the chunk ids it covers are, so it confirms nothing either.

    Examples
    --------
    >>> file_id([]).hex()[:16]
    'af1349b9f5f9a1a6'
    """
    if isinstance(chunks, np.ndarray):
        chunks = ((bytes(r["id"]), int(r["length"])) for r in chunks)
    elif hasattr(chunks, "column"):  # a pyarrow.Table
        chunks = zip(chunks.column("id").to_pylist(), chunks.column("length").to_pylist())
    h = blake3.blake3()
    for cid, n in chunks:
        h.update(cid)
        h.update(int(n).to_bytes(8, "little"))
    return h.digest()


def _blob(ends: np.ndarray, ids: list[bytes], size: int) -> dict:
    pairs = list(zip(ids, _lengths(ends)))
    return {"id": file_id(pairs).hex(), "size": size,
            "chunks": [[cid.hex(), n] for cid, n in pairs]}


# ----------------------------------------------------------------------------- hashing only


def _result(ends: np.ndarray, digests: bytes, output: str):
    n = len(ends)
    offsets = np.empty(n, dtype=np.int64)
    if n:
        offsets[0] = 0
        offsets[1:] = ends[:-1]
    lengths = ends - offsets
    if output == "numpy":
        out = np.empty(n, dtype=CHUNK_DTYPE)
        out["offset"] = offsets
        out["length"] = lengths
        out["id"] = np.frombuffer(digests, dtype=np.uint8).reshape(n, ID_SIZE)
        return out
    import pyarrow as pa

    from .arrow_build import array_from_numpy  # pyarrow.array would import pandas

    ids = pa.FixedSizeBinaryArray.from_buffers(pa.binary(ID_SIZE), n, [None, pa.py_buffer(digests)])
    return pa.Table.from_arrays([array_from_numpy(offsets), array_from_numpy(lengths), ids],
                                names=["offset", "length", "id"])


def _check_output(output: str) -> None:
    if output not in ("arrow", "numpy"):
        raise ValueError(f"output must be 'arrow' or 'numpy', got {output!r}")


def _check_positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def chunk_bytes(buf, params: CdcParams | None = None, *, backend: str | None = None,
                workers: int | None = None, block_size: int = BLOCK_SIZE, output: str = "arrow",
                key: bytes | None = None):
    """Split ``buf`` into content-defined chunks and hash each one.

    Parameters
    ----------
    buf : bytes-like
        bytes, bytearray, memoryview, NumPy array or mmap (C-contiguous).
    params : CdcParams, optional
        Chunk sizes; 8 KiB / 64 KiB / 128 KiB by default.
    backend : str, optional
        Force a chunker backend (``"cython"``, ``"numba"``, ``"reference"``).
    workers : int, optional
        Hashing threads (default: cores - 1, at least 1).
    block_size : int
        Bytes cut per step; the blocks are hashed on the threads.
    output : {"arrow", "numpy"}
        A ``pyarrow.Table`` or a structured array with fields
        ``offset``, ``length`` (int64) and ``id`` (32 bytes).
    key : bytes, optional
        32 bytes: keyed BLAKE3 ids, as an encrypted store computes them (its ``id_key``).

    Examples
    --------
    >>> t = chunk_bytes(b"hello world")
    >>> t.num_rows, t["length"][0].as_py()
    (1, 11)
    """
    _check_output(output)
    workers = default_workers() if workers is None else _check_positive("workers", workers)
    block_size = _check_positive("block_size", block_size)
    mv = as_byte_view(buf)
    ends, ids = _cut_buffer(mv, Chunker(params or CdcParams(), backend), block_size, workers, None,
                            backend, key)
    return _result(ends, b"".join(ids), output)


def _open_regular(path) -> tuple[str, int]:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise FileNotFoundError(f"path does not exist: {p!r}") from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"path is a directory, expected a file: {p!r}")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"path is not a regular file: {p!r}")
    return p, st.st_size


def chunk_file(path, params: CdcParams | None = None, *, backend: str | None = None,
               workers: int | None = None, block_size: int = BLOCK_SIZE, output: str = "arrow",
               progress: bool | None = False, key: bytes | None = None):
    """Chunk and hash a file read in blocks; same result as ``chunk_bytes`` of its contents
    (``key``: keyed ids, see :func:`chunk_bytes`).

    The file is read ``block_size`` bytes at a time, so memory stays bounded
    for files of any size. ``progress=None`` shows a bar when stderr is a TTY.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     _ = f.write(b"x" * 100_000); f.flush()
    ...     chunk_file(f.name).num_rows
    1
    """
    from ..progress import Progress

    _check_output(output)
    workers = default_workers() if workers is None else _check_positive("workers", workers)
    block_size = _check_positive("block_size", block_size)
    p, size = _open_regular(path)
    with open(p, "rb", buffering=0) as f, ThreadPoolExecutor(workers) as pool, \
            Progress(size, os.path.basename(p), enabled=progress) as bar:
        s = _Stream(params or CdcParams(), None, pool, backend, key)
        while block := f.read(block_size):  # a fresh buffer each time: the pool holds views
            s.update(memoryview(block))
            bar.advance(len(block))
        ends, ids = s.finish()
    return _result(ends, b"".join(ids), output)


def warm_up(params: CdcParams | None = None, backend: str | None = None) -> str:
    """Load (and, for Numba, compile) the chunker backend ``chunk_file`` would use; its name.

    The first chunk of a process pays for importing the kernel; code that reports a
    rate calls this before starting its clock, so the rate is the chunking alone.

    Examples
    --------
    >>> warm_up(backend="reference")
    'reference'
    """
    params = params or CdcParams()
    c = Chunker(params, backend)
    c.update(bytes(2 * params.max_size))
    c.finish()
    return c.backend


def iter_chunks(buf, params: CdcParams | None = None) -> Iterator[memoryview]:
    """Yield the chunks of ``buf`` as memoryviews (no copy, no hashing).

    Examples
    --------
    >>> [len(c) for c in iter_chunks(b"abc")]
    [3]
    """
    mv = as_byte_view(buf)
    prev = 0
    for e in cut_points(mv, params).tolist():
        yield mv[prev:e]
        prev = e


# ----------------------------------------------------------------------------- files


class FileChunks(NamedTuple):
    """A file read through the pipeline: its stat after reading, its id, its chunks."""

    stat: os.stat_result
    id: bytes
    chunks: list  # [(chunk id, length)] in file order


_buffers = threading.local()


def _read_buffer(size: int) -> memoryview:
    """This thread's read buffer, allocated once: first-touching 8 MiB of fresh memory
    per block cost more than reading it from the page cache."""
    b = getattr(_buffers, "buf", None)
    if b is None or len(b) != size:
        b = _buffers.buf = memoryview(bytearray(size))
    return b


def _open_nofollow(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise FileVanishedError(f"file vanished during the snapshot: {path!r}") from None
    except PermissionError:
        raise PermissionError(f"cannot read {path!r}: permission denied") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # replaced by a symlink since it was listed
            raise FileChangedError(f"{path!r} became a symlink during the snapshot") from None
        raise


def read_file(path: str, sink=None, params: CdcParams | None = None, *, tries: int = 3,
              key: bytes | None = None) -> FileChunks:
    """Read one file in blocks in this thread; cut, hash and hand its chunks to ``sink``.

    The file is stat-ed before and after it is read (through the descriptor and by
    path); if its size, mtime or inode changed, it is read again, and after ``tries``
    attempts :class:`FileChangedError` is raised. A file is never returned with an id
    that does not match one consistent state of its bytes. Symlinks are not followed.

    Parameters
    ----------
    path : str
        The file.
    sink : ChunkSink or object with ``offer(ids, views)``, optional
        Where each block's chunks go; ``None`` hashes only.
    params : CdcParams, optional
        Chunk sizes (the store's, ``Store.params``).
    key : bytes, optional
        The chunk id key (the store's ``Store.id_key``); default the sink's ``id_key``,
        else plain BLAKE3-256.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     _ = f.write(b"x" * 100); f.flush()
    ...     read_file(f.name).chunks[0][1]
    100
    """
    params = params or CdcParams()
    key = _id_key(key, sink)
    for _ in range(tries):
        fd = _open_nofollow(path)
        with os.fdopen(fd, "rb", buffering=0) as f:
            st0 = os.fstat(fd)
            block = READ_BLOCK
            buf = _read_buffer(block)
            if 0 < st0.st_size <= params.min_size:
                # One chunk whatever the bytes (no cut falls before min_size): a small file
                # skips the chunker, which costs more than hashing it.
                total = f.readinto(buf[:st0.st_size])
                ids, lengths = _hash_offer([buf[:total]], sink, key), [total]
            else:
                s = _Stream(params, sink, key=key)
                total = 0
                # Read no further than the size seen at open: a file that grows while it
                # is read (a live log) must not keep this loop going; the stat check below
                # sees the growth and reads it again.
                while total < st0.st_size:
                    n = f.readinto(buf[:min(block, st0.st_size - total)])
                    if not n:
                        break
                    total += n
                    s.update(buf[:n])  # hashed and offered before the buffer is reused
                _, ids = s.finish()
                lengths = s.lengths
            st1 = os.fstat(fd)
        try:
            st2 = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            raise FileVanishedError(f"file vanished during the snapshot: {path!r}") from None
        if ((st0.st_size, st0.st_mtime_ns) == (st1.st_size, st1.st_mtime_ns)
                == (st2.st_size, st2.st_mtime_ns) and st1.st_ino == st2.st_ino
                and total == st1.st_size):
            chunks = list(zip(ids, lengths))
            return FileChunks(st1, file_id(chunks), chunks)
    raise FileChangedError(
        f"{path!r} kept changing while it was read ({tries} tries); "
        "snapshot it when it is no longer being written"
    )


def file_workers(nbytes: int, nfiles: int, workers: int | None = None) -> int:
    """Threads :func:`read_files` should use for ``nfiles`` files of ``nbytes`` in all.

    A small job (a checkpoint file, a config: at most one batch) runs in the calling
    thread, so that it writes one pack and starts no thread; otherwise one thread per
    core, or ``workers`` if given.

    Examples
    --------
    >>> file_workers(1000, 1)
    1
    """
    if workers is None and nbytes <= SMALL_JOB_BYTES and nfiles <= BATCH_FILES:
        return 1
    return workers or default_workers() + 1  # the calling thread only coordinates


def _batches(items: list, size: Callable) -> Iterator[list]:
    batch, nbytes = [], 0
    for it in items:
        batch.append(it)
        nbytes += size(it)
        if len(batch) >= BATCH_FILES or nbytes >= BATCH_BYTES:
            yield batch
            batch, nbytes = [], 0
    if batch:
        yield batch


def read_files(items: Iterable, read: Callable, *, size: Callable, workers: int,
               inline_below: int | None = None) -> Iterator:
    """Yield ``(item, read(item))`` for every item, on ``workers`` threads.

    ``read`` reads (or writes) one file (usually :func:`read_file` into a shared sink);
    ``size(item)`` is its size in bytes. Files of ``inline_below`` bytes or more
    (default :data:`INLINE_BELOW`) go to the threads in batches (:data:`BATCH_FILES`,
    :data:`BATCH_BYTES`), at most two batches per thread in flight. Smaller files run in
    the calling thread while the threads work: their cost is the interpreter's
    per-file work, which holds the GIL, and on the 2-core CI machine 10,000 files of
    1-8 KiB snapshot in half the time on one thread as on three (0.38 vs 0.74 s) and
    check out in less (docs/benchmarks.md). Results come in the order they finish.
    With one worker everything runs in the calling thread.

    Examples
    --------
    >>> list(read_files([1, 2], lambda x: x * 10, size=lambda x: x, workers=1))
    [(1, 10), (2, 20)]
    >>> sorted(read_files([1, 2, 10**6], lambda x: x * 10, size=lambda x: x, workers=2))
    [(1, 10), (2, 20), (1000000, 10000000)]
    """
    items = list(items)
    if workers <= 1:
        for it in items:
            yield it, read(it)
        return
    limit = INLINE_BELOW if inline_below is None else inline_below
    big = [it for it in items if size(it) >= limit]
    small = iter([it for it in items if size(it) < limit])
    if not big:
        for it in small:
            yield it, read(it)
        return

    def run(batch):
        return [(it, read(it)) for it in batch]

    with ThreadPoolExecutor(workers, thread_name_prefix="mlops-read") as pool:
        inflight: set[Future] = set()

        def drain(block: bool) -> Iterator:
            nonlocal inflight
            if block:
                finished, inflight = wait(inflight, return_when=FIRST_COMPLETED)
            else:
                finished = {f for f in inflight if f.done()}
                inflight -= finished
            for fut in finished:
                yield from fut.result()

        for batch in _batches(big, size):
            inflight.add(pool.submit(run, batch))
            while len(inflight) >= 2 * workers:
                it = next(small, None)  # small files in this thread while the pool works
                if it is None:
                    yield from drain(True)
                else:
                    yield it, read(it)
                    yield from drain(False)
        for it in small:
            yield it, read(it)
            yield from drain(False)
        while inflight:
            yield from drain(True)


# ----------------------------------------------------------------------------- into the store


class ChunkSink:
    """The store end of the pipeline: dedup, compress when it pays, pack. Thread-safe.

    Parameters
    ----------
    store : Store
        The store whose index deduplicates and whose packs receive new chunks.
    writer : PackWriter, optional
        Where new chunks go; by default a new one (``store.writer(parallel)``), which
        :meth:`close` publishes.
    pending : set, optional
        Ids already added to ``writer`` by this write (shared with other sinks on it).
    parallel : bool
        A new writer keeps one pack per adding thread (many files read at once).

    Used as a context manager it publishes every pack on success (and adds them to
    ``store.index``) and drops the unfinished pack on an exception; no version may
    name a chunk before that.

    Examples
    --------
    >>> import tempfile
    >>> from engine.store import Store
    >>> st = Store(tempfile.mkdtemp())
    >>> with ChunkSink(st) as sink:
    ...     blob = sink.put_bytes(b"some bytes")
    >>> st.get_blob(blob)
    b'some bytes'
    """

    def __init__(self, store, writer=None, pending: set | None = None, *, parallel: bool = False):
        self.store = store
        store.require_intact()  # no chunk is written into a store with a damaged pack index
        self.writer = store.writer(parallel=parallel) if writer is None else writer
        #: the store's chunk id key (None: plain ids): the pipeline hashes with it
        self.id_key: bytes | None = store.id_key
        #: seals compressed payloads (``Store.seal_payload``) in an encrypted store
        self._seal = store.seal_payload if store.encrypted else None
        self.pending: set[bytes] = set() if pending is None else pending
        self.new_bytes = 0  # raw bytes of the chunks this sink packed
        self.device_bytes = 0  # bytes put_device copied from the GPU to the host
        self._lock = threading.Lock()

    def offer(self, ids: list[bytes], views: list) -> None:
        """Pack the chunks (``ids[i]`` is the id of ``views[i]``) the store lacks."""
        if not ids:
            return
        known = self.store.index.contains(ids)
        for cid, view, have in zip(ids, views, known):
            if have:
                continue
            with self._lock:
                if cid in self.pending:
                    continue
                self.pending.add(cid)
            codec, payload = compress(view)
            if self._seal is not None:
                payload = self._seal(cid, codec, len(view), payload)
            self.writer.add(cid, len(view), codec, payload)
            with self._lock:
                self.new_bytes += len(view)

    def put_bytes(self, data, *, small_chunks: bool = False, workers: int | None = None) -> dict:
        """Store a buffer in memory; returns its blob record ``{"id", "size", "chunks"}``.

        ``data`` is any C-contiguous buffer (bytes, memoryview, a NumPy array or a
        tensor's memory); nothing of it is copied but the chunks that span blocks.
        Above 16 MiB its blocks are hashed, compressed and packed on ``workers`` threads.
        ``small_chunks`` uses the 4 KiB metadata chunk sizes (for manifests).
        """
        mv = as_byte_view(data, "data")
        params = meta_params() if small_chunks else self.store.params
        ends, ids = _cut_buffer(mv, Chunker(params), BLOCK_SIZE, workers, self)
        return _blob(ends, ids, len(mv))

    def put_device(self, data, *, batch_bytes: int = DEVICE_BATCH) -> dict:
        """Store a buffer in GPU memory; returns its blob record, the same as ``put_bytes``
        of the same bytes.

        ``data`` is a CuPy array or a CUDA tensor (any dtype: its bytes are taken). Its
        chunks are cut and hashed on the device (``engine.kernels.hash_cuda``); only the
        chunk ends and ids come to the host, where the store's index is asked which ids it
        lacks. Those chunks alone are gathered on the device and copied to the host, in
        batches of about ``batch_bytes`` into pinned memory, each copy running while the
        previous batch is compressed and packed. ``device_bytes`` counts what was copied.
        Under ``engine.kernels.cuda_runtime.emulated()`` the host emulation stands in for
        the GPU (NumPy arrays and CPU tensors), for the tests.
        """
        from ..kernels import cuda_runtime, gather_cuda, hash_cuda

        dev = cuda_runtime.current()
        buf = dev.as_bytes(data)
        n = int(buf.size)
        if n == 0:
            return _blob(np.empty(0, np.int64), [], 0)
        ends, digests = hash_cuda.chunk_hash(buf, self.store.params, key=self.id_key)
        raw = digests.tobytes()
        ids = [raw[i:i + ID_SIZE] for i in range(0, len(raw), ID_SIZE)]
        starts = np.concatenate([np.zeros(1, np.int64), ends[:-1]])
        lengths = ends - starts
        take, seen = [], set()
        for i, (cid, have) in enumerate(zip(ids, self.store.index.contains(ids))):
            if have or cid in seen or cid in self.pending:
                continue
            seen.add(cid)
            take.append(i)
        batches, cur, size = [], [], 0
        for i in take:
            cur.append(i)
            size += int(lengths[i])
            if size >= batch_bytes:
                batches.append(np.array(cur, np.int64))
                cur, size = [], 0
        if cur:
            batches.append(np.array(cur, np.int64))

        def copy(batch):
            return batch, dev.to_host_async(
                gather_cuda.gather_ranges(buf, starts[batch], lengths[batch]))

        def pack(batch, pending) -> None:
            host = memoryview(pending.result())
            views, pos = [], 0
            for i in batch.tolist():
                views.append(host[pos:pos + int(lengths[i])])
                pos += int(lengths[i])
            self.device_bytes += pos
            self.offer([ids[i] for i in batch.tolist()], views)

        prev = None
        for batch in batches:
            nxt = copy(batch)  # the device gathers and copies this batch ...
            if prev is not None:
                pack(*prev)  # ... while the host packs the one before
            prev = nxt
        if prev is not None:
            pack(*prev)
        return _blob(ends, ids, n)

    def put_file(self, path: str) -> FileChunks:
        """Store one file read in this thread (see :func:`read_file`)."""
        return read_file(path, self, self.store.params)

    def open_stream(self, *, small_chunks: bool = False) -> BlobStream:
        """A :class:`BlobStream`: store bytes written piece by piece as one blob."""
        return BlobStream(self, meta_params() if small_chunks else self.store.params)

    def close(self) -> None:
        """Publish every pack (durably) and add them to the store's index."""
        self.writer.close()
        self.store.absorb(self.writer)

    def abort(self) -> None:
        """Drop the unfinished pack; published packs stay for ``gc``."""
        self.writer.abort()

    def __enter__(self) -> ChunkSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.close()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()


class BlobStream:
    """Bytes written piece by piece, stored as one blob (a checkpoint serialized as it goes).

    Each :meth:`write` is cut, hashed and packed before it returns, so the caller may
    reuse its buffer; writes under 1 MiB are gathered first. :meth:`close` returns the
    blob record, the same as ``put_bytes`` of all the bytes written.

    Examples
    --------
    >>> import tempfile
    >>> from engine.store import Store
    >>> st = Store(tempfile.mkdtemp())
    >>> with ChunkSink(st) as sink:
    ...     s = sink.open_stream()
    ...     _ = s.write(b"some "); _ = s.write(b"bytes")
    ...     blob = s.close()
    >>> st.get_blob(blob), blob["size"]
    (b'some bytes', 10)
    """

    def __init__(self, sink: ChunkSink, params: CdcParams):
        self._stream = _Stream(params, sink)
        self._small = bytearray()
        self.size = 0

    def write(self, data) -> int:
        """Add ``data`` (any C-contiguous buffer); returns its length in bytes."""
        mv = as_byte_view(data, "data")
        n = len(mv)
        if n >= STREAM_BLOCK:
            self._flush()
            self._stream.update(mv)
        else:
            self._small += mv
            if len(self._small) >= STREAM_BLOCK:
                self._flush()
        self.size += n
        return n

    def _flush(self) -> None:
        if self._small:
            block, self._small = self._small, bytearray()
            self._stream.update(memoryview(block))

    def close(self) -> dict:
        """End the stream; its blob record ``{"id", "size", "chunks"}``."""
        self._flush()
        ends, ids = self._stream.finish()
        return _blob(ends, ids, self.size)
