"""The drift statistics' ``cuda`` backend (``drift_cuda.py``, ``drift_counts_cuda.py``) on
large, tied, uneven columns, against the references and scipy.

Runs on the host emulation (threads in order and reversed) and on a GPU where there is
one (the ``cuda_device`` fixture). ``tests/test_kernels.py`` runs the same functions on
the shared cases of ``kernel_cases.py``; this file adds columns long enough for many
chunks per column and tie groups across chunks, batches of columns (a small
``BATCH_ELEMENTS``), other chunk sizes, edge columns, float32 inputs through the public
functions, and scipy directly.
"""

import functools

import numpy as np
import pytest
from kernel_cases import CASES, random_count_tables

from engine.kernels import _registry
from engine.kernels import drift as D
from engine.kernels import drift_counts_cuda as GC
from engine.kernels import drift_cuda as G
from engine.kernels import reference as R

stats = pytest.importorskip("scipy.stats")


def _pack(cols):
    off = np.zeros(len(cols) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(c) for c in cols])
    vals = np.concatenate(cols).astype(np.float64) if cols else np.zeros(0)
    return vals, off


@functools.cache
def _columns():
    """(ref columns, cur columns), unsorted: 20 columns of ~5k values of every kind."""
    rng = np.random.default_rng(16)
    ref, cur = [], []
    for j in range(14):
        m, n = int(rng.integers(3000, 6500)), int(rng.integers(2500, 6000))
        shift = (0.0, 0.02, 0.3)[j % 3]
        if j % 2:  # rounded: ties, some groups spanning many chunks
            ref.append(np.round(rng.normal(size=m), 1 + j % 3))
            cur.append(np.round(rng.normal(size=n) + shift, 1 + j % 3))
        else:
            ref.append(rng.normal(size=m) * 10.0 ** (j - 6))
            cur.append((rng.normal(size=n) + shift) * 10.0 ** (j - 6))
    ref.append(rng.integers(0, 4, 5000).astype(float))        # long tie runs
    cur.append(rng.integers(0, 5, 4000).astype(float))
    ref.append(np.full(4000, 2.5))                            # all equal, same value
    cur.append(np.full(3000, 2.5))
    ref.append(np.full(100, 1.0))                             # all equal, different values
    cur.append(np.full(70, 2.0))
    ref.append(rng.normal(size=12_000))                       # KS asymptotic regime
    cur.append(rng.normal(size=11_000) + 0.01)
    x = rng.normal(size=3000)                                 # infinities on both sides
    x[:7], x[7:10] = np.inf, -np.inf
    y = rng.normal(size=2000)
    y[:3] = -np.inf
    ref.append(x)
    cur.append(y)
    ref.append(np.array([0.5]))                               # one value each
    cur.append(np.array([0.25]))
    return ref, cur


def _with_nan(cols, seed):
    rng = np.random.default_rng(seed)
    out = []
    for c in cols:
        c = c.copy()
        c[rng.random(len(c)) < 0.05] = np.nan
        out.append(c)
    return out + [np.full(50, np.nan), np.zeros(0), np.array([np.nan, 1.0, np.nan])]


@functools.cache
def _sorted_pair():
    ref, cur = _columns()
    return (*_pack([np.sort(c) for c in ref]), *_pack([np.sort(c) for c in cur]))


def _copy(args):
    return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)


# ----------------------------------------------------------------------------- sorting


@pytest.mark.parametrize("budget", [None, 7000])
def test_sort_packed_matches_the_reference(cuda_device, monkeypatch, budget):
    if budget:
        monkeypatch.setattr(G, "BATCH_ELEMENTS", budget)  # many batches, some of one column
    ref, cur = _columns()
    cols = _with_nan(ref, 1) + [np.array([-0.0, 0.0, -1e-310, 5e-324]), np.array([7.0])]
    values, offsets = _pack(cols)
    want_v = values.copy()
    want_new, want_nan = R.sort_packed(want_v, offsets.copy())
    got_new, got_nan = G.sort_packed(values, offsets)
    assert got_new.dtype == got_nan.dtype == np.int64
    np.testing.assert_array_equal(got_new, want_new)
    np.testing.assert_array_equal(got_nan, want_nan)
    np.testing.assert_array_equal(values[:got_new[-1]], want_v[:want_new[-1]])


@pytest.mark.parametrize("budget", [None, 5000])
def test_sort_segments_matches_numpy(cuda_device, monkeypatch, budget):
    if budget:
        monkeypatch.setattr(G, "BATCH_ELEMENTS", budget)
    ref, cur = _columns()
    values, offsets = _pack(ref + [np.zeros(0)] + cur)
    want = values.copy()
    R.sort_segments(want, offsets)
    assert G.sort_segments(values, offsets) is None
    np.testing.assert_array_equal(values, want)


def test_sorts_of_nothing(cuda_device):
    for fn in (G.sort_packed, G.sort_segments):
        v = np.zeros(0)
        out = fn(v, np.zeros(1, dtype=np.int64))
        if fn is G.sort_packed:
            assert out[0].tolist() == [0] and out[1].shape == (0,)
    v = np.array([np.nan, np.nan])
    new, nan = G.sort_packed(v, np.array([0, 1, 2, 2]))
    assert new.tolist() == [0, 0, 0, 0] and nan.tolist() == [1, 1, 0]


def test_sort_rejects_values_it_cannot_sort_in_place(cuda_device):
    with pytest.raises(TypeError, match="float64"):
        G.sort_packed(np.zeros(3, dtype=np.float32), np.array([0, 3]))


# ----------------------------------------------------------------------------- statistics


def test_numeric_drift_matches_scipy(cuda_device):
    ref, cur = _columns()
    ks_s, ks_p, w1, sd, cvm_s, cvm_p = G.numeric_drift(*_sorted_pair())
    for out in (ks_s, ks_p, w1, sd, cvm_s, cvm_p):
        assert out.dtype == np.float64 and out.shape == (len(ref),)
    for j, (x, y) in enumerate(zip(ref, cur)):
        r = stats.ks_2samp(x, y, method="auto")
        assert ks_s[j] == r.statistic, (j, len(x), len(y))  # lattice rounding included
        np.testing.assert_allclose(ks_p[j], r.pvalue, rtol=1e-9, atol=1e-300, err_msg=str(j))
        with np.errstate(invalid="ignore"):  # inf - inf: NaN, as in the kernel
            np.testing.assert_allclose(sd[j], np.std(x), rtol=1e-12, err_msg=str(j))
        if np.all(np.isfinite(x)) and np.all(np.isfinite(y)):
            np.testing.assert_allclose(w1[j], stats.wasserstein_distance(x, y), rtol=1e-9,
                                       atol=1e-300, err_msg=str(j))
        else:
            assert w1[j] == np.inf  # unequal masses at -inf
        if len(x) < 2 or len(y) < 2:
            assert np.isnan(cvm_s[j]) and np.isnan(cvm_p[j])
            continue
        c = stats.cramervonmises_2samp(x, y, method="auto")
        np.testing.assert_allclose(cvm_s[j], c.statistic, rtol=1e-12, err_msg=str(j))
        np.testing.assert_allclose(cvm_p[j], c.pvalue, rtol=1e-9, atol=1e-13, err_msg=str(j))


@pytest.mark.parametrize("kernel", ["wasserstein", "cvm_2samp", "std", "histogram"])
def test_large_columns_match_the_reference(cuda_device, kernel):
    args = _sorted_pair()
    if kernel == "std":
        args = args[:2]
    if kernel == "histogram":
        args = (*args, np.linspace(0, 1, 11))
    want = getattr(R, kernel)(*_copy(args))
    got = getattr(G, kernel)(*_copy(args))
    CASES[kernel].check(got, want, args, f"{kernel} on {cuda_device.name}")


def test_ks_statistic_matches_the_reference_on_large_columns(cuda_device):
    # the reference's exact p-values are slow in pure Python: compare the statistic on the
    # asymptotic columns and every p-value against scipy (test_numeric_drift_matches_scipy)
    ref, cur = _columns()
    big = [j for j, (x, y) in enumerate(zip(ref, cur)) if max(len(x), len(y)) > 10_000]
    args = (*_pack([np.sort(ref[j]) for j in big]), *_pack([np.sort(cur[j]) for j in big]))
    want = R.ks_2samp(*_copy(args))
    got = G.ks_2samp(*_copy(args))
    CASES["ks_2samp"].check(got, want, args, "ks_2samp, asymptotic columns")


@pytest.mark.parametrize(("chunk", "budget", "group"),
                         [(1, None, 256), (3, 9000, 2), (1000, 4000, 3), (32, None, 100_000)])
def test_chunks_and_batches_do_not_change_the_statistics(cuda_device, monkeypatch, chunk, budget,
                                                         group):
    args = _sorted_pair()
    base = G.numeric_drift(*_copy(args))
    monkeypatch.setattr(G, "CHUNK", chunk)
    monkeypatch.setattr(G, "GROUP", group)  # levels of combining: from many to one
    if budget:
        monkeypatch.setattr(G, "BATCH_ELEMENTS", budget)
    got = G.numeric_drift(*_copy(args))
    for i in (0, 1, 4, 5):  # KS and CvM come from exact integers: identical
        np.testing.assert_array_equal(got[i], base[i])
    np.testing.assert_allclose(got[2], base[2], rtol=1e-13)  # partial sums regrouped
    np.testing.assert_allclose(got[3], base[3], rtol=1e-13)


def test_single_statistics_equal_numeric_drift(cuda_device):
    args = _sorted_pair()
    ks_s, ks_p, w1, sd, cvm_s, cvm_p = G.numeric_drift(*_copy(args))
    np.testing.assert_array_equal(G.ks_2samp(*_copy(args))[0], ks_s)
    np.testing.assert_array_equal(G.cvm_2samp(*_copy(args))[1], cvm_p)
    w, s = G.wasserstein(*_copy(args))
    np.testing.assert_array_equal(w, w1)
    np.testing.assert_array_equal(s, sd)
    given = np.arange(len(sd), dtype=np.float32)
    assert G.numeric_drift(*_copy(args), ref_std=given)[3].tolist() == given.tolist()


def test_edge_columns(cuda_device):
    ref = [np.zeros(0), np.array([1.0, 2.0]), np.zeros(0), np.array([3.0]), np.full(40, 5.0),
           np.array([2.0, 2.0]), np.array([-np.inf, np.inf])]
    cur = [np.array([1.0]), np.zeros(0), np.zeros(0), np.array([3.0]), np.full(33, 5.0),
           np.array([1.0, 3.0]), np.array([-np.inf, np.inf])]
    args = (*_pack(ref), *_pack(cur))
    ks_s, ks_p, w1, sd, cvm_s, cvm_p = G.numeric_drift(*_copy(args))
    nan = np.isnan
    assert nan(ks_s[:3]).all() and nan(w1[:3]).all() and nan(cvm_s[:4]).all()
    assert nan(sd[0]) and nan(sd[2]) and sd[1] == 0.5
    assert ks_s[3] == 0.0 and ks_p[3] == 1.0 and w1[3] == 0.0  # one equal value each
    assert ks_s[4] == 0.0 and w1[4] == 0.0 and sd[4] == 0.0     # all equal
    assert w1[5] == 1.0 and ks_s[5] == 0.5
    assert w1[6] == 0.0  # equal masses at +-inf cancel
    want = R.numeric_drift(*_copy(args))
    CASES["numeric_drift"].check((ks_s, ks_p, w1, sd, cvm_s, cvm_p), want, args, "edge columns")
    edges = np.array([[0.0, 1.0], [1.0, 2.0], [np.nan, np.nan], [3.0, 3.0], [np.inf, 6.0],
                      [1.0, 2.0], [0.0, 1.0]])
    np.testing.assert_array_equal(G.bin_sorted(*args[:2], edges), R.bin_sorted(*args[:2], edges))
    CASES["histogram"].check(G.histogram(*_copy(args), np.linspace(0, 1, 4)),
                             R.histogram(*_copy(args), np.linspace(0, 1, 4)), args, "histogram")


def test_no_columns(cuda_device):
    v, o = np.zeros(0), np.zeros(1, dtype=np.int64)
    out = G.numeric_drift(v, o, v, o)
    assert len(out) == 6 and all(a.shape == (0,) and a.dtype == np.float64 for a in out)
    assert G.std(v, o).shape == (0,)
    assert G.bin_sorted(v, o, np.zeros((0, 3))).shape == (0, 4)
    e, rc, cc = G.histogram(v, o, v, o, np.linspace(0, 1, 3))
    assert e.shape == (0, 3) and rc.shape == cc.shape == (0, 4)
    c0 = np.zeros(0)
    assert GC.psi(c0, c0, o, 1e-4).shape == (0,)
    s, p, dof = GC.chi2(c0, c0, o, False, True)
    assert s.shape == p.shape == dof.shape == (0,) and dof.dtype == np.int64


def test_float32_values_are_read_as_float64(cuda_device):
    ref, cur = _columns()
    cols_r = [np.sort(c[:500]).astype(np.float32) for c in ref]
    cols_c = [np.sort(c[:400]).astype(np.float32) for c in cur]
    rv, ro = _pack(cols_r)
    cv, co = _pack(cols_c)
    rv32, cv32 = rv.astype(np.float32), cv.astype(np.float32)
    got = G.numeric_drift(rv32, ro, cv32, co)
    want = G.numeric_drift(rv, ro, cv, co)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(G.std(rv32, ro), G.std(rv, ro))


@pytest.mark.parametrize("group", [2, 256])
def test_combining_partials_is_exact_in_128_bits(cuda_device, monkeypatch, group):
    monkeypatch.setattr(G, "GROUP", group)
    dev = cuda_device
    top = 2**64 - 1
    counts = np.array([3, 0, 1, 4])
    lo_words = np.array([top, top, 5, 9, top, 1, top - 1, 2], dtype=np.uint64)
    hi_words = np.array([1, 0, 0, 4, 2, 0, 0, 7], dtype=np.uint64)
    hn = np.array([3, 5, 5, 9, 1, 2, 2, 0])
    hf = np.array([0.1, 0.2, 0.3, 0.25, 0.5, 0.6, 0.7, 0.0])
    w = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0])
    parts = tuple(dev.to_device(a) for a in (hn, hf, -hn, -hf, w, hi_words, lo_words))
    out = [dev.to_host(a) for a in G._combine(dev, "mlops_drift_combine_merge", counts, parts)]
    # KS extremes: the larger (smaller) float at equal integers; neutral for no partials
    assert out[0].tolist() == [5, 0, 9, 2] and out[1].tolist() == [0.3, 0.0, 0.25, 0.7]
    assert out[2].tolist() == [-5, 0, -9, -2] and out[3].tolist() == [-0.3, 0.0, -0.25, -0.7]
    assert out[4].tolist() == [7.0, 0.0, 8.0, 240.0]
    bounds = np.concatenate([[0], np.cumsum(counts)])
    for s, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        want = sum((int(h) << 64) + int(lw) for h, lw in zip(hi_words[a:b], lo_words[a:b]))
        assert (int(out[5][s]) << 64) + int(out[6][s]) == want, s


def test_batches_cover_every_column_within_the_budget():
    sizes = np.array([5, 0, 3, 20, 1, 1, 0, 7])
    got = list(G.batches(sizes, 8))
    assert [c for b in got for c in range(*b)] == list(range(len(sizes)))
    for c0, c1 in got:
        assert sizes[c0:c1].sum() <= 8 or c1 - c0 == 1
    assert (3, 4) in got  # the column over the budget alone
    assert list(G.batches(np.zeros(0, dtype=np.int64), 8)) == []


# ----------------------------------------------------------------------------- public functions


@pytest.fixture
def cuda_backend(monkeypatch, cuda_device):
    """``backend="cuda"`` of the public functions runs the cuda functions on this device
    (the registry's loader fails without a GPU; its state is restored afterwards)."""
    import importlib

    for kernel in _registry.kernels():
        impl = _registry._impls(kernel).get("cuda")
        if impl is None or not kernel_is_drift(impl):
            continue
        fn = getattr(importlib.import_module(impl.target.module, "engine.kernels"), kernel)
        for attr, value in (("_tried", True), ("_loaded", fn), ("_error", None),
                            ("is_usable_for", None)):
            monkeypatch.setattr(impl, attr, value)
    return cuda_device


def kernel_is_drift(impl) -> bool:
    return getattr(impl.target, "module", "") in (".drift_cuda", ".drift_counts_cuda")


def test_public_functions_take_float32_frames(cuda_backend):
    rng = np.random.default_rng(5)
    ref = np.round(rng.normal(size=(3000, 6)), 2).astype(np.float32)
    cur = (np.round(rng.normal(size=(2500, 6)), 2) + [0, 0, 0, 0.1, 0.5, 1.0]).astype(np.float32)
    ref[::17, 2] = np.nan
    cur[:, 5] = np.nan
    got = D.numeric_drift_columns(ref, cur, backend="cuda")
    want = D.numeric_drift_columns(ref, cur, backend="reference")
    for name in want:
        g, w = got[name], want[name]
        np.testing.assert_allclose(g.statistic, w.statistic, rtol=1e-12, equal_nan=True)
        if w.pvalue is not None:
            np.testing.assert_allclose(g.pvalue, w.pvalue, rtol=1e-9, atol=1e-14, equal_nan=True)
        assert g.reason == w.reason
        np.testing.assert_array_equal(g.nan_ref, w.nan_ref)
        np.testing.assert_array_equal(g.nan_cur, w.nan_cur)
    for fn in (D.psi_columns, D.jensenshannon_columns, D.hellinger_columns):
        np.testing.assert_allclose(fn(ref, cur, backend="cuda").statistic,
                                   fn(ref, cur, backend="reference").statistic, rtol=1e-12,
                                   atol=1e-15, equal_nan=True)
    s = D.sort_columns(ref, backend="cuda")
    np.testing.assert_array_equal(s.values, D.sort_columns(ref, backend="reference").values)
    np.testing.assert_allclose(D.std_columns(ref, backend="cuda"), np.nanstd(ref.astype(np.float64), axis=0),
                               rtol=1e-12)


# ----------------------------------------------------------------------------- counts


@functools.cache
def _tables():
    rng = np.random.default_rng(7)
    ref, cur = random_count_tables(11)
    for _ in range(40):
        k = int(rng.integers(1, 300))
        r = rng.multinomial(int(rng.integers(1, 10**5)), rng.dirichlet(np.ones(k))).astype(float)
        c = rng.multinomial(int(rng.integers(1, 10**5)), rng.dirichlet(np.ones(k))).astype(float)
        ref.append(r)
        cur.append(c)
    ref += [np.zeros(5), np.zeros(0), np.array([3.0, 0.0]), np.array([2.0, 2.0])]
    cur += [np.ones(5), np.zeros(0), np.array([0.0, 4.0]), np.array([2.0, 2.0])]
    rc, off = _pack(ref)
    cc, _ = _pack(cur)
    return rc, cc, off


@pytest.mark.parametrize(("kernel", "extra"), [("psi", (1e-4,)), ("jensenshannon", (2.0,)),
                                               ("hellinger", ()), ("linf", ()),
                                               ("chi2", (False, True)), ("chi2", (True, False))])
@pytest.mark.parametrize("budget", [None, 300])
def test_counts_match_the_reference(cuda_device, monkeypatch, kernel, extra, budget):
    if budget:
        monkeypatch.setattr(G, "BATCH_ELEMENTS", budget)
    args = (*_tables(), *extra)
    got = getattr(GC, kernel)(*_copy(args))
    want = getattr(R, kernel)(*_copy(args))
    CASES[kernel].check(got, want, args, f"{kernel} on {cuda_device.name}")


def test_chi2_matches_scipy(cuda_device):
    rc, cc, off = _tables()
    stat, p, dof = GC.chi2(rc, cc, off, False, True)
    for j in range(len(off) - 1):
        table = np.array([rc[off[j]:off[j + 1]], cc[off[j]:off[j + 1]]])
        table = table[:, table.sum(axis=0) > 0]
        if table.size == 0 or not (table.sum(axis=1) > 0).all():
            assert dof[j] == -1 and np.isnan(stat[j])
            continue
        e = stats.chi2_contingency(table, correction=True)
        assert dof[j] == e.dof
        np.testing.assert_allclose(stat[j], e.statistic, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(p[j], e.pvalue, rtol=1e-12, atol=1e-300)


def test_host_distributions_without_numba_agree():
    pytest.importorskip("numba")
    from engine.kernels import distributions_numba as DN

    for u, nx, ny in [(1234.5, 10, 12), (8.0e6, 300, 280), (5.5e9, 2000, 2500), (3.0, 2, 2)]:
        np.testing.assert_allclose(G.cvm_from_u_reference(u, nx, ny), DN._cvm_from_u(u, nx, ny),
                                   rtol=1e-12, atol=1e-15)
