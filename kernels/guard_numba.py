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
