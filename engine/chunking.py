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


def _result(ends: np.ndarray, digests: bytes, output: str, base: int = 0):
    n = len(ends)
    offsets = np.empty(n, dtype=np.int64)
    if n:
        offsets[0] = base
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
    carry_start = 0
    with open(p, "rb", buffering=0) as f, ThreadPoolExecutor(workers) as pool, \
            Progress(size, os.path.basename(p), enabled=progress) as bar:
        while True:
            block = f.read(block_size)  # b"" only at end of file
            cuts = chunker.update(block) if block else np.empty(0, np.int64)
            if not block:
                cuts = np.concatenate([cuts, chunker.finish()])
            block_lo = chunker.offset - len(block)
            if len(cuts):
                # The first chunk may start in an earlier block: join it with the carry.
                first_end = int(cuts[0]) - block_lo
                head = carry + block[:first_end] if carry else None
                if head is not None:
                    futures.append(pool.submit(_hash_chunks, memoryview(head),
                                               np.array([0, len(head)])))
                    bounds = cuts - block_lo
                else:
                    bounds = np.concatenate([[carry_start - block_lo], cuts - block_lo])
                if len(bounds) > 1:
                    futures.append(pool.submit(_hash_chunks, memoryview(block), bounds))
                ends.append(cuts)
                carry = block[int(cuts[-1]) - block_lo:]
                carry_start = int(cuts[-1])
            else:
                carry = carry + block
            bar.advance(len(block))
            if not block:
                break
        digests = b"".join(fut.result() for fut in futures)
    cut_arr = np.concatenate(ends) if ends else np.empty(0, dtype=np.int64)
    return _result(cut_arr, digests, output)


def file_id(chunks) -> bytes:
    """A file's id: BLAKE3-256 of its ordered ``(chunk id, length as u64 little-endian)`` list.

    ``chunks`` is what ``chunk_bytes``/``chunk_file`` return (Arrow or NumPy).
    """
    if isinstance(chunks, pa.Table):
        ids = chunks.column("id").combine_chunks()
        id_bytes = ids.buffers()[1].to_pybytes()[ids.offset * ID_SIZE:(ids.offset + len(ids)) * ID_SIZE]
        lengths = chunks.column("length").to_numpy()
        n = chunks.num_rows
        rec = np.empty(n, dtype=[("id", "u1", (ID_SIZE,)), ("len", "<u8")])
        rec["id"] = np.frombuffer(id_bytes, np.uint8).reshape(n, ID_SIZE)
        rec["len"] = lengths
    else:
        arr = np.asarray(chunks)
        rec = np.empty(len(arr), dtype=[("id", "u1", (ID_SIZE,)), ("len", "<u8")])
        rec["id"] = arr["id"]
        rec["len"] = arr["length"]
    return blake3.blake3(rec.tobytes()).digest()


def iter_chunks(buf, params: CdcParams | None = None) -> Iterable[memoryview]:
    """Yield the chunks of ``buf`` as memoryviews (no copy, no hashing)."""
    from .kernels.cdc import cut_points

    mv = as_byte_view(buf)
    prev = 0
    for e in cut_points(mv, params).tolist():
        yield mv[prev:e]
        prev = e
