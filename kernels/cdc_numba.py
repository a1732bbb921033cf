"""Gear-hash content-defined chunking, Numba CPU backend of kernel ``cdc_scan`` (see ``reference.cdc_scan``)."""

from __future__ import annotations

import numba
import numpy as np

from ._registry import renamed_module_attrs
from .gear import GEAR

_GEAR = np.ascontiguousarray(GEAR)

# The name before kernel ids and function names became one (deprecated, one release).
__getattr__ = renamed_module_attrs(__name__, {"scan_cuts": "cdc_scan"})


@numba.njit(nogil=True, cache=True)
def _scan_cuts(buf, out, gear, h, length, min_size, max_size, mask):
    n = buf.shape[0]
    cap = out.shape[0]
    pos = 0
    k = 0
    warm = min_size - 64
    last_untested = min_size - 1
    one = np.uint64(1)
    zero = np.uint64(0)
    while pos < n and k < cap:
        if length < warm:
            # bytes that cannot influence any cut test of this chunk
            step = min(warm - length, n - pos)
            pos += step
            length += step
            continue
        if length < last_untested:
            stop = min(pos + (last_untested - length), n)
            start = pos
            while pos < stop:
                h = (h << one) + gear[buf[pos]]
                pos += 1
            length += pos - start
            continue
        stop = min(pos + (max_size - length), n)
        start = pos
        cut = False
        while pos < stop:
            h = (h << one) + gear[buf[pos]]
            pos += 1
            if (h & mask) == zero:
                cut = True
                break
        length += pos - start
        if cut or length == max_size:
            out[k] = pos
            k += 1
            h = zero
            length = 0
    return k, pos, h, length


def cdc_scan(buf, out, h, length, min_size, max_size, mask):
    """Continue a serial chunking over ``buf``; returns ``(n_cuts, consumed, h, length)``."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    k, pos, h, length = _scan_cuts(
        arr, out, _GEAR, np.uint64(h), np.int64(length), np.int64(min_size),
        np.int64(max_size), np.uint64(mask),
    )
    return int(k), int(pos), int(h), int(length)
