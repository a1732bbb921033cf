# cython: language_level=3
"""Gear-hash content-defined chunking, Cython CPU backend.

Backends ``cython`` of the kernels ``cdc_scan``, ``cdc_candidates`` and
``cdc_resolve`` (named like the kernels; the references are the functions of
the same names in ``reference.py``). Callers (``engine.kernels.cdc``) validate
arguments. Every loop runs without the GIL, so a pool of threads can chunk and
hash different blocks on different cores at once.

The gear hash at byte ``i`` is ``h_i = (h_{i-1} << 1) + GEAR[b_i]`` modulo
2**64, so ``h_i`` depends only on the 64 bytes ending at ``i`` once 64 bytes
have been hashed. The serial chunker (``cdc_scan``) skips the first
``min_size - 64`` bytes of each chunk; ``cdc_candidates`` tests every
position independently (for block-parallel scans) and ``cdc_resolve`` applies
min/max to those candidates. Both give the same boundaries.
"""

from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcpy

import numpy as np

from engine.kernels.gear import GEAR


cdef extern from "cdc_impl.h" nogil:
    void mlops_gear_roll(const uint8_t *p, int64_t i, int64_t stop, uint64_t *h,
                         const uint64_t *gear)
    int64_t mlops_gear_scan(const uint8_t *p, int64_t i, int64_t stop, uint64_t *h,
                            uint64_t mask, const uint64_t *gear)


cdef uint64_t GEAR_C[256]


def _load_gear(const uint64_t[::1] table):
    """Copy the frozen table into the module's static C array (once, at import)."""
    if table.shape[0] != 256:
        raise ValueError("gear table must have 256 entries")
    memcpy(&GEAR_C[0], &table[0], 256 * sizeof(uint64_t))


_load_gear(np.ascontiguousarray(GEAR))


def cdc_scan(const uint8_t[::1] buf, int64_t[::1] out, uint64_t h, int64_t length,
             int64_t min_size, int64_t max_size, uint64_t mask):
    """Continue a serial chunking over ``buf``.

    ``h`` and ``length`` are the hash and the byte count of the chunk in
    progress when ``buf`` starts. Writes the end offsets (relative to ``buf``,
    exclusive) of the chunks completed inside ``buf`` into ``out``, and stops
    early when ``out`` is full.

    Returns ``(n_cuts, consumed, h, length)``.
    """
    cdef int64_t n = buf.shape[0]
    cdef int64_t cap = out.shape[0]
    cdef int64_t pos = 0, k = 0, stop, start
    cdef int64_t warm = min_size - 64      # first byte that feeds a tested hash
    cdef int64_t last_untested = min_size - 1
    cdef const uint8_t* p = &buf[0] if n > 0 else NULL
    with nogil:
        while pos < n and k < cap:
            if length < warm:
                # These bytes cannot influence any cut test of this chunk.
                stop = warm - length
                if stop > n - pos:
                    stop = n - pos
                pos += stop
                length += stop
                continue
            if length < last_untested:
                # Warm-up: hash without testing until the chunk is min_size - 1 long.
                stop = pos + (last_untested - length)
                if stop > n:
                    stop = n
                mlops_gear_roll(p, pos, stop, &h, GEAR_C)
                length += stop - pos
                pos = stop
                continue
            # Each byte from here makes the chunk >= min_size: test after hashing it.
            stop = pos + (max_size - length)
            if stop > n:
                stop = n
            start = pos
            pos = mlops_gear_scan(p, pos, stop, &h, mask, GEAR_C)
            length += pos - start
            if (h & mask) == 0 or length == max_size:
                out[k] = pos
                k += 1
                h = 0
                length = 0
    return k, pos, h, length


def cdc_candidates(const uint8_t[::1] buf, int64_t start, uint64_t mask):
    """End offsets ``i + 1`` (``i >= start``) of ``buf`` whose 64-byte window hash passes ``mask``.

    The hash is warmed on ``buf[max(0, start - 63):start]``: the caller passes
    63 bytes of look-back before ``start``, or ``start < 63`` only when
    ``buf`` begins at the start of the stream. Returns an int64 array.
    """
    cdef int64_t n = buf.shape[0]
    cdef int64_t i = start - 63 if start > 63 else 0
    cdef int64_t k, cap
    cdef uint64_t h = 0
    cdef uint64_t m = mask
    cdef int bits = 0
    cdef int64_t[::1] out
    cdef const uint8_t* p = &buf[0] if n > 0 else NULL
    if start >= n:
        return np.empty(0, dtype=np.int64)
    while m:
        bits += <int>(m & 1)
        m >>= 1
    # 16 times the expected count (a hit every 2**bits bytes): one buffer for any real
    # data; adversarial data (every position a hit) fills it and the scan goes on in
    # another, with the hash carried over.
    cap = (n - start) >> (bits - 4) if bits > 4 else n - start
    cap = cap if cap > 1024 else 1024
    parts = []
    with nogil:
        mlops_gear_roll(p, i, start, &h, GEAR_C)
    i = start
    while i < n:
        arr = np.empty(cap, dtype=np.int64)
        out = arr
        k = 0
        with nogil:
            while i < n:
                # The scan loop has no store: the candidate is recorded out here,
                # which keeps h and i in registers.
                i = mlops_gear_scan(p, i, n, &h, mask, GEAR_C)
                if (h & mask) == 0:
                    out[k] = i
                    k += 1
                    if k == cap:
                        break
        parts.append(arr[:k])
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts)


def cdc_resolve(const int64_t[::1] cand, int64_t n, int64_t min_size, int64_t max_size):
    """Apply min/max sizes to sorted candidate end offsets of a whole stream of ``n`` bytes.

    A chunk starting at ``s`` ends at the first candidate in
    ``[s + min_size, s + max_size]``, else at ``s + max_size``, and never past
    ``n``. Returns the chunk end offsets (int64).
    """
    cdef int64_t nc = cand.shape[0]
    cdef int64_t s = 0, j = 0, k = 0, lo, hi, e
    arr = np.empty(n // min_size + 2, dtype=np.int64)
    cdef int64_t[::1] out = arr
    with nogil:
        while s < n:
            lo = s + min_size
            hi = s + max_size
            if hi > n:
                hi = n
            while j < nc and cand[j] < lo:
                j += 1
            if j < nc and cand[j] <= hi:
                e = cand[j]
            else:
                e = hi
            out[k] = e
            k += 1
            s = e
    return arr[:k].copy()
