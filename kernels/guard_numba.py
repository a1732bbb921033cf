"""Numba backends of the guard's batch kernels; see :mod:`engine.kernels.reference_guard`
for the codes. One pass per column, no temporaries besides the output."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def guard_range(x, lo, hi, nan_ok):
    n = x.shape[0]
    out = np.zeros(n, dtype=np.uint8)
    for i in range(n):
        v = x[i]
        if v < lo:
            out[i] = 1
        elif v > hi:
            out[i] = 2
        elif v != v and not nan_ok:
            out[i] = 3
    return out


@njit(cache=True, nogil=True)
def guard_category(indices, seen, null_ok):
    n = indices.shape[0]
    out = np.zeros(n, dtype=np.uint8)
    for i in range(n):
        j = indices[i]
        if j < 0:
            if not null_ok:
                out[i] = 3
        elif not seen[j]:
            out[i] = 1
    return out


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, nogil=True, inline="always")
def _trigram_bucket(c0, c1, c2, nb):
    z = (np.uint64(c0) << np.uint64(42)) | (np.uint64(c1) << np.uint64(21)) | np.uint64(c2)
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    z = z ^ (z >> np.uint64(31))
    return z % nb


@njit(cache=True, nogil=True)
def guard_text(data, offsets, char_ok, scores):
    n = max(offsets.shape[0] - 1, 0)
    unseen = np.zeros(n, dtype=np.uint8)
    sums = np.zeros(n, dtype=np.float64)
    ntri = np.zeros(n, dtype=np.int64)
    nd = data.shape[0]
    last = char_ok.shape[0] - 1
    nb = np.uint64(scores.shape[0])
    for v in range(n):
        c0 = np.uint32(0)
        c1 = np.uint32(0)
        k = 0
        bad = False
        s = 0.0
        for i in range(offsets[v], offsets[v + 1]):
            b = data[i]
            if b & 0xC0 == 0x80:  # a continuation byte: part of an earlier character
                continue
            if b < 0x80:
                c = np.uint32(b)
            else:
                more = (1 if b >= 0xC0 else 0) + (1 if b >= 0xE0 else 0) + (1 if b >= 0xF0 else 0)
                if more == 0:
                    c = np.uint32(b & 0x7F)
                elif more == 1:
                    c = np.uint32(b & 0x1F)
                elif more == 2:
                    c = np.uint32(b & 0x0F)
                else:
                    c = np.uint32(b & 0x07)
                for j in range(1, more + 1):
                    nxt = data[i + j] if i + j < nd else np.uint8(0)
                    c = (c << np.uint32(6)) | np.uint32(nxt & 0x3F)
            if not bad and not char_ok[min(np.int64(c), last)]:
                bad = True
            if k >= 2:
                s += scores[_trigram_bucket(c0, c1, c, nb)]
            c0 = c1
            c1 = c
            k += 1
        unseen[v] = 1 if bad else 0
        sums[v] = s
        ntri[v] = k - 2 if k > 2 else 0
    return unseen, sums, ntri
