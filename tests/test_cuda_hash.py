"""Chunking and hashing on the device (``engine.kernels.hash_cuda``): the same chunks and
ids as the CPU pipeline, on every kind of input, and nothing but ends and ids come back.

The kernels' cases against the references are in ``tests/kernel_cases.py``
(``cdc_candidates``, ``blake3_many``); these tests check the whole device path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.kernels import CdcParams, hash_cuda
from engine.kernels import cuda_runtime as cr
from engine.store.pipeline import chunk_bytes

SMALL = CdcParams(avg_size=256, min_size=64, max_size=1024)
KEY = bytes(range(1, 33))


def cpu(data: np.ndarray, params: CdcParams, key=None):
    t = chunk_bytes(data.tobytes(), params, output="numpy", key=key)
    return (t["offset"] + t["length"]).astype(np.int64), t["id"]


def inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    rand = rng.integers(0, 256, 700_000, dtype=np.uint8)
    text = np.frombuffer(b"".join(b"row %d,%f\n" % (i, i * 0.5) for i in range(20_000)), np.uint8)
    return {
        "empty": np.empty(0, np.uint8),
        "one byte": rand[:1].copy(),
        "63 bytes": rand[:63].copy(),
        "exactly the maximum chunk (128 KiB)": rand[:128 * 1024].copy(),
        "not a multiple of 1 KiB": rand[:300_001].copy(),
        "random": rand,
        "all zeros (no candidate: every cut at the maximum)": np.zeros(400_000, np.uint8),
        "text": text,
    }


@pytest.mark.parametrize("params", [CdcParams(), SMALL], ids=["64KiB", "256B"])
@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "keyed"])
def test_chunk_hash_equals_the_cpu_pipeline(cuda_device, params, key):
    for name, data in inputs().items():
        ends, ids = hash_cuda.chunk_hash(cuda_device.to_device(data), params, key=key)
        want_ends, want_ids = cpu(data, params, key)
        assert ends.dtype == np.int64 and ids.dtype == np.uint8 and ids.shape == (len(ends), 32)
        assert ends.tolist() == want_ends.tolist(), name
        assert np.array_equal(ids, want_ids), name


def test_a_host_buffer_is_copied_to_the_device_first(cuda_device):
    data = inputs()["random"]
    ends, ids = hash_cuda.chunk_hash(data.tobytes(), SMALL)
    want_ends, want_ids = cpu(data, SMALL)
    assert ends.tolist() == want_ends.tolist() and np.array_equal(ids, want_ids)


def test_only_ends_ids_and_candidates_come_back(cuda_device):
    data = cuda_device.to_device(inputs()["random"])
    before = cuda_device.d2h_bytes
    ends, _ = hash_cuda.chunk_hash(data, CdcParams())
    copied = cuda_device.d2h_bytes - before
    # ids (32 B) per chunk, candidates (8 B each, a few per chunk) and a counter
    assert copied <= 32 * len(ends) + 8 * 8 * len(ends) + 64, copied
    assert copied < data.size // 100


def test_dense_candidates_regrow_the_output(cuda_device):
    # a mask of one bit: half the positions are candidates, far over the first capacity
    from engine.kernels import reference
    from engine.kernels.cdc_cuda import cdc_candidates

    data = np.random.default_rng(9).integers(0, 256, 50_000, dtype=np.uint8)
    mask = 1 << 63
    got = cdc_candidates(cuda_device.to_device(data), 0, mask)
    want = reference.cdc_candidates(data, 0, mask)
    assert len(want) > 20_000 and got.tolist() == want.tolist()


def test_without_a_gpu_the_device_path_names_the_install():
    if cr.gpu_available():
        pytest.skip("a GPU is present")
    with pytest.raises(cr.BackendUnavailable, match="mlops-engine"):
        hash_cuda.chunk_hash(np.zeros(10, np.uint8))


def test_the_gpu_benchmark_runs_on_the_emulator(tmp_path):
    """bench/bench_gpu.py cannot run here; its emulated smoke run keeps the script working."""
    import json
    import subprocess
    import sys

    out = tmp_path / "gpu.json"
    script = Path(__file__).resolve().parents[1] / "bench" / "bench_gpu.py"
    res = subprocess.run([sys.executable, str(script), "--emulate", "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    got = json.loads(out.read_text())
    assert got["device"] == "emulator"
    assert got["hash"]["chunks"] > 0 and got["hash"]["device_resident_GBps"] > 0
    assert got["register"]["second_copied_fraction"] < 0.10
