"""Per-column sort of drift samples, Numba CPU backend: an LSD radix sort of the floats' bits.

Kernels ``drift_sort_columns`` and ``drift_sort_segments`` of the registry
(see ``engine.kernels.drift``); the references are the functions of the same
names in ``reference.py``. Sorting is the expensive step of every sample
test, so it is a kernel of its own and the statistics (``drift_numba.py``)
only walk already-sorted samples: a reference profile sorts once and is reused
for every batch.
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = dict(nogil=True, cache=True)
_PJIT = dict(parallel=True, nogil=True, cache=True)

# 11-bit digits: 6 passes over 64-bit keys; 6 x 2048 counters (96 KiB) stay in L2.
_RADIX_BITS = 11
_RADIX_PASSES = 6
# Below this a comparison sort wins: radix pays for zeroing and scanning its counters.
_SMALL_SORT = 2048
_SIGN = np.uint64(1 << 63)
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


@numba.njit(**_JIT)
def _radix_sort(x):
    """Sort NaN-free float64 ``x`` in place (-0.0 sorts before +0.0)."""
    n = x.shape[0]
    if n < _SMALL_SORT:
        x[:] = np.sort(x)
        return
    keys = x.view(np.uint64)
    nb = 1 << _RADIX_BITS
    mask = np.uint64(nb - 1)
    counts = np.zeros((_RADIX_PASSES, nb), dtype=np.int64)
    # Flip so that unsigned order is float order: negatives reverse, positives gain the sign bit.
    for i in range(n):
        k = keys[i]
        k = k ^ _ONES if k & _SIGN else k ^ _SIGN
        keys[i] = k
        for p in range(_RADIX_PASSES):
            counts[p, (k >> np.uint64(p * _RADIX_BITS)) & mask] += 1
    buf = np.empty(n, dtype=np.uint64)
    src = keys
    dst = buf
    for p in range(_RADIX_PASSES):
        c = counts[p]
        trivial = False
        for b in range(nb):
            if c[b] != 0:
                trivial = c[b] == n  # every key has this digit: the pass would be a copy
                break
        if trivial:
            continue
        total = 0
        for b in range(nb):
            t = c[b]
            c[b] = total
            total += t
        sh = np.uint64(p * _RADIX_BITS)
        for i in range(n):
            k = src[i]
            b = (k >> sh) & mask
            dst[c[b]] = k
            c[b] += 1
        src, dst = dst, src
    for i in range(n):
        k = src[i]
        keys[i] = k ^ _SIGN if k & _SIGN else k ^ _ONES


@numba.njit(**_PJIT)
def sort_columns(x):
    """Pack the columns of 2-D ``x`` (rows = observations): drop NaN, sort.

    Returns ``(values, offsets, nan_counts)``. Fortran-ordered ``x`` is read
    contiguously; C order works but reads each column with a stride.
    """
    n, k = x.shape
    nan_counts = np.zeros(k, dtype=np.int64)
    for j in numba.prange(k):
        c = 0
        for i in range(n):
            if np.isnan(x[i, j]):
                c += 1
        nan_counts[j] = c
    offsets = np.zeros(k + 1, dtype=np.int64)
    for j in range(k):
        offsets[j + 1] = offsets[j] + n - nan_counts[j]
    values = np.empty(offsets[k], dtype=np.float64)
    for j in numba.prange(k):
        seg = values[offsets[j]:offsets[j + 1]]
        p = 0
        for i in range(n):
            v = x[i, j]
            if not np.isnan(v):
                seg[p] = v
                p += 1
        _radix_sort(seg)
    return values, offsets, nan_counts


@numba.njit(**_PJIT)
def sort_segments(values, offsets):
    """Sort every segment ``values[offsets[c]:offsets[c+1]]`` in place (no NaN allowed)."""
    k = offsets.shape[0] - 1
    for c in numba.prange(k):
        _radix_sort(values[offsets[c]:offsets[c + 1]])
