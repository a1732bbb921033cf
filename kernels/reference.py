"""Slow, obvious NumPy implementations: the ground truth for every kernel.

Every accelerated backend is tested against these functions. They favour
being evidently correct over being fast; none of them is used on a hot path.
"""

from __future__ import annotations

import numpy as np

from .gear import GEAR

_U64 = np.uint64

# ---------------------------------------------------------------------------
# Content-defined chunking (gear hash), see docs/architecture.md
# ---------------------------------------------------------------------------


def gear_window_hashes(data: np.ndarray) -> np.ndarray:
    """Gear hash after every byte: ``h[i] = sum_k GEAR[data[i-k]] << k (mod 2**64)``.

    Terms with ``k >= 64`` shift out of a 64-bit word, so the sum runs over
    ``k = 0 .. min(i, 63)``; this is the definition, computed one shift at a
    time over the whole array.
    """
    data = np.asarray(data, dtype=np.uint8)
    g = GEAR[data]
    h = np.zeros(len(data), dtype=_U64)
    with np.errstate(over="ignore"):
        for k in range(min(64, len(data))):
            h[k:] += g[: len(data) - k] << _U64(k)
    return h


def cdc_candidates(data: np.ndarray, mask: int) -> np.ndarray:
    """End offsets ``i + 1`` of every byte ``i`` whose window hash has ``h & mask == 0``."""
    h = gear_window_hashes(data)
    return np.flatnonzero((h & _U64(mask)) == 0).astype(np.int64) + 1


def cdc_cut_points(data: np.ndarray, min_size: int, max_size: int, mask: int) -> np.ndarray:
    """Chunk end offsets: a chunk from ``s`` ends at the first candidate in
    ``[s + min_size, s + max_size]``, else at ``s + max_size``, and never past the end."""
    n = len(data)
    cand = cdc_candidates(data, mask).tolist()
    cuts, s, j = [], 0, 0
    while s < n:
        hi = min(s + max_size, n)
        while j < len(cand) and cand[j] < s + min_size:
            j += 1
        e = cand[j] if j < len(cand) and cand[j] <= hi else hi
        cuts.append(e)
        s = e
    return np.array(cuts, dtype=np.int64)


def cdc_scan_cuts(buf, out, h, length, min_size, max_size, mask):
    """The serial chunker of DESIGN.md, byte by byte in Python integers.

    Same contract as the native ``scan_cuts`` kernels: continue the chunk in
    progress (hash ``h``, ``length`` bytes so far) over ``buf``; write end
    offsets relative to ``buf`` into ``out``; return
    ``(n_cuts, consumed, h, length)``. The hash is reset at every cut, and
    hashing resumes 64 bytes before the minimum size.
    """
    data = bytes(memoryview(buf).cast("B"))
    gear = [int(x) for x in GEAR]
    full = (1 << 64) - 1
    k, pos, n = 0, 0, len(data)
    h, length = int(h), int(length)
    while pos < n and k < len(out):
        byte = data[pos]
        pos += 1
        length += 1
        if length > min_size - 64:
            h = ((h << 1) + gear[byte]) & full
        if (length >= min_size and h & mask == 0) or length == max_size:
            out[k] = pos
            k += 1
            h, length = 0, 0
    return k, pos, h, length
