"""pytest-benchmark suite for chunking (``make bench``); not part of ``make test``.

The side-by-side GB/s table with ratios comes from ``bench/bench_cdc.py``;
this suite tracks the same kernels over time with pytest-benchmark.
"""

from concurrent.futures import ThreadPoolExecutor

import blake3
import pytest

from engine.kernels import CdcParams, cut_points, usable_backends
from engine.store.pipeline import chunk_bytes

P = CdcParams()


@pytest.mark.parametrize("backend", [b for b in ("cython", "numba") if b in usable_backends("cdc_scan")])
def test_chunker_one_core(benchmark, data_64mib, backend):
    cut_points(data_64mib[:1 << 20], P, backend=backend)
    cuts = benchmark(cut_points, data_64mib, P, backend=backend)
    assert cuts[-1] == len(data_64mib)


def test_chunker_parallel_scan(benchmark, data_64mib):
    with ThreadPoolExecutor(2) as ex:
        cuts = benchmark(cut_points, data_64mib, P, executor=ex, block_size=4 << 20)
    assert cuts[-1] == len(data_64mib)


def test_blake3_one_thread(benchmark, data_64mib):
    digest = benchmark(lambda: blake3.blake3(data_64mib, max_threads=1).digest())
    assert len(digest) == 32


def test_chunk_and_hash(benchmark, data_64mib):
    t = benchmark(chunk_bytes, data_64mib)
    assert sum(t.column("length").to_pylist()) == len(data_64mib)
