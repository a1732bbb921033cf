"""Gathering byte ranges of a device buffer into one contiguous buffer, ``cuda`` backend of
kernel ``gather_ranges`` (see ``reference.gather_ranges``).

The registry copies to the host only the chunks of a device checkpoint that the store
lacks: they are gathered here into one buffer, so that one transfer (into pinned memory)
moves them instead of one small copy per chunk.

Thread mapping: one thread per output byte, grid-strided. The range an output byte
belongs to is found by a binary search over the ranges' output offsets (the prefix sums of
their lengths), so the kernel needs no cooperation between threads.
"""

from __future__ import annotations

import numpy as np

from . import cuda_runtime

SRC = cuda_runtime.CudaSource("gather", r"""
extern "C" __global__ void mlops_gather_ranges(const u8* __restrict__ src, const i64* __restrict__ starts,
                                               const i64* __restrict__ dst_off, i64 nranges, i64 total,
                                               u8* __restrict__ dst) {
    for (i64 o = MLOPS_GLOBAL_ID(); o < total; o += MLOPS_GLOBAL_STRIDE()) {
        // the last range whose output offset is <= o (dst_off has nranges + 1 entries)
        i64 lo = 0, hi = nranges - 1;
        while (lo < hi) {
            i64 mid = (lo + hi + 1) >> 1;
            if (dst_off[mid] <= o) lo = mid; else hi = mid - 1;
        }
        dst[o] = src[starts[lo] + (o - dst_off[lo])];
    }
}
""")

_BLOCK = 256
_MAX_GRID = 1 << 16


def gather_ranges(buf, starts, lengths):
    """``buf[starts[i]:starts[i] + lengths[i]]`` for every ``i``, concatenated (uint8).

    ``buf`` is a uint8 array on the device (a host array is copied there first);
    ``starts`` and ``lengths`` are host integer arrays. Returns a device array when
    ``buf`` is one (the emulator's arrays are NumPy arrays), else a host array.
    """
    dev = cuda_runtime.current()
    on_device = dev.holds(buf)
    src = dev.device_bytes(buf)
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    if starts.shape != lengths.shape or starts.ndim != 1:
        raise ValueError(f"starts and lengths must be 1-D of one length, got {starts.shape} "
                         f"and {lengths.shape}")
    if len(starts) and (int(lengths.min()) < 0 or int(starts.min()) < 0
                        or int((starts + lengths).max()) > int(src.size)):
        raise ValueError(f"ranges must lie within the buffer's {int(src.size)} bytes")
    dst_off = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=dst_off[1:])
    total = int(dst_off[-1])
    out = dev.xp.empty(total, dtype=dev.xp.uint8)
    if total:
        grid = cuda_runtime.launch_grid(total, _BLOCK, _MAX_GRID)
        dev.launch(SRC, "mlops_gather_ranges", grid, _BLOCK,
                   (src, dev.to_device(starts), dev.to_device(dst_off), len(starts), total, out))
    return out if on_device else dev.to_host(out)
