"""The guard's batch kernels, ``cuda`` backend (CuPy; host emulation in tests).

Same contracts and codes as :mod:`engine.kernels.reference_guard` (and ``guard_numba``):
host NumPy arrays in, host NumPy arrays out, of the reference's dtypes.

Thread mappings
---------------
``guard_range`` (``mlops_guard_range``)
    One thread per value (grid-strided): 1 below ``lo``, then 2 above ``hi``, then 3 for
    NaN unless ``nan_ok``, the last that applies winning, as the reference's masks do.
``guard_category`` (``mlops_guard_category``)
    One thread per value: 3 for a null (``index < 0``) unless ``null_ok``, else
    ``seen[index]`` read as 0 (seen) or 1 (unseen). Indices past ``seen`` raise
    IndexError on the host before the launch, as the reference's indexing does.
``guard_text`` (``mlops_guard_text``)
    One thread per string, walking its bytes in order as ``guard_numba`` does: every
    byte that is not a continuation byte starts a character, which reads as many of the
    following bytes as its lead byte announces (zeros past the end of the *buffer*,
    as ``reference_guard.decode_utf8``), so invalid UTF-8 decodes exactly as there. The
    thread looks each code point up in ``char_ok`` (the last entry for every code point
    past it), and adds ``scores[splitmix64(c0 << 42 | c1 << 21 | c2) % len(scores)]``
    for each trigram in order, so its sum is the reference's (a sequential sum per string).
"""

from __future__ import annotations

import numpy as np

from . import cuda_runtime

SRC = cuda_runtime.CudaSource("guard", r"""
extern "C" __global__ void mlops_guard_range(const double* __restrict__ x, i64 n, double lo,
                                             double hi, i32 nan_ok, u8* __restrict__ out) {
    for (i64 i = MLOPS_GLOBAL_ID(); i < n; i += MLOPS_GLOBAL_STRIDE()) {
        double v = x[i];
        u8 code = 0;
        if (v < lo) code = 1;
        if (v > hi) code = 2;
        if (!nan_ok && isnan(v)) code = 3;
        out[i] = code;
    }
}

extern "C" __global__ void mlops_guard_category(const i64* __restrict__ idx, i64 n,
                                                const u8* __restrict__ seen, i32 null_ok,
                                                u8* __restrict__ out) {
    for (i64 i = MLOPS_GLOBAL_ID(); i < n; i += MLOPS_GLOBAL_STRIDE()) {
        i64 j = idx[i];
        u8 code;
        if (j < 0) code = null_ok ? 0 : 3;
        else code = seen[j] ? 0 : 1;
        out[i] = code;
    }
}

__device__ __forceinline__ u64 mlops_guard_trigram(u64 c0, u64 c1, u64 c2) {
    // SplitMix64 (Steele, Lea & Flood, 2014) of the packed trigram, as reference_guard.trigram_hash
    u64 z = ((c0 << 42) | (c1 << 21) | c2) + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

extern "C" __global__ void mlops_guard_text(const u8* __restrict__ data, i64 nd,
                                            const i64* __restrict__ offsets, i64 n,
                                            const u8* __restrict__ char_ok, i64 nok,
                                            const double* __restrict__ scores, u64 nb,
                                            u8* __restrict__ unseen, double* __restrict__ sums,
                                            i64* __restrict__ ntri) {
    for (i64 v = MLOPS_GLOBAL_ID(); v < n; v += MLOPS_GLOBAL_STRIDE()) {
        u32 c0 = 0, c1 = 0;
        i64 k = 0;
        u8 bad = 0;
        double s = 0.0;
        i64 end = offsets[v + 1];
        for (i64 i = offsets[v]; i < end; i++) {
            u32 b = data[i];
            if ((b & 0xC0u) == 0x80u) continue;  // a continuation byte: part of an earlier character
            u32 c;
            if (b < 0x80u) {
                c = b;
            } else {
                i32 more = (b >= 0xC0u) + (b >= 0xE0u) + (b >= 0xF0u);
                c = b & (more == 1 ? 0x1Fu : more == 2 ? 0x0Fu : 0x07u);
                for (i32 j = 1; j <= more; j++) {
                    u32 nxt = i + j < nd ? (u32)data[i + j] : 0u;
                    c = (c << 6) | (nxt & 0x3Fu);
                }
            }
            i64 at = (i64)c < nok - 1 ? (i64)c : nok - 1;
            if (!char_ok[at]) bad = 1;
            if (k >= 2) s += scores[mlops_guard_trigram(c0, c1, c) % nb];
            c0 = c1;
            c1 = c;
            k++;
        }
        unseen[v] = bad;
        sums[v] = s;
        ntri[v] = k > 2 ? k - 2 : 0;
    }
}
""")

_BLOCK = 256
_MAX_GRID = 1 << 16


def _grid(n: int) -> int:
    return cuda_runtime.launch_grid(n, _BLOCK, _MAX_GRID)


def _as_u8(a) -> np.ndarray:
    """A bool array as the bytes a kernel reads (``u8*``), C-contiguous."""
    return np.ascontiguousarray(np.asarray(a, dtype=np.bool_)).view(np.uint8)


def guard_range(x, lo, hi, nan_ok):
    """Range and NaN codes (uint8) of float64 ``x``, as ``reference_guard.guard_range``."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.uint8)
    dev = cuda_runtime.current()
    out = dev.xp.empty(n, dtype=dev.xp.uint8)
    dev.launch(SRC, "mlops_guard_range", _grid(n), _BLOCK,
               (dev.to_device(x), n, float(lo), float(hi), 1 if nan_ok else 0, out))
    return dev.to_host(out)


def guard_category(indices, seen, null_ok):
    """Category codes (uint8) of dictionary ``indices``, as ``reference_guard.guard_category``."""
    idx = np.ascontiguousarray(indices, dtype=np.int64)
    seen = _as_u8(seen)
    n = len(idx)
    if n == 0:
        return np.zeros(0, dtype=np.uint8)
    top = int(idx.max())
    if top >= len(seen):
        raise IndexError(f"index {top} is out of bounds for seen of size {len(seen)}")
    dev = cuda_runtime.current()
    out = dev.xp.empty(n, dtype=dev.xp.uint8)
    seen_d = dev.to_device(seen if len(seen) else np.zeros(1, np.uint8))
    dev.launch(SRC, "mlops_guard_category", _grid(n), _BLOCK,
               (dev.to_device(idx), n, seen_d, 1 if null_ok else 0, out))
    return dev.to_host(out)


def guard_text(data, offsets, char_ok, scores):
    """``(unseen, sums, ntri)`` (uint8, float64, int64) per string, as
    ``reference_guard.guard_text``."""
    data = np.ascontiguousarray(data, dtype=np.uint8)
    off = np.ascontiguousarray(offsets, dtype=np.int64)
    ok = _as_u8(char_ok)
    sc = np.ascontiguousarray(scores, dtype=np.float64)
    n = max(len(off) - 1, 0)
    if n == 0:
        return np.zeros(0, np.uint8), np.zeros(0, np.float64), np.zeros(0, np.int64)
    if len(ok) < 1 or len(sc) < 1:
        raise ValueError("char_ok and scores must not be empty")
    dev = cuda_runtime.current()
    xp = dev.xp
    unseen = xp.empty(n, dtype=xp.uint8)
    sums = xp.empty(n, dtype=xp.float64)
    ntri = xp.empty(n, dtype=xp.int64)
    data_d = dev.to_device(data if len(data) else np.zeros(1, np.uint8))
    dev.launch(SRC, "mlops_guard_text", _grid(n), _BLOCK,
               (data_d, len(data), dev.to_device(off), n, dev.to_device(ok), len(ok),
                dev.to_device(sc), len(sc), unseen, sums, ntri))
    return dev.to_host(unseen), dev.to_host(sums), dev.to_host(ntri)
