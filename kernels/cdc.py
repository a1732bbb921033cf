"""Content-defined chunking: parameters, backend dispatch, streaming and block-parallel scans.

Public entry points are :class:`CdcParams`, :class:`Chunker` (streaming) and
:func:`cut_points` (a whole buffer). Hashing the chunks is done by
``engine.chunking``; this module only finds boundaries.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from . import _registry, cuda_runtime
from ._registry import register_kernel

# The serial chunker, and the two steps of the block-parallel one: every position's cut
# test is independent (the hash depends only on the last 64 bytes), so candidates can be
# found anywhere at once (threads, a GPU) and a short serial pass applies min/max.
KERNEL = "cdc_scan"
CANDIDATES = "cdc_candidates"
RESOLVE = "cdc_resolve"
DEFAULT_AVG = 64 * 1024
# Window of the gear hash: h depends only on the last 64 bytes.
WINDOW = 64

register_kernel(KERNEL, reference=".reference", cython="._cdc", numba=".cdc_numba")
register_kernel(CANDIDATES, reference=".reference", cython="._cdc",
                cuda=cuda_runtime.loader(".cdc_cuda", CANDIDATES),
                is_usable_for={"cuda": cuda_runtime.usable})
register_kernel(RESOLVE, reference=".reference", cython="._cdc")
# BLAKE3 of many ranges of one buffer (chunk ids on the GPU; engine.kernels.hash_cuda)
register_kernel("blake3_many", reference=".reference",
                cuda=cuda_runtime.loader(".blake3_cuda", "blake3_many"),
                is_usable_for={"cuda": cuda_runtime.usable})


def _int_arg(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer number of bytes, got {type(value).__name__}")
    return int(value)


@dataclass(frozen=True)
class CdcParams:
    """Chunk sizes of the gear chunker.

    ``avg_size`` must be a power of two: a cut falls where the top
    ``log2(avg_size)`` bits of the hash are zero. ``min_size`` defaults to
    ``avg_size // 8`` and ``max_size`` to ``avg_size * 2`` (8 KiB and 128 KiB
    for the 64 KiB default). ``min_size`` must be at least 64, the hash
    window, so that every cut test sees a full window.

    Examples
    --------
    >>> p = CdcParams()
    >>> (p.min_size, p.avg_size, p.max_size, hex(p.mask))
    (8192, 65536, 131072, '0xffff000000000000')
    """

    avg_size: int = DEFAULT_AVG
    min_size: int | None = None
    max_size: int | None = None

    def __post_init__(self):
        avg = _int_arg("avg_size", self.avg_size)
        if avg < 64 or avg & (avg - 1):
            raise ValueError(f"avg_size must be a power of two >= 64, got {avg}")
        mn = avg // 8 if self.min_size is None else _int_arg("min_size", self.min_size)
        mx = avg * 2 if self.max_size is None else _int_arg("max_size", self.max_size)
        mn = max(mn, WINDOW) if self.min_size is None else mn
        if mn < WINDOW:
            raise ValueError(f"min_size must be >= {WINDOW} (the hash window), got {mn}")
        if mx < mn:
            raise ValueError(f"min_size ({mn}) must not exceed max_size ({mx})")
        if avg.bit_length() - 1 > 63:
            raise ValueError("avg_size is too large")
        object.__setattr__(self, "avg_size", avg)
        object.__setattr__(self, "min_size", mn)
        object.__setattr__(self, "max_size", mx)

    @property
    def bits(self) -> int:
        return self.avg_size.bit_length() - 1

    @property
    def mask(self) -> int:
        """The top ``bits`` bits of a 64-bit word."""
        return ((1 << self.bits) - 1) << (64 - self.bits)


def as_byte_view(buf, name: str = "buf") -> memoryview:
    """A flat, C-contiguous byte view of any buffer (bytes, memoryview, NumPy array, mmap)."""
    if isinstance(buf, str):
        raise TypeError(f"{name} must be a bytes-like object (bytes, memoryview, numpy array, mmap), got str")
    try:
        mv = memoryview(buf)
    except TypeError:
        raise TypeError(
            f"{name} must be a bytes-like object (bytes, memoryview, numpy array, mmap), "
            f"got {type(buf).__name__}"
        ) from None
    if not mv.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous; copy it first (e.g. numpy.ascontiguousarray)")
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    return mv


class Chunker:
    """Streaming chunker: feed blocks of any size, get the same boundaries as the whole stream.

    The chunk in progress (its hash and length) carries over from one block
    to the next, so the cut points do not depend on how the stream is split.

    Parameters
    ----------
    params : CdcParams, optional
    backend : {"cython", "numba", "reference"}, optional
        Force a backend; by default the fastest usable one.

    Examples
    --------
    >>> import os
    >>> data = os.urandom(1 << 20)
    >>> c = Chunker()
    >>> cuts = list(c.update(data[:300_000])) + list(c.update(data[300_000:])) + list(c.finish())
    >>> cuts == list(cut_points(data))
    True
    """

    def __init__(self, params: CdcParams | None = None, backend: str | None = None):
        self.params = params or CdcParams()
        self.backend = _registry.resolve(KERNEL, backend)
        self._scan = _registry.get(KERNEL, self.backend)
        self._h = 0
        self._len = 0
        self.offset = 0  # stream bytes consumed so far

    def update(self, block) -> np.ndarray:
        """Feed the next block; returns the absolute end offsets of chunks completed in it."""
        mv = as_byte_view(block, "block")
        p = self.params
        n = len(mv)
        out = np.empty(n // p.min_size + 2, dtype=np.int64)
        pos, parts = 0, []
        while pos < n:
            k, used, self._h, self._len = self._scan(
                mv[pos:], out, self._h, self._len, p.min_size, p.max_size, p.mask
            )
            parts.append(out[:k] + (self.offset + pos))
            pos += used
        self.offset += n
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def finish(self) -> np.ndarray:
        """End the stream: the last, possibly short, chunk (if any bytes are pending)."""
        tail = np.array([self.offset], dtype=np.int64) if self._len else np.empty(0, np.int64)
        self._h = 0
        self._len = 0
        return tail


def cut_points(buf, params: CdcParams | None = None, backend: str | None = None,
               executor: Executor | None = None, block_size: int = 8 << 20) -> np.ndarray:
    """End offsets of every chunk of ``buf`` (the last one equals ``len(buf)``).

    With ``executor`` (a thread pool) and a native candidate scan (the
    ``cdc_candidates`` kernel; ``backend`` forces one where it has one),
    blocks are scanned for cut candidates in parallel (the window hash at each
    position is independent of where the chunk started), then a cheap serial
    pass (``cdc_resolve``) applies the min/max sizes. The result is identical
    to the serial scan (``cdc_scan``).

    Examples
    --------
    >>> import os
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> data = os.urandom(3 << 20)
    >>> with ThreadPoolExecutor(2) as pool:
    ...     par = cut_points(data, executor=pool, block_size=1 << 20)
    >>> bool((par == cut_points(data)).all())
    True
    """
    params = params or CdcParams()
    mv = as_byte_view(buf)
    if executor is not None and len(mv) > 2 * block_size:
        scan = _candidate_scan(mv, params.mask, backend)
        if scan is not None:
            return _parallel_cut_points(mv, params, executor, block_size, scan, backend)
    c = Chunker(params, backend)
    return np.concatenate([c.update(mv), c.finish()])


def _candidate_scan(mv: memoryview, mask: int, backend: str | None):
    """The ``cdc_candidates`` backend for ``mv``, or None where the serial chunker is used:
    a forced backend without a candidate scan, or the reference (it is for the tests)."""
    if backend is not None and backend not in _registry.backends(CANDIDATES):
        return None
    name = _registry.resolve(CANDIDATES, backend, (mv, 0, mask))
    return None if name == "reference" else _registry.select(CANDIDATES, mv, 0, mask, backend=name)


def _parallel_cut_points(mv: memoryview, params: CdcParams, executor: Executor,
                         block_size: int, scan, backend: str | None) -> np.ndarray:
    n = len(mv)
    mask = params.mask

    def scan_block(lo: int, hi: int) -> np.ndarray:
        # 63 bytes of look-back give every position in [lo, hi) its full window.
        base = max(0, lo - (WINDOW - 1))
        return scan(mv[base:hi], lo - base, mask) + base

    futures = [executor.submit(scan_block, lo, min(lo + block_size, n))
               for lo in range(0, n, block_size)]
    cand = np.concatenate([f.result() for f in futures])
    forced = backend if backend in _registry.backends(RESOLVE) else None
    return _registry.call(RESOLVE, cand, n, params.min_size, params.max_size, backend=forced)
