"""The chunker (streaming, whole-buffer and block-parallel) against the NumPy reference.

The kernels themselves (``cdc_scan``, ``cdc_candidates``, ``cdc_resolve``) are
compared backend by backend with their references in ``tests/test_kernels.py``;
here the Python around them: carried state between blocks, output buffers that
fill up, block boundaries of the parallel scan, and the choice of backends.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import kernels as K
from engine.kernels import CdcParams, Chunker, _registry, cut_points
from engine.kernels import reference as R

from conftest import CDC_BACKENDS, FAST_CDC_BACKENDS, SMALL, random_bytes

DEFAULT = CdcParams()


def ref_cuts(data: bytes, p: CdcParams) -> np.ndarray:
    return R.cdc_cut_points(np.frombuffer(data, np.uint8), p.min_size, p.max_size, p.mask)


def serial_ref_cuts(data: bytes, p: CdcParams) -> list[int]:
    out = [0] * (len(data) // p.min_size + 2)
    k, used, _, length = R.cdc_scan(data, out, 0, 0, p.min_size, p.max_size, p.mask)
    assert used == len(data)
    return out[:k] + ([len(data)] if length else [])


def check_chunk_sizes(cuts: np.ndarray, n: int, p: CdcParams):
    assert (len(cuts) == 0) == (n == 0)
    if n:
        assert cuts[-1] == n
        sizes = np.diff(np.concatenate([[0], cuts]))
        assert (sizes[:-1] >= p.min_size).all() and (sizes <= p.max_size).all()
        assert sizes[-1] >= 1


INPUTS = {
    "empty": b"",
    "one": b"\x07",
    "shorter_than_min": random_bytes(SMALL.min_size - 1, 1),
    "exactly_min": random_bytes(SMALL.min_size, 2),
    "exactly_max": random_bytes(SMALL.max_size, 3),
    "max_plus_one": random_bytes(SMALL.max_size + 1, 4),
    "zeros": bytes(20_000),
    "ones": b"\xff" * 20_000,
    "period_2": b"\x00\x01" * 10_000,
    "period_64": bytes(range(64)) * 300,
    "period_65": bytes(range(65)) * 300,
    "random": random_bytes(50_000, 5),
}


def test_two_references_agree():
    # The vectorized window-hash reference against the literal byte-by-byte chunker of DESIGN.md.
    for name, data in INPUTS.items():
        assert serial_ref_cuts(data, SMALL) == ref_cuts(data, SMALL).tolist(), name
    data = random_bytes(300_000, 9)
    assert serial_ref_cuts(data, DEFAULT) == ref_cuts(data, DEFAULT).tolist()


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_cut_points_match_reference_small_params(name):
    data = INPUTS[name]
    cuts = cut_points(data, SMALL)
    np.testing.assert_array_equal(cuts, ref_cuts(data, SMALL))
    check_chunk_sizes(cuts, len(data), SMALL)


@pytest.mark.parametrize("backend", FAST_CDC_BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backend_matches_reference_default_params(backend, seed):
    data = random_bytes(3 << 20, seed)
    cuts = cut_points(data, DEFAULT, backend=backend)
    np.testing.assert_array_equal(cuts, ref_cuts(data, DEFAULT))
    check_chunk_sizes(cuts, len(data), DEFAULT)
    assert 20 < len(cuts) < 3 * (3 << 20) // DEFAULT.min_size


@pytest.mark.parametrize("backend", FAST_CDC_BACKENDS)
def test_no_cut_candidates_forces_max(backend):
    # All-zero data has one constant window hash; with this table it never passes the mask,
    # so every chunk is exactly max_size.
    data = bytes(1 << 20)
    cuts = cut_points(data, DEFAULT, backend=backend)
    assert (np.diff(np.concatenate([[0], cuts])) == DEFAULT.max_size).all()


@pytest.mark.parametrize("backend", FAST_CDC_BACKENDS)
def test_every_position_a_candidate_gives_min_size(backend):
    # avg_size=64 with a 6-bit mask: find a constant byte whose window hash passes it;
    # then every position is a candidate and every chunk has exactly min_size bytes.
    p = CdcParams(avg_size=64, min_size=64, max_size=128)
    for c in range(256):
        if len(R.cdc_candidates(bytes([c]) * 128, 64, p.mask)) == 64:  # every full window
            break
    else:
        pytest.skip("no constant byte passes a 6-bit mask with this table")
    data = bytes([c]) * 10_000
    cuts = cut_points(data, p, backend=backend)
    np.testing.assert_array_equal(cuts, ref_cuts(data, p))
    assert (np.diff(np.concatenate([[0], cuts]))[:-1] == 64).all()


@pytest.mark.parametrize("backend", CDC_BACKENDS)
@pytest.mark.parametrize("block", [1, 63, 64, 65, 1000, 4096, 100_003])
def test_streaming_equals_whole(backend, block):
    data = random_bytes(200_000 if backend == "reference" else 1 << 20, 7)
    if backend == "reference" and block < 1000:
        data = data[:30_000]
    p = SMALL if backend == "reference" else DEFAULT
    whole = cut_points(data, p, backend=backend)
    c = Chunker(p, backend)
    parts = [c.update(data[i:i + block]) for i in range(0, len(data), block)] + [c.finish()]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert c.offset == len(data)


def test_streaming_with_empty_blocks_and_reuse():
    data = random_bytes(500_000, 11)
    c = Chunker()
    parts = [c.update(b""), c.update(data[:10]), c.update(b""), c.update(data[10:]), c.finish()]
    np.testing.assert_array_equal(np.concatenate(parts), cut_points(data))
    # after finish() the chunker starts a new stream at the current offset
    again = c.update(data)
    fin = c.finish()
    np.testing.assert_array_equal(np.concatenate([again, fin]) - len(data), cut_points(data))


@pytest.mark.parametrize("block_size", [1 << 16, 1 << 20, (1 << 20) + 17])
def test_parallel_candidates_equal_serial(block_size):
    data = random_bytes(6 << 20, 3)
    serial = cut_points(data, backend="cython")
    with ThreadPoolExecutor(2) as ex:
        par = cut_points(data, executor=ex, block_size=block_size)
    np.testing.assert_array_equal(par, serial)


def test_parallel_candidates_small_params_adversarial():
    # Period-3 data with a 6-bit mask makes candidates dense, and a constant run of a byte
    # that passes the mask makes every position one: blocks of 4096 bytes see both.
    p = CdcParams(avg_size=64, min_size=64, max_size=256)
    hit = next(c for c in range(256) if len(R.cdc_candidates(bytes([c]) * 128, 64, p.mask)) == 64)
    data = (b"\x00\x01\x02" * 50_000) + bytes([hit]) * 30_000 + random_bytes(100_000, 5)
    with ThreadPoolExecutor(2) as ex:
        par = cut_points(data, p, executor=ex, block_size=4096)
    np.testing.assert_array_equal(par, ref_cuts(data, p))


@pytest.fixture
def counting_candidate_backend():
    """A 'cuda' backend of the candidate scan (the Cython one, counted) for large inputs only."""
    calls = []
    scan = K.get("cdc_candidates", "cython")

    def cdc_candidates(buf, start, mask):
        calls.append(len(buf))
        return scan(buf, start, mask)

    def large(buf, start, mask):
        """inputs of 1 MiB and more"""
        return len(buf) >= 1 << 20

    real = _registry._KERNELS["cdc_candidates"].get("cuda")  # the real cuda backend, kept
    K.register_kernel("cdc_candidates", cuda=lambda: cdc_candidates, is_usable_for={"cuda": large})
    yield calls
    if real is None:
        del _registry._KERNELS["cdc_candidates"]["cuda"]
    else:
        _registry._KERNELS["cdc_candidates"]["cuda"] = real
    _registry._PLANS.pop("cdc_candidates", None)


def test_parallel_scan_takes_any_registered_candidate_backend(counting_candidate_backend):
    data = random_bytes(5 << 20, 4)
    with ThreadPoolExecutor(2) as ex:
        par = cut_points(data, executor=ex, block_size=1 << 20)
        assert counting_candidate_backend == [1 << 20] + [(1 << 20) + 63] * 4
        np.testing.assert_array_equal(par, cut_points(data, backend="cython"))
        small = data[: 1 << 19]  # under 1 MiB: the predicate says no, the cython scan runs
        np.testing.assert_array_equal(cut_points(small, executor=ex, block_size=1 << 17),
                                      cut_points(small, backend="cython"))
        with pytest.raises(K.BackendNotApplicable, match="inputs of 1 MiB and more"):
            cut_points(small, executor=ex, block_size=1 << 17, backend="cuda")
    assert len(counting_candidate_backend) == 5


def test_forced_backend_without_candidate_scan_is_serial():
    data = random_bytes(3 << 20, 6)
    with ThreadPoolExecutor(2) as ex:
        for backend in ("numba", "reference") if "numba" in CDC_BACKENDS else ("reference",):
            cuts = cut_points(data[: 1 << 20] if backend == "reference" else data, DEFAULT,
                              backend=backend, executor=ex, block_size=1 << 18)
            want = cut_points(data[: 1 << 20] if backend == "reference" else data, DEFAULT)
            np.testing.assert_array_equal(cuts, want)


def test_insert_one_byte_reuses_chunks():
    """A 1-byte insert near the start of 64 MiB changes only the chunks around the edit."""
    from engine.store.pipeline import chunk_bytes

    data = random_bytes(64 << 20, 21)
    edited = data[:1000] + b"\x42" + data[1000:]
    a = chunk_bytes(data, output="numpy")
    b = chunk_bytes(edited, output="numpy")
    old = {bytes(x) for x in a["id"]}
    reused = sum(bytes(x) in old for x in b["id"])
    assert reused / len(b) >= 0.95
    assert len(b) - reused <= 2  # only the chunk holding the insert (and maybe its neighbour)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(min_size=0, max_size=6000), avg_exp=st.integers(6, 9),
       min_size=st.integers(64, 200), extra=st.integers(0, 800))
def test_property_backends_agree(data, avg_exp, min_size, extra):
    p = CdcParams(avg_size=1 << avg_exp, min_size=min_size, max_size=min_size + extra)
    expect = ref_cuts(data, p)
    for backend in CDC_BACKENDS:
        np.testing.assert_array_equal(cut_points(data, p, backend=backend), expect)
    check_chunk_sizes(expect, len(data), p)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=0, max_size=20_000),
       splits=st.lists(st.integers(0, 20_000), max_size=6))
def test_property_streaming_split_anywhere(data, splits):
    cuts = sorted({min(s, len(data)) for s in splits})
    bounds = [0, *cuts, len(data)]
    for backend in FAST_CDC_BACKENDS:
        c = Chunker(SMALL, backend)
        parts = [c.update(data[a:b]) for a, b in zip(bounds, bounds[1:])] + [c.finish()]
        np.testing.assert_array_equal(np.concatenate(parts), ref_cuts(data, SMALL))


@settings(max_examples=30, deadline=None)
@given(data=st.binary(min_size=2000, max_size=20_000), pos=st.integers(0, 1999),
       ins=st.binary(min_size=1, max_size=8))
def test_property_chunks_before_edit_unchanged(data, pos, ins):
    # A cut depends only on the bytes before it: cuts at or before the edit do not move.
    a = cut_points(data, SMALL)
    b = cut_points(data[:pos] + ins + data[pos:], SMALL)
    before = [x for x in a.tolist() if x <= pos]
    assert b.tolist()[: len(before)] == before
