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


SEGMENT = 256 << 20  # chunk_hash_host: bytes per copy to the device


def chunk_hash_host(buf, params: CdcParams | None = None, key: bytes | None = None, *,
                    segment: int = SEGMENT) -> tuple[np.ndarray, np.ndarray]:
    """:func:`chunk_hash` of a buffer in host memory, copied to the device segment by
    segment while the segments already there are scanned and their chunks hashed.

    Every copy is queued at once on a stream of its own (from pinned memory they run
    beside the kernels); the scan of segment ``k`` waits only for its own copy. After each
    segment, the minimum and maximum sizes are applied to all candidates so far (``n`` =
    the bytes so far): every cut before the end of the bytes so far is final, since a cut
    depends only on candidates before it, so the chunks up to the last such cut are hashed
    at once, and only the chunk still open waits for the next segment. The result is
    identical to :func:`chunk_hash` of the same bytes (``tests/test_cuda_hash.py``).
    """
    params = params or CdcParams()
    if isinstance(segment, bool) or not isinstance(segment, int) or segment < 1:
        raise ValueError(f"segment must be a positive number of bytes, got {segment!r}")
    dev = cuda_runtime.current()
    src = cuda_runtime.host_bytes(buf)
    n = len(src)
    if n == 0:
        return np.empty(0, np.int64), np.empty((0, 32), np.uint8)
    data = dev.xp.empty(n, dtype=dev.xp.uint8)
    bounds = [(a, min(a + segment, n)) for a in range(0, n, segment)]
    copied = [dev.to_device_async(src[a:b], data, a) for a, b in bounds]
    cands: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    done = 0  # the end of the last chunk hashed
    for (a, b), event in zip(bounds, copied):
        dev.wait(event)
        cands.append(cdc_candidates(data[:b], a, params.mask))
        every = np.concatenate(cands)
        resolve = _registry.select(RESOLVE, every, b, params.min_size, params.max_size)
        cuts = np.asarray(resolve(every, b, params.min_size, params.max_size), dtype=np.int64)
        final = cuts if b == n else cuts[:-1]  # the last cut at b < n is only the data's end
        new = final[final > done]
        if len(new):
            ids.append(blake3_many(data, np.concatenate([[done], new]).astype(np.int64), key))
            ends.append(new)
            done = int(new[-1])
    return np.concatenate(ends), np.concatenate(ids)
