"""The guard's batch kernels' ``cuda`` backend (``guard_cuda.py``) against the references
(``reference_guard.py``) and an independent spelling of each contract.

Runs on the host emulation (threads in order and reversed) and on a GPU where there is
one (the ``cuda_device`` fixture); ``tests/test_kernels.py`` runs the same functions on
the shared cases of ``kernel_cases.py``. This file adds the bounds and non-finite values
of the range codes, nulls and unseen categories, and text in every width of UTF-8
(ASCII, Spanish, Cyrillic, CJK, emoji), invalid bytes, empty and short strings, slices of
the buffer, the language fixtures of ``test_guard.py``, and grid-strided launches.
"""

from pathlib import Path

import numpy as np
import pytest

from engine.kernels import guard_cuda as G
from engine.kernels import reference_guard as R

LANG = Path(__file__).parent / "data" / "lang"


def utf8(strings):
    enc = [s if isinstance(s, bytes) else s.encode() for s in strings]
    off = np.concatenate([[0], np.cumsum([len(e) for e in enc])]).astype(np.int64)
    return np.frombuffer(b"".join(enc), np.uint8).copy(), off


def assert_text_equal(got, want):
    assert len(got) == 3
    for g, w, dt in zip(got, want, (np.uint8, np.float64, np.int64)):
        assert isinstance(g, np.ndarray) and g.dtype == dt and g.shape == w.shape
        np.testing.assert_array_equal(g, w)  # sums too: one sequential sum per string


# ---------------------------------------------------------------------------
# guard_range
# ---------------------------------------------------------------------------


def expected_range(x, lo, hi, nan_ok):
    return np.array([0 if v != v and nan_ok else 3 if v != v else 1 if v < lo else 2 if v > hi
                     else 0 for v in x], dtype=np.uint8)


def test_range_special_values_and_bounds(cuda_device):
    x = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -1.0, 2.0, np.nextafter(2.0, 3.0),
                  np.nextafter(-1.0, -2.0), 5e-324, -5e-324, 1e308])
    for lo, hi in [(-1.0, 2.0), (2.0, 2.0), (0.0, 0.0), (-0.0, 0.0), (-np.inf, np.inf),
                   (np.inf, np.inf), (-np.inf, -np.inf), (5e-324, 5e-324)]:
        for nan_ok in (False, True):
            got = G.guard_range(x, lo, hi, nan_ok)
            want = R.guard_range(x, lo, hi, nan_ok)
            assert got.dtype == np.uint8 and got.shape == x.shape
            assert np.array_equal(got, want) and np.array_equal(want, expected_range(x, lo, hi, nan_ok))


@pytest.mark.parametrize("n", [0, 1, 255, 256, 257, 1000, 70_001])
def test_range_lengths(cuda_device, n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=n)
    x[rng.random(n) < 0.05] = np.nan
    for nan_ok in (False, True):
        assert np.array_equal(G.guard_range(x, -1.0, 1.0, nan_ok), R.guard_range(x, -1.0, 1.0, nan_ok))


def test_range_grid_strided(cuda_device, monkeypatch):
    monkeypatch.setattr(G, "_MAX_GRID", 3)  # 768 threads for 10 000 values
    x = np.random.default_rng(1).normal(size=10_000)
    assert np.array_equal(G.guard_range(x, -0.5, 0.5, False), R.guard_range(x, -0.5, 0.5, False))


# ---------------------------------------------------------------------------
# guard_category
# ---------------------------------------------------------------------------


def test_category_nulls_and_unseen(cuda_device):
    seen = np.array([True, False, True, False, False])
    idx = np.array([0, 1, 2, 3, 4, -1, -7, 0, 4, -1], dtype=np.int64)
    for null_ok in (False, True):
        got = G.guard_category(idx, seen, null_ok)
        exp = np.array([(0 if null_ok else 3) if j < 0 else (0 if seen[j] else 1) for j in idx],
                       dtype=np.uint8)
        assert got.dtype == np.uint8 and np.array_equal(got, exp)
        assert np.array_equal(R.guard_category(idx, seen, null_ok), exp)
    # every value null, with an empty dictionary; no values at all
    assert np.array_equal(G.guard_category(np.full(4, -1), np.zeros(0, bool), False), np.full(4, 3))
    assert G.guard_category(np.zeros(0, np.int64), np.zeros(2, bool), False).shape == (0,)


@pytest.mark.parametrize("n", [1, 257, 50_000])
def test_category_lengths_and_int32(cuda_device, n):
    rng = np.random.default_rng(n)
    seen = rng.random(300) < 0.4
    idx = rng.integers(-1, 300, n).astype(np.int32)
    for null_ok in (False, True):
        assert np.array_equal(G.guard_category(idx, seen, null_ok),
                              R.guard_category(idx, seen, null_ok))


def test_category_index_past_the_dictionary_raises(cuda_device):
    with pytest.raises(IndexError):
        R.guard_category(np.array([0, 5]), np.ones(3, bool), False)
    with pytest.raises(IndexError):
        G.guard_category(np.array([0, 5]), np.ones(3, bool), False)


# ---------------------------------------------------------------------------
# guard_text
# ---------------------------------------------------------------------------


def _tables(seed=3):
    rng = np.random.default_rng(seed)
    ok = np.ones(0x110002, bool)
    ok[0x0400:0x0530] = False  # Cyrillic not allowed
    return ok, rng.exponential(size=4096)


def test_text_scripts_and_widths(cuda_device):
    ok, scores = _tables()
    strings = ["hello world", "¿Dónde está la estación? Mañana, señor.", "Привет, как дела?",
               "Добрий день", "漢字かな交じり文", "emoji 🙂🚀 and 👍🏽 tones", "\U0010FFFF\U00010000x",
               "a", "ab", "abc", "", "ñ", "жж", "🙂🙂", "🙂🙂🙂", "mixed: abc ж 🙂 é"]
    data, off = utf8(strings)
    got = G.guard_text(data, off, ok, scores)
    want = R.guard_text(data, off, ok, scores)
    assert_text_equal(got, want)
    unseen, _, ntri = got
    # independently: Cyrillic flagged, trigrams = characters - 2
    assert unseen.tolist() == [any(0x0400 <= ord(ch) < 0x0530 for ch in s) for s in strings]
    assert ntri.tolist() == [max(len(s) - 2, 0) for s in strings]


def test_text_sums_are_the_hashed_trigram_scores(cuda_device):
    ok, scores = _tables(4)
    strings = ["añoж🙂x", "abcd", "zz"]
    data, off = utf8(strings)
    _, sums, _ = G.guard_text(data, off, ok, scores)
    for s, total in zip(strings, sums):
        cps = np.array([ord(ch) for ch in s], dtype=np.uint64)
        buckets = R.trigram_hash(cps[:-2], cps[1:-1], cps[2:]) % np.uint64(len(scores))
        want = 0.0
        for b in buckets:
            want += scores[int(b)]
        assert total == want


def test_text_invalid_utf8(cuda_device):
    ok, scores = _tables(5)
    small = np.zeros(200, bool)
    small[:128] = True  # ASCII only; every code point past 199 reads the last entry (False)
    pieces = [b"\x80\x80abc", b"ab\xc3", b"\xc3(", b"\xe2\x82", b"\xf0\x9f\x99", b"\xff\xfe\xfd",
              b"\xf8\x88\x80\x80\x80", b"\xc0\xaf", b"ok\xed\xa0\x80", b"\xbf", b"x\xf7\xbf"]
    data, off = utf8(pieces)
    for table in (ok, small):
        assert_text_equal(G.guard_text(data, off, table, scores), R.guard_text(data, off, table, scores))
    rng = np.random.default_rng(6)
    junk = rng.integers(0, 256, 20_000).astype(np.uint8)
    cuts = np.concatenate([[0], np.sort(rng.integers(0, len(junk), 999)), [len(junk)]]).astype(np.int64)
    for table in (ok, small):
        assert_text_equal(G.guard_text(junk, cuts, table, scores), R.guard_text(junk, cuts, table, scores))


def test_text_lead_byte_cut_off_by_the_buffer_end(cuda_device):
    ok, scores = _tables(7)
    for tail in (b"ab\xf0", b"ab\xf0\x9f", b"ab\xe2", b"abc\xc3"):
        data = np.frombuffer(tail, np.uint8).copy()
        off = np.array([0, len(tail)], np.int64)
        assert_text_equal(G.guard_text(data, off, ok, scores), R.guard_text(data, off, ok, scores))
        # the string ends before the buffer: its last character reads the next string's bytes
        two = np.frombuffer(tail + b"\x9f\x99\x82zz", np.uint8).copy()
        off2 = np.array([0, len(tail), len(two)], np.int64)
        assert_text_equal(G.guard_text(two, off2, ok, scores), R.guard_text(two, off2, ok, scores))


def test_text_empty_strings_slices_and_one_bucket(cuda_device):
    ok, scores = _tables(8)
    data, off = utf8(["", "", "abc", "", "жжж", ""])
    assert_text_equal(G.guard_text(data, off, ok, scores), R.guard_text(data, off, ok, scores))
    assert_text_equal(G.guard_text(data, off[2:5], ok, scores), R.guard_text(data, off[2:5], ok, scores))
    assert_text_equal(G.guard_text(data, off, ok, np.array([0.5])),
                      R.guard_text(data, off, ok, np.array([0.5])))
    empty = G.guard_text(np.zeros(0, np.uint8), np.zeros(4, np.int64), ok, scores)
    assert_text_equal(empty, R.guard_text(np.zeros(0, np.uint8), np.zeros(4, np.int64), ok, scores))
    none = G.guard_text(np.zeros(0, np.uint8), np.zeros(1, np.int64), ok, scores)
    assert [a.shape for a in none] == [(0,), (0,), (0,)]
    assert [a.dtype for a in none] == [np.uint8, np.float64, np.int64]


def test_text_language_fixtures(cuda_device, monkeypatch):
    ok, scores = _tables(9)
    lines = []
    for name in ("es_train", "es_test", "en", "ru", "uk"):
        lines += (LANG / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    data, off = utf8(lines)
    want = R.guard_text(data, off, ok, scores)
    assert_text_equal(G.guard_text(data, off, ok, scores), want)
    assert want[0].sum() == 40  # the Russian and Ukrainian sentences, Cyrillic
    monkeypatch.setattr(G, "_MAX_GRID", 1)  # 256 threads for 540 strings: grid-strided
    assert_text_equal(G.guard_text(data, off, ok, scores), want)
