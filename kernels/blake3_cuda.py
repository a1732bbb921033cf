"""BLAKE3 of many byte ranges of one buffer in one pass, ``cuda`` backend of kernel
``blake3_many`` (see ``reference.blake3_many``); bit-identical to the ``blake3`` package,
plain and keyed (the ids of an encrypted store).

Thread mapping. BLAKE3 splits an input into 1 KiB chunks, compresses each chunk's blocks
into a chaining value, then merges chaining values pairwise up a left-complete binary
tree. Here every 1 KiB chunk of every range is one thread of one launch
(``mlops_blake3_chunks``): it finds its range by a binary search over the ranges' chunk
counts, compresses its up-to-16 blocks (with ``ROOT`` on the last block when its range is a
single chunk) and writes its chaining value. Then one launch per tree level
(``mlops_blake3_parents``): at level ``L`` the thread of chunk ``j`` of a range merges the
nodes at ``j`` and ``j + 2**L`` when ``j`` is a multiple of ``2**(L+1)`` and the right node
exists (an odd last node is carried up unchanged: pairwise merging with carry builds
exactly BLAKE3's tree), with ``ROOT`` on a range's last merge. The launches run until the
largest range is one node; the digest of range ``i`` is then the node at its first chunk.
Words are read four bytes at a time where a chunk starts 4-byte aligned, else byte by byte.
"""

from __future__ import annotations

import numpy as np

from . import cuda_runtime

SRC = cuda_runtime.CudaSource("blake3", r"""
#define B3_CHUNK_START 1u
#define B3_CHUNK_END 2u
#define B3_PARENT 4u
#define B3_ROOT 8u

__device__ __forceinline__ u32 b3_rotr(u32 x, int n) { return (x >> n) | (x << (32 - n)); }

__device__ __forceinline__ void b3_g(u32* s, int a, int b, int c, int d, u32 x, u32 y) {
    s[a] = s[a] + s[b] + x; s[d] = b3_rotr(s[d] ^ s[a], 16);
    s[c] = s[c] + s[d];     s[b] = b3_rotr(s[b] ^ s[c], 12);
    s[a] = s[a] + s[b] + y; s[d] = b3_rotr(s[d] ^ s[a], 8);
    s[c] = s[c] + s[d];     s[b] = b3_rotr(s[b] ^ s[c], 7);
}

// cv (8 words) <- the first 8 output words of compressing block m (16 words)
__device__ void b3_compress(u32* cv, const u32* m_in, u64 counter, u32 block_len, u32 flags) {
    const u32 iv[4] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au};
    const int perm[16] = {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8};
    u32 s[16], m[16], t[16];
    for (int i = 0; i < 8; i++) s[i] = cv[i];
    for (int i = 0; i < 4; i++) s[8 + i] = iv[i];
    s[12] = (u32)counter; s[13] = (u32)(counter >> 32); s[14] = block_len; s[15] = flags;
    for (int i = 0; i < 16; i++) m[i] = m_in[i];
    for (int r = 0; r < 7; r++) {
        b3_g(s, 0, 4, 8, 12, m[0], m[1]);
        b3_g(s, 1, 5, 9, 13, m[2], m[3]);
        b3_g(s, 2, 6, 10, 14, m[4], m[5]);
        b3_g(s, 3, 7, 11, 15, m[6], m[7]);
        b3_g(s, 0, 5, 10, 15, m[8], m[9]);
        b3_g(s, 1, 6, 11, 12, m[10], m[11]);
        b3_g(s, 2, 7, 8, 13, m[12], m[13]);
        b3_g(s, 3, 4, 9, 14, m[14], m[15]);
        if (r < 6) {
            for (int i = 0; i < 16; i++) t[i] = m[perm[i]];
            for (int i = 0; i < 16; i++) m[i] = t[i];
        }
    }
    for (int i = 0; i < 8; i++) cv[i] = s[i] ^ s[i + 8];
}

// the range holding global chunk j: the last i with base[i] <= j (base: n + 1 prefix sums)
__device__ __forceinline__ i64 b3_range_of(const i64* base, i64 n, i64 j) {
    i64 lo = 0, hi = n - 1;
    while (lo < hi) {
        i64 mid = (lo + hi + 1) >> 1;
        if (base[mid] <= j) lo = mid; else hi = mid - 1;
    }
    return lo;
}

extern "C" __global__ void mlops_blake3_chunks(const u8* __restrict__ data, const i64* __restrict__ starts,
                                               const i64* __restrict__ lens, const i64* __restrict__ base,
                                               i64 nranges, i64 nchunks, const u32* __restrict__ key,
                                               u32 flags0, u32* __restrict__ cvs) {
    i64 j = MLOPS_GLOBAL_ID();
    if (j >= nchunks) return;
    i64 r = b3_range_of(base, nranges, j);
    i64 local = j - base[r];
    i64 nb = base[r + 1] - base[r];
    i64 off = (i64)local * 1024;
    i64 len = lens[r] - off;
    if (len > 1024) len = 1024;
    if (len < 0) len = 0;
    const u8* p = data + starts[r] + off;
    bool aligned = (((unsigned long long)p) & 3ull) == 0;
    u32 cv[8];
    for (int i = 0; i < 8; i++) cv[i] = key[i];
    int nblocks = len == 0 ? 1 : (int)((len + 63) / 64);
    for (int b = 0; b < nblocks; b++) {
        i64 bo = (i64)b * 64;
        i64 blen = len - bo;
        if (blen > 64) blen = 64;
        u32 m[16];
        if (blen == 64 && aligned) {
            const u32* w = (const u32*)(p + bo);
            for (int i = 0; i < 16; i++) m[i] = w[i];
        } else {
            for (int i = 0; i < 16; i++) {
                u32 v = 0;
                for (int k = 0; k < 4; k++) {
                    i64 at = i * 4 + k;
                    if (at < blen) v |= ((u32)p[bo + at]) << (8 * k);
                }
                m[i] = v;
            }
        }
        u32 f = flags0;
        if (b == 0) f |= B3_CHUNK_START;
        if (b == nblocks - 1) {
            f |= B3_CHUNK_END;
            if (nb == 1) f |= B3_ROOT;
        }
        b3_compress(cv, m, (u64)local, (u32)blen, f);
    }
    for (int i = 0; i < 8; i++) cvs[j * 8 + i] = cv[i];
}

extern "C" __global__ void mlops_blake3_parents(u32* __restrict__ cvs, const i64* __restrict__ base,
                                                i64 nranges, i64 nchunks, i64 step,
                                                const u32* __restrict__ key, u32 flags0) {
    i64 j = MLOPS_GLOBAL_ID();
    if (j >= nchunks) return;
    i64 r = b3_range_of(base, nranges, j);
    i64 local = j - base[r];
    i64 nb = base[r + 1] - base[r];
    if (local % (2 * step) != 0 || local + step >= nb) return;
    u32 m[16], cv[8];
    for (int i = 0; i < 8; i++) { m[i] = cvs[j * 8 + i]; m[8 + i] = cvs[(j + step) * 8 + i]; }
    for (int i = 0; i < 8; i++) cv[i] = key[i];
    u32 f = flags0 | B3_PARENT;
    if (nb <= 2 * step) f |= B3_ROOT;
    b3_compress(cv, m, 0ull, 64u, f);
    for (int i = 0; i < 8; i++) cvs[j * 8 + i] = cv[i];
}

extern "C" __global__ void mlops_blake3_digests(const u32* __restrict__ cvs, const i64* __restrict__ base,
                                                i64 nranges, u32* __restrict__ out) {
    i64 r = MLOPS_GLOBAL_ID();
    if (r >= nranges) return;
    for (int i = 0; i < 8; i++) out[r * 8 + i] = cvs[base[r] * 8 + i];
}
""")

_IV = np.array([0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
                0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19], dtype=np.uint32)
KEYED_HASH = 16
_BLOCK = 128


def _key_words(key) -> tuple[np.ndarray, int]:
    if key is None:
        return _IV, 0
    key = bytes(key)
    if len(key) != 32:
        raise ValueError(f"key must be 32 bytes, got {len(key)}")
    return np.frombuffer(key, dtype="<u4").astype(np.uint32), KEYED_HASH


def blake3_many(buf, offsets, key):
    """BLAKE3-256 of ``buf[offsets[i]:offsets[i + 1]]`` for each ``i``: uint8 ``(n, 32)``.

    ``buf`` is a uint8 device array, or any host buffer (copied to the device first);
    ``offsets`` holds ``n + 1`` non-decreasing int64 boundaries; ``key`` None or 32 bytes.
    Only the digests come back to the host.
    """
    dev = cuda_runtime.current()
    words, flags0 = _key_words(key)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    n = max(len(offsets) - 1, 0)
    if n == 0:
        return np.empty((0, 32), dtype=np.uint8)
    data = dev.device_bytes(buf)
    # the kernels read wherever the offsets point: check them here, not by a fault there
    if offsets[0] < 0 or offsets[-1] > data.size or bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError(f"offsets must be non-decreasing within [0, {data.size}]")
    if data.size == 0:  # a launch needs a non-null pointer: one spare byte
        data = dev.to_device(np.zeros(1, np.uint8))
    starts = offsets[:-1]
    lens = offsets[1:] - starts
    counts = np.maximum((lens + 1023) // 1024, 1)
    base = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=base[1:])
    nchunks = int(base[-1])
    key_d = dev.to_device(words)
    base_d = dev.to_device(base)
    cvs = dev.xp.empty(nchunks * 8, dtype=dev.xp.uint32)
    grid = cuda_runtime.launch_grid(nchunks, _BLOCK)
    dev.launch(SRC, "mlops_blake3_chunks", grid, _BLOCK,
               (data, dev.to_device(starts), dev.to_device(lens), base_d, n, nchunks, key_d,
                flags0, cvs))
    step = 1
    widest = int(counts.max())
    while step < widest:
        dev.launch(SRC, "mlops_blake3_parents", grid, _BLOCK,
                   (cvs, base_d, n, nchunks, step, key_d, flags0))
        step *= 2
    out = dev.xp.empty(n * 8, dtype=dev.xp.uint32)
    dev.launch(SRC, "mlops_blake3_digests", cuda_runtime.launch_grid(n, _BLOCK), _BLOCK,
               (cvs, base_d, n, out))
    return dev.to_host(out).view(np.uint8).reshape(n, 32)
