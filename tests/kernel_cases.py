"""Shared inputs of every registered kernel: random, adversarial and edge cases, by kernel id.

``tests/test_kernels.py`` runs every kernel of the registry on every usable
backend over these cases and compares the outputs with the reference backend's
(the numcodecs ``tests/common.py`` pattern). A kernel registered without an
entry in :data:`CASES` fails that test; a new backend of an existing kernel is
tested just by registering it.

An entry says how to build the cases (``(label, args)`` pairs, built once and
copied for each backend, since some kernels work in place), which outputs to
compare (``outputs(result, args)``; in-place kernels compare their arguments)
and with what tolerance (or a ``compare`` of its own). Integer outputs and
dtypes must match exactly.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.kernels import GEAR


@dataclass(frozen=True)
class KernelCases:
    make: Callable[[], list[tuple[str, tuple]]]
    outputs: Callable[[object, tuple], object] = lambda result, args: result
    rtol: float = 1e-12
    atol: float = 0.0
    # compare(got, want, args, where), for outputs whose precision depends on the input
    compare: Callable[[object, object, tuple, str], None] | None = None

    def check(self, got, want, args: tuple, where: str) -> None:
        if self.compare is not None:
            self.compare(got, want, args, where)
        else:
            assert_same(got, want, self.rtol, self.atol, where)


def copy_args(args: tuple) -> tuple:
    """A fresh copy of the array arguments (kernels may write into them)."""
    return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)


def assert_same(got, want, rtol: float, atol: float, where: str = "") -> None:
    """Equal structure; equal integers and dtypes; floats within tolerance (NaN == NaN)."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), f"{where}: {got!r} vs {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, rtol, atol, f"{where}[{i}]")
    elif want is None:
        assert got is None, f"{where}: expected None, got {got!r}"
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), f"{where}: expected an array, got {type(got).__name__}"
        assert got.dtype == want.dtype and got.shape == want.shape, \
            f"{where}: {got.dtype}{got.shape} vs {want.dtype}{want.shape}"
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True,
                                       err_msg=where)
        else:
            np.testing.assert_array_equal(got, want, err_msg=where)
    elif isinstance(want, (float, np.floating)):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=where)
    else:
        assert int(got) == int(want), f"{where}: {got!r} vs {want!r}"


def _std_compare(at: int | None, rtol: float = 1e-12, atol: float = 0.0):
    """Compare outputs, the reference's std (``got[at]``, or ``got`` itself) to its precision.

    A standard deviation is computed from ``x - mean``, so its error is
    relative to the column's magnitude, not to the result: values a few ulps
    apart have a std of ~1e-15 known to ~1e-17 absolute, in any summation order.
    """

    def compare(got, want, args, where):
        values, offsets = args[0], args[1]
        scale = np.array([np.max(np.abs(values[a:b])) if b > a else 0.0
                          for a, b in zip(offsets[:-1], offsets[1:])])
        g, w = (got, want) if at is None else (got[at], want[at])
        assert g.dtype == w.dtype and g.shape == w.shape, f"{where}: std {g.dtype}{g.shape}"
        with np.errstate(invalid="ignore"):
            ok = (g == w) | (np.isnan(g) & np.isnan(w)) | \
                (np.abs(g - w) <= 1e-12 * np.abs(w) + 4e-16 * scale)
        assert ok.all(), f"{where}: std {g[~ok]} vs {w[~ok]}"
        if at is not None:
            rest = tuple(x for i, x in enumerate(got) if i != at)
            assert_same(rest, tuple(x for i, x in enumerate(want) if i != at), rtol, atol, where)

    return compare


def _pack(cols) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(cols) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(c) for c in cols])
    values = np.concatenate(cols).astype(np.float64) if cols else np.zeros(0)
    return values, offsets


# ---------------------------------------------------------------------------
# Samples: packed columns (sorted and NaN-free for the statistics)
# ---------------------------------------------------------------------------


@functools.cache
def _sample_pairs() -> list[tuple[str, list, list]]:
    """(label, reference columns, current columns) before sorting."""
    rng = np.random.default_rng(0)
    ref, cur = [], []
    # exact and asymptotic p-value regimes, ties, very unequal sizes
    for m, n in [(1, 1), (1, 2), (2, 2), (2, 3), (3, 7), (5, 5), (20, 19), (20, 20), (5, 20),
                 (21, 30), (100, 100), (137, 211), (1000, 999), (5, 3000)]:
        ref.append(rng.normal(size=m))
        cur.append(rng.normal(size=n) + rng.choice([0.0, 0.1, 0.5]))
        ref.append(rng.integers(0, 5, size=m).astype(float))
        cur.append(rng.integers(0, 6, size=n).astype(float))
    huge = rng.normal(size=200) * 1e300
    tiny = rng.normal(size=200) * 1e-300
    ulps = 1.0 + rng.integers(0, 50, size=300) * 2.0**-52
    adv_ref = [np.full(50, 3.0), np.full(50, 3.0), huge, tiny, np.array([1.0, np.inf, -np.inf]),
               np.array([np.inf, np.inf]), np.array([-0.0, 0.0, 0.0]), ulps,
               np.array([-np.inf, -np.inf, -np.inf, 0.0]), np.full(30, 1e308)]
    adv_cur = [np.full(50, 3.0), np.linspace(0, 6, 60), huge[::-1] * 0.5, tiny * 2,
               np.array([1.0, np.inf, -np.inf]), np.array([1.0, 2.0]), np.array([0.0, -0.0]),
               ulps[::-1] + 2.0**-52, np.array([np.inf, np.inf]), np.full(20, -1e308)]
    edge_ref = [np.zeros(0), rng.normal(size=5), np.zeros(0), np.array([1.0]), np.array([2.0])]
    edge_cur = [rng.normal(size=4), np.zeros(0), np.zeros(0), np.array([2.0]), np.array([2.0])]
    return [("random", ref, cur), ("adversarial", adv_ref, adv_cur),
            ("empty and single values", edge_ref, edge_cur), ("no columns", [], [])]


def _sorted(cols):
    return _pack([np.sort(c) for c in cols])


def _two_samples() -> list[tuple[str, tuple]]:
    return [(label, (*_sorted(r), *_sorted(c))) for label, r, c in _sample_pairs()]


def _numeric_drift() -> list[tuple[str, tuple]]:
    from engine.kernels import reference

    out = _two_samples()
    for label, (rv, ro, cv, co) in list(out):
        out.append((f"{label}, known ref_std", (rv, ro, cv, co, reference.std(rv, ro))))
    return out


def _histogram() -> list[tuple[str, tuple]]:
    qs = {"10 bins": np.linspace(0, 1, 11), "1 bin": np.array([0.0, 1.0]),
          "uneven": np.array([0.0, 0.1, 0.5, 0.9, 0.999, 1.0])}
    return [(f"{label}, {qn}", (*args, q)) for label, args in _two_samples()
            for qn, q in qs.items()]


def _one_sample() -> list[tuple[str, tuple]]:
    return [(f"{label} {side}", _sorted(cols)) for label, r, c in _sample_pairs()
            for side, cols in (("ref", r), ("cur", c))]


def _bin_sorted() -> list[tuple[str, tuple]]:
    rng = np.random.default_rng(1)
    out = []
    sort_cases = _sorted([c[~np.isnan(c)] for c in unsorted_columns()])
    for label, (values, offsets) in _one_sample() + [("sort cases", sort_cases)]:
        cols = [values[offsets[j]:offsets[j + 1]] for j in range(len(offsets) - 1)]
        edges = []
        for j, c in enumerate(cols):
            f = c[np.isfinite(c)]
            if len(f) == 0:
                edges.append(np.full(11, np.nan))
                continue
            e = np.quantile(f, np.linspace(0, 1, 11))
            if j % 3 == 1:
                e[3:6] = e[3]  # tied edges leave empty bins
            if j % 5 == 2:
                e = np.sort(rng.normal(size=11))  # edges of other data: values outside them
            edges.append(e)
        out.append((label, (values, offsets, np.array(edges).reshape(len(cols), 11))))
    return out


@functools.cache
def unsorted_columns() -> tuple[np.ndarray, ...]:
    """Columns the radix sort must get right: NaN, +-inf, -0.0, denormals, runs a few ulps apart."""
    rng = np.random.default_rng(2)
    n = 5000
    wide = rng.normal(size=n) * 10.0 ** rng.integers(-300, 300, size=n)
    nan_inf = rng.normal(size=n)
    nan_inf[::7] = np.nan
    nan_inf[::11] = np.inf
    nan_inf[::13] = -np.inf
    zeros = np.where(rng.random(n) < 0.5, -0.0, 0.0)
    zeros[::5] = rng.normal(size=len(zeros[::5]))
    ulps = 1.0 + rng.integers(0, 3000, size=n) * 2.0**-52  # equal top bits: the run fix-up
    clusters = np.repeat(rng.normal(size=n // 100), 100) * (1 + rng.integers(0, 99, n) * 2.0**-52)
    small_runs = np.repeat(rng.normal(size=n // 10), 10) * (1 + rng.integers(0, 9, n) * 2.0**-52)
    denormal = rng.integers(-1000, 1000, size=n) * 5e-324
    return (
        np.zeros(0), np.array([np.nan]), np.array([2.5]), np.array([-0.0]), rng.normal(size=20_000),
        rng.normal(size=2047), rng.normal(size=2048), wide, nan_inf, np.round(rng.normal(size=n) * 3),
        zeros, np.full(n, 7.0), np.full(n, np.nan), ulps, -ulps, clusters, small_runs, denormal,
        np.concatenate([[np.inf] * 3, [-np.inf] * 3, rng.normal(size=n)]),
        rng.normal(size=n).astype(np.float32).astype(np.float64), 1.7e9 + rng.uniform(0, 60, n),
    )


def _random_columns(nan: bool) -> list[np.ndarray]:
    rng = np.random.default_rng(8)
    cols = [rng.normal(size=n) * 10.0 ** rng.integers(-5, 5) for n in (1, 2, 100, 2049, 7000)]
    if nan:
        for c in cols[1:]:
            c[rng.random(len(c)) < 0.1] = np.nan
    return cols


def _sort_packed() -> list[tuple[str, tuple]]:
    cols = list(unsorted_columns())
    return [("random", _pack(_random_columns(nan=True))), ("every kind of column", _pack(cols)),
            ("one column", _pack(cols[8:9])), ("no columns", _pack([]))]


def _sort_segments() -> list[tuple[str, tuple]]:
    cols = [c[~np.isnan(c)] for c in unsorted_columns()]
    return [("random", _pack(_random_columns(nan=False))), ("every kind of column", _pack(cols)),
            ("no columns", _pack([]))]


def _sort_packed_outputs(result, args):
    new, nan_counts = result
    return new, nan_counts, args[0][:new[-1]]


# ---------------------------------------------------------------------------
# Counts: per-column count vectors, packed
# ---------------------------------------------------------------------------


def random_count_tables(seed: int = 3) -> tuple[list, list]:
    """Per column, reference and current category counts: 1 to 30 categories, 3 to 10**6
    observations a side, current proportions drawn near the reference's."""
    rng = np.random.default_rng(seed)
    ref, cur = [], []
    for k, n_r, n_c in [(2, 40, 50), (2, 3, 4), (3, 100, 80), (5, 1000, 900), (12, 50, 5000),
                        (30, 10_000, 20_000), (2, 10**6, 10**6), (1, 5, 7)]:
        p = rng.dirichlet(np.ones(k))
        ref.append(rng.multinomial(n_r, p).astype(float))
        cur.append(rng.multinomial(n_c, rng.dirichlet(np.ones(k) * 5) * 0.3 + p * 0.7).astype(float))
    return ref, cur


@functools.cache
def _count_tables() -> list[tuple[str, tuple]]:
    ref, cur = random_count_tables()
    adv_ref = [np.array([10.0, 0.0, 5.0, 0.0]), np.array([0.0, 7.0, 3.0]), np.array([4.0, 0.0, 0.0]),
               np.array([1e15, 1.0, 0.0]), np.array([0.5, 0.25, 0.25]), np.array([5.0, 5.0])]
    adv_cur = [np.array([0.0, 0.0, 12.0, 3.0]), np.array([0.0, 2.0, 9.0]), np.array([1.0, 0.0, 2.0]),
               np.array([1.0, 1e15, 3.0]), np.array([0.25, 0.25, 0.5]), np.array([5.0, 5.0])]
    edge_ref = [np.zeros(3), np.array([1.0, 2.0]), np.zeros(0), np.array([3.0])]
    edge_cur = [np.array([1.0, 2.0, 3.0]), np.zeros(2), np.zeros(0), np.array([9.0])]
    out = []
    for label, r, c in [("random", ref, cur), ("missing categories, huge and fractional", adv_ref,
                                                adv_cur),
                        ("zero sums, empty, one category", edge_ref, edge_cur), ("no columns", [], [])]:
        rc, offsets = _pack(r)
        cc, _ = _pack(c)
        out.append((label, (rc, cc, offsets)))
    return out


def _counts_with(*extra_sets) -> Callable[[], list[tuple[str, tuple]]]:
    def make():
        return [(f"{label}, {extra}" if extra else label, (*args, *extra))
                for label, args in _count_tables() for extra in extra_sets]
    return make


# ---------------------------------------------------------------------------
# Content-defined chunking
# ---------------------------------------------------------------------------


def _mask(bits: int) -> int:
    return ((1 << bits) - 1) << (64 - bits)


def _hit_byte(bits: int) -> int:
    """A byte whose constant run passes a ``bits``-bit mask at every position (window full)."""
    return next(c for c in range(256) if (-int(GEAR[c])) % (1 << 64) & _mask(bits) == 0)


@functools.cache
def _byte_inputs() -> dict[str, bytes]:
    rng = np.random.default_rng(4)
    return {
        "empty": b"",
        "one byte": b"\x07",
        "random": rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes(),
        "zeros": bytes(5000),
        "ones": b"\xff" * 5000,
        "every position a candidate": bytes([_hit_byte(6)]) * 20_000,
        "period 2": b"\x00\x01" * 2500,
        "period 64": bytes(range(64)) * 80,
        "period 65": bytes(range(65)) * 80,
    }


def _cdc_scan() -> list[tuple[str, tuple]]:
    rng = np.random.default_rng(5)
    out = []
    params = {"min 64 max 1024 avg 256": (64, 1024, _mask(8)),
              "min 64 max 128 avg 64": (64, 128, _mask(6)),
              "min = max = 100": (100, 100, _mask(7)),
              "min 200 max 800 avg 256": (200, 800, _mask(8))}
    for pname, (mn, mx, mask) in params.items():
        for bname, buf in _byte_inputs().items():
            room = np.zeros(len(buf) // mn + 2, dtype=np.int64)
            out.append((f"{bname}, {pname}", (buf, room, 0, 0, mn, mx, mask)))
        buf = _byte_inputs()["random"][:5000]
        h = int(rng.integers(0, 2**63)) * 2 + 1
        for length in (1, mn - 65, mn - 64, mn - 1, mx - 1):
            if length >= 0:
                out.append((f"chunk in progress ({length} bytes), {pname}",
                            (buf, np.zeros(200, dtype=np.int64), h, length, mn, mx, mask)))
        out.append((f"output full after 2 cuts, {pname}",
                    (buf, np.zeros(2, dtype=np.int64), 0, 0, mn, mx, mask)))
    return out


def _cdc_scan_outputs(result, args):
    k = int(result[0])
    return tuple(int(x) for x in result), args[1][:k]


def _cdc_candidates() -> list[tuple[str, tuple]]:
    inputs = _byte_inputs()
    out = [(f"{name}, 6 bits", (buf, 0, _mask(6))) for name, buf in inputs.items()]
    random = inputs["random"]
    for start in (1, 62, 63, 64, 1000, len(random) - 1, len(random), len(random) + 5):
        out.append((f"random from {start}, 8 bits", (random, start, _mask(8))))
    big = np.random.default_rng(6).integers(0, 256, 300_000, dtype=np.uint8)
    out.append(("300 kB, 16 bits (the default)", (big, 0, _mask(16))))
    out.append(("every position a candidate from 5000", (inputs["every position a candidate"],
                                                         5000, _mask(6))))
    return out


def _cdc_resolve() -> list[tuple[str, tuple]]:
    from engine.kernels import reference

    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, 50_000, dtype=np.uint8)
    cand = reference.cdc_candidates(data, 0, _mask(8))
    n = len(data)
    every = np.arange(1, 10_001, dtype=np.int64)
    return [
        ("random candidates", (cand, n, 64, 1024)),
        ("random candidates, min = max", (cand, n, 300, 300)),
        ("no candidates", (np.zeros(0, np.int64), n, 64, 1024)),
        ("every position", (every, 10_000, 64, 128)),
        ("candidate at the end", (np.array([100, 5000], np.int64), 5000, 64, 1024)),
        ("shorter than min", (np.array([10], np.int64), 50, 64, 1024)),
        ("empty stream", (np.zeros(0, np.int64), 0, 64, 1024)),
        ("on the min and max edges", (np.array([64, 129, 1153, 1217], np.int64), 2000, 64, 1024)),
    ]


# ---------------------------------------------------------------------------
# the guard's batch kernels (kernels/guard.py)
# ---------------------------------------------------------------------------


def range_cases():
    rng = np.random.default_rng(7)
    adversarial = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -1.0, 1e308, -1e308,
                            5e-324, np.nextafter(1.0, 2.0), np.nextafter(-1.0, -2.0)])
    return [
        ("random", (rng.normal(size=10_000), -1.5, 1.5, False)),
        ("random nan ok", (np.where(rng.random(5000) < 0.1, np.nan, rng.normal(size=5000)),
                           -1.0, 1.0, True)),
        ("adversarial", (adversarial, -1.0, 1.0, False)),
        ("adversarial nan ok", (adversarial, -1.0, 1.0, True)),
        ("infinite bounds", (adversarial, -np.inf, np.inf, False)),
        ("zero-width -0.0", (adversarial, -0.0, 0.0, False)),
        ("empty", (np.zeros(0), 0.0, 1.0, False)),
        ("one", (np.array([2.0]), 0.0, 1.0, False)),
    ]


def category_cases():
    rng = np.random.default_rng(8)
    seen = rng.random(40) < 0.5
    return [
        ("random", (rng.integers(-1, 40, 10_000), seen, False)),
        ("random null ok", (rng.integers(-1, 40, 10_000), seen, True)),
        ("all seen", (np.arange(5), np.ones(5, bool), False)),
        ("all null", (np.full(7, -1), np.zeros(0, bool), False)),
        ("empty", (np.zeros(0, np.int64), np.zeros(3, bool), False)),
    ]


def _utf8(strings):
    """(data, offsets) of strings as an Arrow string array lays them out."""
    enc = [s.encode() for s in strings]
    off = np.concatenate([[0], np.cumsum([len(e) for e in enc])]).astype(np.int64)
    return np.frombuffer(b"".join(enc), np.uint8).copy(), off


def text_cases():
    rng = np.random.default_rng(9)
    alphabet = list("abcdefghij ñáé.,ж字🙂") + ["\U0010FFFF"]
    words = ["".join(rng.choice(alphabet, int(rng.integers(0, 40)))) for _ in range(500)]
    data, off = _utf8(words)
    ok = np.ones(0x110002, bool)
    ok[0x0400:0x0530] = False  # Cyrillic not allowed
    scores = rng.exponential(size=4096)
    junk = rng.integers(0, 256, 3000).astype(np.uint8)  # not UTF-8: stray and cut-off bytes
    cuts = np.sort(rng.integers(0, len(junk), 200))
    junk_off = np.concatenate([[0], cuts, [len(junk)]]).astype(np.int64)
    tail = np.array([ord("a"), ord("b"), 0xF7, 0xBF], np.uint8)  # a lead byte cut off by the end
    small = rng.random(300) < 0.7  # a short table: most code points fall past it
    one, one_off = _utf8(["abc"])
    return [
        ("random strings", (data, off, ok, scores)),
        ("random strings, 7 buckets", (data, off, ok, rng.normal(size=7))),
        ("a slice of the buffer", (data, off[100:301], ok, scores)),
        ("invalid UTF-8", (junk, junk_off, ok, scores)),
        ("invalid UTF-8, short table", (junk, junk_off, small, scores)),
        ("lead byte at the end", (tail, np.array([0, 4], np.int64), small, scores)),
        ("empty strings", (np.zeros(0, np.uint8), np.zeros(5, np.int64), ok, scores)),
        ("no strings", (np.zeros(0, np.uint8), np.zeros(1, np.int64), ok, scores)),
        ("one trigram, one bucket", (one, one_off, ok, np.array([0.25]))),
    ]


# ---------------------------------------------------------------------------
def _blake3_many() -> list[tuple[str, tuple]]:
    rng = np.random.default_rng(12)
    buf = rng.integers(0, 256, 300_000, dtype=np.uint8)
    # every length where BLAKE3's block and chunk logic turns: 0, 1, 63/64/65, 1023/1024/1025,
    # 2047/2048/2049, 3 KiB + 1, 64 KiB, 128 KiB (the largest chunk), at odd offsets
    lens = [0, 1, 63, 64, 65, 1023, 1024, 1025, 2047, 2048, 2049, 3 * 1024 + 1, 65536, 131072]
    edges = np.concatenate([[5], 5 + np.cumsum(lens)]).astype(np.int64)
    rand = np.unique(np.concatenate([[0], rng.integers(0, len(buf), 40), [len(buf)]])).astype(np.int64)
    key = bytes(range(40, 72))
    return [
        ("every boundary length, plain", (buf, edges, None)),
        ("every boundary length, keyed", (buf, edges, key)),
        ("random ranges covering the buffer", (buf, rand, None)),
        ("many empty ranges, odd offsets", (buf, np.array([3, 3, 3, 4, 4, 7, 7], np.int64), key)),
        ("no ranges", (buf, np.array([10], np.int64), None)),
        ("empty buffer, one empty range", (np.empty(0, np.uint8), np.array([0, 0], np.int64), None)),
    ]


def _gather_ranges() -> list[tuple[str, tuple]]:
    rng = np.random.default_rng(11)
    buf = rng.integers(0, 256, 5000, dtype=np.uint8)
    n = 200
    starts = rng.integers(0, 4000, n).astype(np.int64)
    lengths = rng.integers(0, 1000, n).astype(np.int64)
    return [
        ("random ranges, overlapping, some empty", (buf, starts, lengths)),
        ("one range: the whole buffer", (buf, np.array([0], np.int64), np.array([5000], np.int64))),
        ("last byte only, repeated", (buf, np.full(7, 4999, np.int64), np.ones(7, np.int64))),
        ("every range empty", (buf, np.arange(5, dtype=np.int64), np.zeros(5, np.int64))),
        ("no ranges", (buf, np.empty(0, np.int64), np.empty(0, np.int64))),
        ("empty buffer, no ranges", (np.empty(0, np.uint8), np.empty(0, np.int64),
                                     np.empty(0, np.int64))),
    ]


# ---------------------------------------------------------------------------
# MMD² permutations (kernels/reference_mmd.py)
# ---------------------------------------------------------------------------


def _mmd_perms(rng, big: int, count: int) -> np.ndarray:
    perms = np.empty((count, big), dtype=np.int64)
    for i in range(count):
        perms[i] = rng.permutation(big)
    return perms


def _mmd2_permutations() -> list[tuple[str, tuple]]:
    rng = np.random.default_rng(13)
    x, y = rng.normal(size=(60, 5)), rng.normal(size=(45, 5))
    z = np.vstack([x, y])
    shifted = np.vstack([x, y + 1.0])
    dup = np.vstack([x[:10], x[:10], x[:10], y[:5], y[:5]])  # duplicated rows
    equal = np.full((40, 3), 2.5)                              # every row equal: K all ones
    tiny = np.array([[0.0, 1.0], [0.5, 1.0], [3.0, -1.0], [3.5, -2.0]])
    all24 = np.array(list(itertools.permutations(range(4))), np.int64)
    one_col = rng.normal(size=(30, 1))
    wide = rng.normal(size=(50, 40))
    return [
        ("random", (z, 60, _mmd_perms(rng, 105, 40), 3.0)),
        ("shifted", (shifted, 60, _mmd_perms(rng, 105, 40), 3.0)),
        ("n < m", (z, 7, _mmd_perms(rng, 105, 30), 3.0)),
        ("n > m", (z, 101, _mmd_perms(rng, 105, 30), 3.0)),
        ("duplicated rows", (dup, 30, _mmd_perms(rng, 40, 25), 2.0)),
        ("all rows equal", (equal, 17, _mmd_perms(rng, 40, 10), 1.0)),
        ("wide bandwidth: K ~ 1", (z, 50, _mmd_perms(rng, 105, 10), 1e4)),
        ("narrow bandwidth: K ~ I", (z, 50, _mmd_perms(rng, 105, 10), 1e-3)),
        ("n = m = 2, every permutation", (tiny, 2, all24, 1.0)),
        ("one permutation", (one_col, 12, _mmd_perms(rng, 30, 1), 0.7)),
        ("no permutations", (one_col, 12, np.zeros((0, 30), np.int64), 0.7)),
        ("40 features, identity permutation", (wide, 25, np.arange(50, dtype=np.int64)[None], 9.0)),
    ]


def _mmd_compare(got, want, args, where):
    """MMD² to the rounding of sums of ``N`` kernel values: each is at most 1 (the RBF kernel's
    diagonal), and the fast backends sum them in another order (a matrix product) than the
    reference, so the error bound is absolute, ``~ N eps``, not relative to the result."""
    big = args[0].shape[0]
    tol = 16.0 * big * np.finfo(np.float64).eps
    assert isinstance(got, tuple) and len(got) == 2, f"{where}: {got!r}"
    assert isinstance(got[0], float), f"{where}: stat is {type(got[0]).__name__}"
    g, w = got[1], want[1]
    assert isinstance(g, np.ndarray) and g.dtype == np.float64 and g.shape == w.shape, \
        f"{where}: perm_stats {getattr(g, 'dtype', None)}{getattr(g, 'shape', None)}"
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=tol, err_msg=f"{where}: stat")
    np.testing.assert_allclose(g, w, rtol=0, atol=tol, err_msg=f"{where}: perm_stats")


# kernel id -> cases
# ---------------------------------------------------------------------------

# p-values: the exact and asymptotic distributions agree to ~1e-14 absolute where they cancel
_PVALUE_TOL = dict(rtol=1e-9, atol=1e-14)

CASES: dict[str, KernelCases] = {
    "cdc_scan": KernelCases(_cdc_scan, _cdc_scan_outputs),
    "cdc_candidates": KernelCases(_cdc_candidates),
    "cdc_resolve": KernelCases(_cdc_resolve),
    "gather_ranges": KernelCases(_gather_ranges),
    "blake3_many": KernelCases(_blake3_many),
    "sort_packed": KernelCases(_sort_packed, _sort_packed_outputs),
    "sort_segments": KernelCases(_sort_segments, lambda result, args: (result, args[0])),
    "std": KernelCases(_one_sample, compare=_std_compare(None)),
    "bin_sorted": KernelCases(_bin_sorted),
    "histogram": KernelCases(_histogram),
    "ks_2samp": KernelCases(_two_samples, **_PVALUE_TOL),
    "wasserstein": KernelCases(_two_samples, compare=_std_compare(1)),
    "cvm_2samp": KernelCases(_two_samples, **_PVALUE_TOL),
    "numeric_drift": KernelCases(_numeric_drift, compare=_std_compare(3, **_PVALUE_TOL)),
    "psi": KernelCases(_counts_with((1e-4,), (0.01,))),
    "jensenshannon": KernelCases(_counts_with((2.0,), (np.e,)), atol=1e-15),
    "hellinger": KernelCases(_counts_with(())),
    "linf": KernelCases(_counts_with(())),
    "chi2": KernelCases(_counts_with((False, True), (False, False), (True, True), (True, False)),
                        rtol=1e-12, atol=1e-300),
    "guard_range": KernelCases(range_cases),
    "guard_category": KernelCases(category_cases),
    "guard_text": KernelCases(text_cases),
    "mmd2_permutations": KernelCases(_mmd2_permutations, compare=_mmd_compare),
}
