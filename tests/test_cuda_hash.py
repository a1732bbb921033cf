"""Chunking and hashing on the device (``engine.kernels.hash_cuda``): the same chunks and
ids as the CPU pipeline, on every kind of input, and nothing but ends and ids come back.

The kernels' cases against the references are in ``tests/kernel_cases.py``
(``cdc_candidates``, ``blake3_many``); these tests check the whole device path.
"""

from __future__ import annotations

from pathlib import Path

import blake3
import numpy as np
import pytest

from engine import kernels as K
from engine.kernels import CdcParams, hash_cuda, reference
from engine.kernels import cuda_runtime as cr
from engine.kernels.blake3_cuda import blake3_many
from engine.kernels.cdc_cuda import STRETCH, cdc_candidates
from engine.kernels.gear import GEAR
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


@pytest.mark.parametrize("segment", [1, 777, 4096, 100_000, 1 << 30])
@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "keyed"])
def test_chunk_hash_host_pipelines_segments_to_the_same_chunks(cuda_device, segment, key):
    for params in (CdcParams(), SMALL):
        for name, data in inputs().items():
            if len(data) > 64 * segment:
                continue  # a launch and a resolve per segment: tiny segments on small inputs
            ends, ids = hash_cuda.chunk_hash_host(data, params, key=key, segment=segment)
            want_ends, want_ids = cpu(data, params, key)
            assert ends.tolist() == want_ends.tolist(), (name, segment)
            assert np.array_equal(ids, want_ids), (name, segment)
    with pytest.raises(ValueError, match="segment must be a positive"):
        hash_cuda.chunk_hash_host(b"x", segment=0)


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


def candidate_backends(data, start, mask) -> dict[str, np.ndarray]:
    """The CPU backends' candidates (the reference, Cython where it is built)."""
    return {b: K.get("cdc_candidates", b)(data, start, mask)
            for b in K.usable_backends("cdc_candidates") if b != "cuda"}


def test_candidates_at_every_stretch_edge(cuda_device):
    # each thread scans STRETCH positions after warming its hash on the 63 bytes before
    # them: lengths and starts on both sides of those edges, masks from dense to default
    rng = np.random.default_rng(8)
    full = rng.integers(0, 256, 2 * STRETCH + 200, dtype=np.uint8)
    masks = [1 << 63, CdcParams(avg_size=64).mask, CdcParams(avg_size=256).mask, CdcParams().mask]
    for length in (0, 1, 63, 64, 65, STRETCH - 1, STRETCH, STRETCH + 1, 2 * STRETCH + 63):
        data = full[:length].copy()
        on_device = cuda_device.to_device(data)
        starts = {0, 1, 62, 63, 64, 65, STRETCH - 1, STRETCH, STRETCH + 64, length - 1, length,
                  length + 3}
        for start in sorted(s for s in starts if s >= 0):
            for mask in masks:
                got = cdc_candidates(on_device, start, mask)
                assert got.dtype == np.int64
                for backend, want in candidate_backends(data, start, mask).items():
                    assert got.tolist() == want.tolist(), (length, start, hex(mask), backend)


def test_dense_candidates_regrow_the_output(cuda_device, monkeypatch):
    # a run of a byte whose window hash passes a 6-bit mask everywhere: every position is a
    # candidate, far over the first capacity (16x the expected count), so the scan reruns
    hit = next(c for c in range(256) if (-int(GEAR[c])) % (1 << 64) & CdcParams(64).mask == 0)
    data = np.full(30_000, hit, np.uint8)
    data[:100] = np.random.default_rng(9).integers(0, 256, 100, dtype=np.uint8)
    launches = []
    launch = cuda_device.launch
    monkeypatch.setattr(cuda_device, "launch",
                        lambda src, name, *a: (launches.append(name), launch(src, name, *a)))
    for start in (0, 5000):
        launches.clear()
        got = cdc_candidates(cuda_device.to_device(data), start, CdcParams(64).mask)
        want = reference.cdc_candidates(data, start, CdcParams(64).mask)
        assert len(want) > 20_000 and got.tolist() == want.tolist()
        assert launches.count("mlops_gear_candidates") == 2, launches


def blake3_of(data: np.ndarray, key) -> bytes:
    return (blake3.blake3(data.tobytes()) if key is None
            else blake3.blake3(data.tobytes(), key=key)).digest()


# every length where BLAKE3's block, chunk and tree logic turns, the largest chunk, a
# multi-level tree with an odd carry (1 MiB + 7: 1025 chunks), empty pieces between
B3_LENGTHS = [131072, 65536, (1 << 20) + 7, 0, 1, 63, 64, 65, 0, 0, 1023, 1024, 1025, 2047,
              2048, 2049, 3 * 1024 + 1, 4096, 4097, 0]


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "keyed"])
def test_blake3_many_equals_the_blake3_package(cuda_device, key):
    rng = np.random.default_rng(13)
    lengths = B3_LENGTHS + rng.integers(0, 6000, 40).tolist()
    data = rng.integers(0, 256, sum(lengths) + 5, dtype=np.uint8)
    on_device = cuda_device.to_device(data)
    # shift 0: the large pieces start 4-byte aligned (whole words read); 3: none is
    for shift in (0, 3):
        offsets = shift + np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        got = blake3_many(on_device, offsets, key)
        assert got.dtype == np.uint8 and got.shape == (len(lengths), 32)
        for i, (a, b) in enumerate(zip(offsets[:-1].tolist(), offsets[1:].tolist())):
            assert got[i].tobytes() == blake3_of(data[a:b], key), (shift, i, b - a)


def test_blake3_many_of_random_overlapping_ranges(cuda_device):
    # pieces need not tile the buffer: the same bytes under several ranges, a host buffer
    rng = np.random.default_rng(14)
    data = rng.integers(0, 256, 20_000, dtype=np.uint8)
    offsets = np.sort(rng.integers(0, len(data) + 1, 60)).astype(np.int64)
    got = blake3_many(data.tobytes(), offsets, KEY)
    want = reference.blake3_many(data, offsets, KEY)
    assert np.array_equal(got, want)
    assert blake3_many(data, np.array([7], np.int64), None).shape == (0, 32)


def test_blake3_many_rejects_bad_offsets_and_keys(cuda_device):
    data = cuda_device.to_device(np.zeros(100, np.uint8))
    for bad in ([0, 101], [-1, 10], [0, 50, 40]):
        with pytest.raises(ValueError, match="offsets"):
            blake3_many(data, np.array(bad, np.int64), None)
    with pytest.raises(ValueError, match="32 bytes"):
        blake3_many(data, np.array([0, 10], np.int64), b"short")


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
