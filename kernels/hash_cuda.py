"""Chunk and hash a buffer on the GPU: the device half of storing a checkpoint from GPU
memory (``engine.store.pipeline.ChunkSink.put_device``).

:func:`chunk_hash` finds the gear-hash candidates on the device (``cdc_cuda``), applies
the minimum and maximum chunk sizes on the host over the short candidate list
(``cdc_resolve``, as the CPU chunker does), then hashes every chunk with BLAKE3 on the
device (``blake3_cuda``). Only the candidates, the chunk ends and the 32-byte ids cross to
the host; the result is identical to ``engine.store.pipeline.chunk_bytes`` of the same
bytes (``tests/test_cuda_hash.py``).
"""

from __future__ import annotations

import numpy as np

from . import _registry, cuda_runtime
from .blake3_cuda import blake3_many
from .cdc import RESOLVE, CdcParams
from .cdc_cuda import cdc_candidates


def chunk_hash(buf, params: CdcParams | None = None, key: bytes | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(ends, ids)`` of the content-defined chunks of ``buf``: int64 end offsets and a uint8
    ``(n, 32)`` array of BLAKE3 ids (keyed BLAKE3 with ``key``, an encrypted store's
    ``id_key``).

    ``buf`` is a uint8 array on the device (the emulator's are NumPy arrays); a host
    buffer is copied to the device first.
    """
    params = params or CdcParams()
    dev = cuda_runtime.current()
    data = dev.device_bytes(buf)
    n = int(data.size)
    if n == 0:
        return np.empty(0, np.int64), np.empty((0, 32), np.uint8)
    cand = cdc_candidates(data, 0, params.mask)
    resolve = _registry.select(RESOLVE, cand, n, params.min_size, params.max_size)
    ends = np.asarray(resolve(cand, n, params.min_size, params.max_size), dtype=np.int64)
    offsets = np.concatenate([np.zeros(1, np.int64), ends])
    return ends, blake3_many(data, offsets, key)
