"""Chunk and hash bytes and files: ``chunk_bytes``, ``chunk_file``, ``file_id``.

Boundaries come from the gear chunker in ``engine.kernels.cdc``; each chunk's
id is its BLAKE3-256 digest. Chunking and hashing overlap: the calling thread
finds boundaries block by block (the kernel releases the GIL) while a thread
pool hashes the chunks already found (BLAKE3 releases the GIL too).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import blake3
import numpy as np
import pyarrow as pa

from .kernels.cdc import CdcParams, Chunker, as_byte_view

ID_SIZE = 32
CHUNK_DTYPE = np.dtype([("offset", "<i8"), ("length", "<i8"), ("id", "u1", (ID_SIZE,))])
CHUNK_SCHEMA = pa.schema(
    [("offset", pa.int64()), ("length", pa.int64()), ("id", pa.binary(ID_SIZE))]
)
BLOCK_SIZE = 16 << 20


def default_workers() -> int:
    """Hashing threads: one per core beyond the chunking thread, at least one."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    return max(1, n - 1)


def _hash_chunks(view: memoryview, bounds: np.ndarray) -> bytes:
    """Concatenated BLAKE3-256 digests of ``view[bounds[i]:bounds[i+1]]``."""
    b = bounds.tolist()
    return b"".join(blake3.blake3(view[b[i]:b[i + 1]]).digest() for i in range(len(b) - 1))


def split_block(carry: bytes, block: memoryview, block_start: int, cuts: np.ndarray):
    """Chunks completed in ``block`` by ``cuts``, and the bytes carried to the next block.

    ``block`` starts at stream offset ``block_start``; ``carry`` holds the bytes since
    the last cut (from earlier blocks); ``cuts`` are absolute chunk end offsets. Only a
    chunk that straddles blocks is copied; the others are views into ``block``.
    Returns ``(chunk views, new carry)``.
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


def _hash_views(views: list) -> bytes:
    """Concatenated BLAKE3-256 digests of ``views``."""
    return b"".join(blake3.blake3(v).digest() for v in views)


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
    ids = pa.FixedSizeBinaryArray.from_buffers(pa.binary(ID_SIZE), n, [None, pa.py_buffer(digests)])
    return pa.Table.from_arrays([pa.array(offsets), pa.array(lengths), ids], schema=CHUNK_SCHEMA)


def _check_output(output: str) -> None:
    if output not in ("arrow", "numpy"):
        raise ValueError(f"output must be 'arrow' or 'numpy', got {output!r}")


def _check_workers(workers) -> int:
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return workers


def _check_block(block_size) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    return block_size


def chunk_bytes(buf, params: CdcParams | None = None, *, backend: str | None = None,
                workers: int | None = None, block_size: int = BLOCK_SIZE, output: str = "arrow"):
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
    output : {"arrow", "numpy"}
        A ``pyarrow.Table`` or a structured array with fields
        ``offset``, ``length`` (int64) and ``id`` (32 bytes).

    Examples
    --------
    >>> t = chunk_bytes(b"hello world")
    >>> t.num_rows, t["length"][0].as_py()
    (1, 11)
    """
    _check_output(output)
    workers = _check_workers(workers)
    block_size = _check_block(block_size)
    params = params or CdcParams()
    mv = as_byte_view(buf)
    chunker = Chunker(params, backend)
    n = len(mv)
    futures: list[Future] = []
    ends = []
    if n <= block_size:  # one block: hash it here, no thread start-up (manifests, small blobs)
        if n == 0:
            return _result(np.empty(0, dtype=np.int64), b"", output)
        cuts = np.concatenate([chunker.update(mv), chunker.finish()]).astype(np.int64)
        return _result(cuts, _hash_chunks(mv, np.concatenate([[0], cuts])), output)
    with ThreadPoolExecutor(workers) as pool:
        prev = 0
        for lo in range(0, n, block_size):
            cuts = chunker.update(mv[lo:lo + block_size])
            if lo + block_size >= n:
                cuts = np.concatenate([cuts, chunker.finish()])
            if len(cuts):
                bounds = np.concatenate([[prev], cuts])
                futures.append(pool.submit(_hash_chunks, mv, bounds))
                ends.append(cuts)
                prev = int(cuts[-1])
        digests = b"".join(f.result() for f in futures)
    cut_arr = np.concatenate(ends) if ends else np.empty(0, dtype=np.int64)
    return _result(cut_arr, digests, output)


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
               progress: bool | None = False):
    """Chunk and hash a file read in blocks; same result as ``chunk_bytes`` of its contents.

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
    from .progress import Progress

    _check_output(output)
    workers = _check_workers(workers)
    block_size = _check_block(block_size)
    p, size = _open_regular(path)
    params = params or CdcParams()
    chunker = Chunker(params, backend)
    futures: list[Future] = []
    ends = []
    carry = b""  # bytes of the chunk in progress from earlier blocks
    with open(p, "rb", buffering=0) as f, ThreadPoolExecutor(workers) as pool, \
            Progress(size, os.path.basename(p), enabled=progress) as bar:
        while True:
            block = f.read(block_size)  # b"" only at end of file; a fresh buffer each time,
            cuts = chunker.update(block) if block else chunker.finish()  # so views stay valid
            views, carry = split_block(carry, memoryview(block), chunker.offset - len(block), cuts)
            if views:
                futures.append(pool.submit(_hash_views, views))
                ends.append(cuts)
            bar.advance(len(block))
            if not block:
                break
        digests = b"".join(fut.result() for fut in futures)
    cut_arr = np.concatenate(ends) if ends else np.empty(0, dtype=np.int64)
    return _result(cut_arr, digests, output)


def warm_up(params: CdcParams | None = None, backend: str | None = None) -> str:
    """Load (and, for Numba, compile) the chunker backend ``chunk_file`` would use; its name.

    The first chunk of a process pays for importing the kernel; code that reports a
    rate calls this before starting its clock, so the rate is the chunking alone.
    """
    params = params or CdcParams()
    c = Chunker(params, backend)
    c.update(bytes(2 * params.max_size))
    c.finish()
    return c.backend


def file_id(chunks) -> bytes:
    """A file's id: BLAKE3-256 of its ordered ``(chunk id, length as u64 little-endian)`` list.

    ``chunks`` is what ``chunk_bytes``/``chunk_file`` return (Arrow or NumPy), or an
    iterable of ``(chunk id bytes, length)`` pairs. This is the only implementation of
    the record layout; snapshot and checkout call it too.
    """
    if isinstance(chunks, pa.Table):
        chunks = zip(chunks.column("id").to_pylist(), chunks.column("length").to_pylist())
    elif isinstance(chunks, np.ndarray):
        chunks = ((bytes(r["id"]), int(r["length"])) for r in chunks)
    h = blake3.blake3()
    for cid, n in chunks:
        h.update(cid)
        h.update(int(n).to_bytes(8, "little"))
    return h.digest()


def iter_chunks(buf, params: CdcParams | None = None) -> Iterable[memoryview]:
    """Yield the chunks of ``buf`` as memoryviews (no copy, no hashing)."""
    from .kernels.cdc import cut_points

    mv = as_byte_view(buf)
    prev = 0
    for e in cut_points(mv, params).tolist():
        yield mv[prev:e]
        prev = e
