"""Per-column sort of drift samples, Numba CPU backend: an LSD radix sort of the floats' bits.

Kernels ``sort_packed`` and ``sort_segments`` of the registry (see
``engine.kernels.drift``); the references are the functions of the same names
in ``reference.py``. Sorting is the expensive step of every sample
test, so it is a kernel of its own and the statistics (``drift_numba.py``)
only walk already-sorted samples: a reference profile sorts once and is reused
for every batch.
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = dict(nogil=True, cache=True)
_PJIT = dict(parallel=True, nogil=True, cache=True)

# The radix passes order the keys by their top 48 bits only: 4 passes of 12-bit digits
# (4 x 4096 counters, 128 KiB, stay in L2). Keys equal in those bits but not in the low
# _LOW_BITS (values within 2**-36 of each other, relatively) are rare in real data and
# are put in order afterwards (_sort_runs); that is cheaper than two more passes.
_LOW_BITS = 16
_RADIX_BITS = 12
_RADIX_PASSES = 4
# Below this a comparison sort wins: radix pays for zeroing and scanning its counters.
_SMALL_SORT = 2048
# Runs of equal top bits up to this long are insertion-sorted, longer ones radix-sorted.
_SHORT_RUN = 32
_SIGN = np.uint64(1 << 63)
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_LOW = np.uint64(_LOW_BITS)


@numba.njit(**_JIT)
def _sort_low(x):
    """Sort ``x``, whose keys differ only in their low _LOW_BITS bits: two 8-bit LSD passes.

    Its values share one sign, so the key's low bits are the raw bits' low bits,
    complemented for negatives.
    """
    m = x.shape[0]
    keys = x.view(np.uint64)
    flip = _ONES if keys[0] & _SIGN else np.uint64(0)
    buf = np.empty(m, dtype=np.uint64)
    src = keys
    dst = buf
    c = np.empty(256, dtype=np.int64)
    for p in range(_LOW_BITS // 8):  # an even number of passes: the result lands in keys
        sh = np.uint64(8 * p)
        c[:] = 0
        for t in range(m):
            c[((src[t] ^ flip) >> sh) & np.uint64(255)] += 1
        total = 0
        for b in range(256):
            u = c[b]
            c[b] = total
            total += u
        for t in range(m):
            k = src[t]
            d = ((k ^ flip) >> sh) & np.uint64(255)
            dst[c[d]] = k
            c[d] += 1
        src, dst = dst, src


@numba.njit(**_JIT)
def _sort_runs(x):
    """Sort the runs of ``x`` whose keys share their top bits; ``x`` is sorted by those bits.

    Values of one run have one sign, so their float order is their key order.
    """
    keys = x.view(np.uint64)
    n = x.shape[0]
    i = 0
    while i < n:
        k = keys[i]
        h = (k ^ _ONES if k & _SIGN else k ^ _SIGN) >> _LOW
        j = i + 1
        while j < n:
            k = keys[j]
            if ((k ^ _ONES if k & _SIGN else k ^ _SIGN) >> _LOW) != h:
                break
            j += 1
        if j - i > _SHORT_RUN:
            _sort_low(x[i:j])
        elif j - i > 1:
            for a in range(i + 1, j):
                v = x[a]
                b = a
                while b > i and x[b - 1] > v:
                    x[b] = x[b - 1]
                    b -= 1
                x[b] = v
        i = j


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
            counts[p, (k >> np.uint64(_LOW_BITS + p * _RADIX_BITS)) & mask] += 1
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
        sh = np.uint64(_LOW_BITS + p * _RADIX_BITS)
        for i in range(n):
            k = src[i]
            b = (k >> sh) & mask
            dst[c[b]] = k
            c[b] += 1
        src, dst = dst, src
    disorder = False
    prev = src[0]
    for i in range(n):
        k = src[i]
        disorder |= k < prev  # only within a run of equal top bits
        prev = k
        keys[i] = k ^ _SIGN if k & _SIGN else k ^ _ONES
    if disorder:
        _sort_runs(x)


@numba.njit(**_PJIT)
def sort_segments(values, offsets):
    """Sort every segment ``values[offsets[c]:offsets[c+1]]`` in place (no NaN allowed)."""
    k = offsets.shape[0] - 1
    for c in numba.prange(k):
        _radix_sort(values[offsets[c]:offsets[c + 1]])


@numba.njit(**_JIT)
def _drop_nan(x):
    """Move the non-NaN values of ``x`` to its front, in order (branch-free); returns how many."""
    p = 0
    for i in range(x.shape[0]):
        v = x[i]
        x[p] = v
        p += 0 if np.isnan(v) else 1
    return p


@numba.njit(**_PJIT)
def sort_packed(values, offsets):
    """Drop NaN from every segment ``values[offsets[c]:offsets[c+1]]`` and sort it, in place.

    The columns are then moved left over the freed slots, so that they are
    packed in ``values[:new_offsets[-1]]``. Returns ``(new_offsets, nan_counts)``.
    """
    k = offsets.shape[0] - 1
    kept = np.empty(k, dtype=np.int64)
    for c in numba.prange(k):
        seg = values[offsets[c]:offsets[c + 1]]
        p = _drop_nan(seg)
        _radix_sort(seg[:p])
        kept[c] = p
    new = np.zeros(k + 1, dtype=np.int64)
    nan_counts = np.empty(k, dtype=np.int64)
    for c in range(k):
        new[c + 1] = new[c] + kept[c]
        nan_counts[c] = offsets[c + 1] - offsets[c] - kept[c]
    if new[k] != offsets[k]:
        for c in range(k):  # left to right, each column moves left (new[c] <= offsets[c])
            src = offsets[c]
            dst = new[c]
            if src != dst:
                for i in range(kept[c]):
                    values[dst + i] = values[src + i]
    return new, nan_counts
