"""Gear-hash chunk candidates of a buffer on the GPU, ``cuda`` backend of kernel
``cdc_candidates`` (see ``reference.cdc_candidates``).

Thread mapping. The gear hash after byte ``i`` depends only on the 64 bytes ending at
``i`` (older bytes shift out of the 64-bit word), so each thread takes a stretch of
``STRETCH`` positions, warms its hash on the up-to-63 bytes before the stretch, then rolls
it over the stretch and appends every position whose hash passes the mask to one output
list through an atomic counter. The list (about one entry per ``avg_size`` bytes) is
sorted, since atomics append in no particular order, and copied to the host.

Where the min/max resolution runs: on the host, over the compact candidate list, with
the same ``cdc_resolve`` kernel as the CPU chunker (Cython). The list is about 1/65,536
of the bytes at the default sizes (64 K entries for 4 GiB: 0.5 MiB to copy), and the
resolution is serial by nature (each cut depends on the previous one): on the device it
would be one thread walking the list while the GPU idles, on the host it takes well
under a millisecond per GiB. If the list overflows its capacity (adversarial input can
make every position a candidate), it is grown to the exact count and the scan rerun.
"""

from __future__ import annotations

import numpy as np

from . import cuda_runtime
from .gear import GEAR

SRC = cuda_runtime.CudaSource("cdc", r"""
extern "C" __global__ void mlops_gear_candidates(const u8* __restrict__ buf, i64 n, i64 start,
                                                 i64 stretch, const u64* __restrict__ gear, u64 mask,
                                                 i64* __restrict__ out, u64* __restrict__ count,
                                                 i64 cap) {
    i64 t = MLOPS_GLOBAL_ID();
    i64 p0 = start + t * stretch;
    if (p0 >= n) return;
    i64 p1 = p0 + stretch;
    if (p1 > n) p1 = n;
    i64 lo = p0 - 63;
    if (lo < 0) lo = 0;
    u64 h = 0;
    for (i64 i = lo; i < p0; i++) h = (h << 1) + gear[buf[i]];
    for (i64 i = p0; i < p1; i++) {
        h = (h << 1) + gear[buf[i]];
        if ((h & mask) == 0) {
            u64 k = atomicAdd(count, 1ull);
            if ((i64)k < cap) out[k] = i + 1;
        }
    }
}
""")

STRETCH = 4096  # positions per thread: 63 bytes of warm-up cost 1.5% more work
_BLOCK = 128


def gear_table(dev):
    """The gear table on ``dev``, copied once per device."""
    table = getattr(dev, "_mlops_gear", None)
    if table is None:
        table = dev._mlops_gear = dev.to_device(np.ascontiguousarray(GEAR))
    return table


def cdc_candidates(buf, start, mask):
    """End offsets ``i + 1`` (``i >= start``) of every byte whose window hash has
    ``h & mask == 0``, sorted, as a host int64 array; ``buf`` on the device or the host."""
    dev = cuda_runtime.current()
    data = dev.device_bytes(buf)
    n = int(data.size)
    start = int(start)
    if n <= start:
        return np.empty(0, dtype=np.int64)
    threads = -(-(n - start) // STRETCH)
    cap = max(1024, 4 * ((n - start) >> max(int(mask).bit_count() - 2, 0)))
    while True:
        out = dev.xp.empty(cap, dtype=dev.xp.int64)
        count = dev.xp.zeros(1, dtype=dev.xp.uint64)
        dev.launch(SRC, "mlops_gear_candidates", cuda_runtime.launch_grid(threads, _BLOCK), _BLOCK,
                   (data, n, start, STRETCH, gear_table(dev), int(mask), out, count, cap))
        found = int(dev.to_host(count)[0])
        if found <= cap:
            break
        cap = found  # adversarial input: rerun with room for every candidate
    return dev.to_host(dev.xp.sort(out[:found])).astype(np.int64, copy=False)
