"""Drift statistics through their public functions, on every backend, against scipy.

scipy is the specification here (``ks_2samp``, ``wasserstein_distance``,
``cramervonmises_2samp``, ``chi2_contingency``, ``jensenshannon``): every
backend must reproduce it. The columns of one batch cover the regimes of each
test (exact and asymptotic p-values, ties, tiny and very unequal samples).
Each backend against the reference, kernel by kernel, is ``tests/test_kernels.py``.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_cases import random_count_tables  # tests/ is on sys.path (conftest.py)

from engine.kernels import drift as D
from engine.kernels import reference as R
from engine.kernels import usable_backends

stats = pytest.importorskip("scipy.stats")
special = pytest.importorskip("scipy.special")
jensenshannon = pytest.importorskip("scipy.spatial.distance").jensenshannon

BACKENDS = usable_backends("ks_2samp")
FAST_BACKENDS = [b for b in BACKENDS if b != "reference"]


def _pairs(sizes, seed):
    """Continuous, tied (integer-valued) and shifted samples for each (n_ref, n_cur)."""
    rng = np.random.default_rng(seed)
    cols_r, cols_c = [], []
    for m, n in sizes:
        cols_r.append(rng.normal(size=m))
        cols_c.append(rng.normal(size=n) + rng.choice([0.0, 0.1, 0.5]))
        cols_r.append(rng.integers(0, 5, size=m).astype(float))
        cols_c.append(rng.integers(0, 6, size=n).astype(float))
    return cols_r, cols_c


# Sizes the pure-Python reference handles quickly (exact KS and CvM included).
SMALL = [(1, 1), (1, 2), (2, 2), (2, 3), (3, 7), (5, 5), (7, 7), (20, 19), (20, 20), (5, 20),
         (21, 30), (100, 100), (137, 211), (1000, 999), (5, 100_000), (50, 20_000),
         (30, 12_000)]
# The exact KS paths at their largest, and the asymptotic regime with large n.
LARGE = [(10_000, 9_999), (10_000, 10_000), (10_001, 10_001), (20_000, 20_000),
         (30_000, 25_000), (100_000, 3)]
SMALL_R, SMALL_C = _pairs(SMALL, 0)
LARGE_R, LARGE_C = _pairs(LARGE, 1)
_RESULTS: dict = {}


def run(fn, ref, cur, backend, **kw):
    key = (fn.__name__, id(ref), id(cur), backend, tuple(sorted(kw.items())))
    if key not in _RESULTS:  # each batch is computed once per backend and statistic
        _RESULTS[key] = fn(ref, cur, backend=backend, **kw)
    return _RESULTS[key]


def batches(backend):
    out = [(SMALL_R, SMALL_C)]
    if backend != "reference":
        out.append((LARGE_R, LARGE_C))
    return out


# ---------------------------------------------------------------------------
# Against scipy
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_ks_matches_scipy(backend):
    for ref, cur in batches(backend):
        stat, p = run(D.ks_2samp_columns, ref, cur, backend)
        for j, (x, y) in enumerate(zip(ref, cur)):
            r = stats.ks_2samp(x, y, method="auto")
            assert stat[j] == r.statistic, (j, len(x), len(y))  # exactly, lattice rounding included
            np.testing.assert_allclose(p[j], r.pvalue, rtol=1e-9, atol=1e-300,
                                       err_msg=f"column {j}: n={len(x)}, m={len(y)}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_wasserstein_matches_scipy(backend):
    for ref, cur in batches(backend):
        w = run(D.wasserstein_columns, ref, cur, backend).statistic
        wn = run(D.wasserstein_normed_columns, ref, cur, backend).statistic
        for j, (x, y) in enumerate(zip(ref, cur)):
            expect = stats.wasserstein_distance(x, y)
            np.testing.assert_allclose(w[j], expect, rtol=1e-9, atol=1e-300)
            np.testing.assert_allclose(wn[j], expect / max(np.std(x), 0.001), rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cvm_matches_scipy(backend):
    for ref, cur in batches(backend):
        res = run(D.cvm_2samp_columns, ref, cur, backend)
        for j, (x, y) in enumerate(zip(ref, cur)):
            if len(x) < 2 or len(y) < 2:
                assert np.isnan(res.statistic[j]) and "at least 2" in res.reason[j]
                continue
            r = stats.cramervonmises_2samp(x, y, method="auto")
            np.testing.assert_allclose(res.statistic[j], r.statistic, rtol=1e-12)
            if max(len(x), len(y)) <= 20:  # exact p-value: the same count of lattice paths
                assert res.pvalue[j] == r.pvalue
            else:  # 1 - cdf cancels for tiny p: both agree to ~1e-15 absolute there
                np.testing.assert_allclose(res.pvalue[j], r.pvalue, rtol=1e-9, atol=1e-13)


def _tables(seed=3):
    ref, cur = random_count_tables(seed)
    # categories missing from one side, from both sides, and dof == 1 after dropping
    ref += [np.array([10.0, 0.0, 5.0, 0.0]), np.array([0.0, 7.0, 3.0]), np.array([4.0, 0.0, 0.0])]
    cur += [np.array([0.0, 0.0, 12.0, 3.0]), np.array([0.0, 2.0, 9.0]), np.array([1.0, 0.0, 2.0])]
    return ref, cur


CAT_R, CAT_C = _tables()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("correction", [True, False])
@pytest.mark.parametrize("gtest", [False, True])
def test_chi2_and_gtest_match_scipy(backend, correction, gtest):
    fn = D.gtest_columns if gtest else D.chi2_columns
    res = fn(CAT_R, CAT_C, correction=correction, backend=backend)
    for j, (r, c) in enumerate(zip(CAT_R, CAT_C)):
        table = np.array([r, c])
        table = table[:, table.sum(axis=0) > 0]
        e = stats.chi2_contingency(table, correction=correction,
                                   lambda_="log-likelihood" if gtest else None)
        assert res.dof[j] == e.dof
        np.testing.assert_allclose(res.statistic[j], e.statistic, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(res.pvalue[j], e.pvalue, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("backend", BACKENDS)
def test_categorical_distances(backend):
    js = D.jensenshannon_counts_columns(CAT_R, CAT_C, backend=backend).statistic
    js_e = D.jensenshannon_counts_columns(CAT_R, CAT_C, base=np.e, backend=backend).statistic
    linf = D.linf_columns(CAT_R, CAT_C, backend=backend).statistic
    hel = D.hellinger_counts_columns(CAT_R, CAT_C, backend=backend).statistic
    psi = D.psi_counts_columns(CAT_R, CAT_C, backend=backend).statistic
    for j, (r, c) in enumerate(zip(CAT_R, CAT_C)):
        p, q = r / r.sum(), c / c.sum()
        np.testing.assert_allclose(js[j], jensenshannon(r, c, base=2), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(js_e[j], jensenshannon(r, c), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(linf[j], np.max(np.abs(p - q)), rtol=1e-15)
        # the other textbook form of the Hellinger distance (cancels near 0, hence atol)
        np.testing.assert_allclose(hel[j], np.sqrt(max(1 - np.sum(np.sqrt(p * q)), 0)),
                                   rtol=1e-9, atol=1e-7)
        pc, qc = np.clip(p, 1e-4, None), np.clip(q, 1e-4, None)
        np.testing.assert_allclose(psi[j], np.sum((pc - qc) * np.log(pc / qc)), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_binned_distances(backend):
    ref, cur = SMALL_R, SMALL_C
    h = D.histogram_columns(ref, cur, n_bins=10, backend=backend)
    js = D.jensenshannon_columns(ref, cur, backend=backend).statistic
    psi = D.psi_columns(ref, cur, backend=backend).statistic
    hel = D.hellinger_columns(ref, cur, backend=backend).statistic
    for j, (x, y) in enumerate(zip(ref, cur)):
        edges = np.quantile(x, np.linspace(0, 1, 11))
        np.testing.assert_array_equal(h.edges[j], edges)
        # the same bins from np.digitize: [e_b-1, e_b), last inner bin closed
        for sample, counts in ((x, h.ref_counts[j]), (y, h.cur_counts[j])):
            idx = np.digitize(sample, edges)
            idx[sample == edges[-1]] = 10
            np.testing.assert_array_equal(counts, np.bincount(idx, minlength=12))
        r, c = h.ref_counts[j], h.cur_counts[j]
        assert r[0] == 0 and r[-1] == 0 and r.sum() == len(x) and c.sum() == len(y)
        np.testing.assert_allclose(js[j], jensenshannon(r, c, base=2), rtol=1e-12, atol=1e-15)
        p, q = np.clip(r / r.sum(), 1e-4, None), np.clip(c / c.sum(), 1e-4, None)
        np.testing.assert_allclose(psi[j], np.sum((p - q) * np.log(p / q)), rtol=1e-12, atol=1e-15)
        p, q = r / r.sum(), c / c.sum()
        np.testing.assert_allclose(hel[j], np.sqrt(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)),
                                   rtol=1e-12, atol=1e-15)


def test_scalar_distributions_match_scipy():
    # kstwo.sf over every branch of Simard & L'Ecuyer's selection, chi2.sf over cephes' branches
    rng = np.random.default_rng(5)
    fns = [R.kstwo_sf]
    if FAST_BACKENDS:
        from engine.kernels import distributions_numba as NDIST
        from engine.kernels import ks_dist_numba as NKS

        fns.append(NKS._kstwo_sf)
    for n in [1, 2, 3, 10, 139, 140, 141, 1000, 99_999, 100_001]:
        for x in np.concatenate([rng.uniform(0, 1, 6), rng.uniform(0, 3 / np.sqrt(n), 10),
                                 [0.5 / n, 1 / n, 0.5, 1 - 1 / n]]):
            e = stats.kstwo.sf(x, n)
            for f in fns:
                np.testing.assert_allclose(f(n, x), e, rtol=1e-10, atol=1e-300, err_msg=f"n={n} x={x}")
    chi = [R.chi2_sf] + ([NDIST._chi2_sf] if FAST_BACKENDS else [])
    for df in [1, 2, 3, 7, 40, 41, 399, 401, 5000]:
        for x in np.concatenate([rng.uniform(0, 3 * df + 10, 12), [0, 1e-10, 0.3, 0.55, 1.1, 2.2, df]]):
            for f in chi:
                np.testing.assert_allclose(f(float(df), x), special.chdtrc(df, x), rtol=1e-12,
                                           atol=1e-300, err_msg=f"df={df} x={x}")


@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=25),
       st.lists(st.integers(-3, 3), min_size=1, max_size=25))
def test_ks_and_wasserstein_property_ties(x, y):
    x, y = np.array(x, float), np.array(y, float)
    r = stats.ks_2samp(x, y)
    for backend in BACKENDS:
        stat, p = D.ks_2samp_columns(x, y, backend=backend)
        assert stat[0] == r.statistic
        np.testing.assert_allclose(p[0], r.pvalue, rtol=1e-9)
        w = D.wasserstein_columns(x, y, backend=backend).statistic[0]
        np.testing.assert_allclose(w, stats.wasserstein_distance(x, y), rtol=1e-12, atol=1e-300)


# ---------------------------------------------------------------------------
# One pass for several statistics
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_numeric_drift_equals_single_tests(backend):
    for ref, cur in batches(backend):
        fused = D.numeric_drift_columns(ref, cur, backend=backend)
        for name, fn in [("ks_2samp", D.ks_2samp_columns), ("cvm_2samp", D.cvm_2samp_columns),
                         ("wasserstein", D.wasserstein_columns),
                         ("wasserstein_normed", D.wasserstein_normed_columns)]:
            single = run(fn, ref, cur, backend)
            np.testing.assert_array_equal(fused[name].statistic, single.statistic, err_msg=name)
            if single.pvalue is not None:
                np.testing.assert_array_equal(fused[name].pvalue, single.pvalue, err_msg=name)
            assert fused[name].reason == single.reason


# ---------------------------------------------------------------------------
# Edge cases and input handling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_dropped_counted_and_all_nan_column(backend):
    rng = np.random.default_rng(7)
    ref = rng.normal(size=(500, 4))
    cur = rng.normal(size=(400, 4))
    ref[::7, 0] = np.nan
    cur[::5, 1] = np.nan
    ref[:, 2] = np.nan  # all NaN
    cur[:, 3] = np.nan
    res = D.ks_2samp_columns(ref, cur, backend=backend)
    assert res.nan_ref.tolist() == [72, 0, 500, 0] and res.nan_cur.tolist() == [0, 80, 0, 400]
    assert res.n_ref.tolist() == [428, 500, 0, 500]
    x0 = ref[:, 0][~np.isnan(ref[:, 0])]
    assert res.statistic[0] == stats.ks_2samp(x0, cur[:, 0]).statistic
    assert np.isnan(res.statistic[2]) and np.isnan(res.pvalue[2]) and np.isnan(res.statistic[3])
    assert res.reason[0] is None and res.reason[1] is None
    assert res.reason[2] == "reference column has no values (500 NaN dropped)"
    assert res.reason[3] == "current column has no values (400 NaN dropped)"
    fused = D.numeric_drift_columns(ref, cur, backend=backend)
    for fn in (D.cvm_2samp_columns, D.wasserstein_columns, D.wasserstein_normed_columns, D.psi_columns,
               D.jensenshannon_columns, D.hellinger_columns, *[lambda *a, name=name, **kw: fused[name]
                                                    for name in fused]):
        r = fn(ref, cur, backend=backend)
        assert np.isnan(r.statistic[2:]).all() and np.isfinite(r.statistic[:2]).all(), fn.__name__
        assert r.reason[2].startswith("reference column has no values"), fn.__name__


@pytest.mark.parametrize("backend", BACKENDS)
def test_int_float32_and_list_inputs_agree(backend):
    rng = np.random.default_rng(8)
    a = rng.integers(-50, 50, size=(300, 3))
    b = rng.integers(-50, 60, size=(200, 3))
    base = D.ks_2samp_columns(a.astype(float), b.astype(float), backend=backend)
    for ra, rb in [(a, b), (a.astype(np.float32), b.astype(np.float32)), (a.astype(np.int8), b),
                   (list(a.T), list(b.T)), (np.ascontiguousarray(a), np.asfortranarray(b)),
                   (D.sort_columns(a, backend=backend), b)]:
        res = D.ks_2samp_columns(ra, rb, backend=backend)
        np.testing.assert_array_equal(res.statistic, base.statistic)
        np.testing.assert_array_equal(res.pvalue, base.pvalue)
    f32 = rng.normal(size=(100, 2)).astype(np.float32)
    w = D.wasserstein_columns(f32, f32 + np.float32(0.25), backend=backend).statistic
    expect = [stats.wasserstein_distance(f32[:, j].astype(float), (f32[:, j] + np.float32(0.25))
                                         .astype(float)) for j in range(2)]
    np.testing.assert_allclose(w, expect, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_constant_huge_and_infinite_values(backend):
    const = np.full(50, 3.0)
    other = np.linspace(0, 6, 60)
    huge = np.random.default_rng(9).normal(size=200) * 1e300
    cols_r = [const, const, huge, np.array([1.0, np.inf, -np.inf]), np.array([np.inf, np.inf])]
    cols_c = [const, other, huge[::-1] * 0.5, np.array([1.0, np.inf, -np.inf]), np.array([1.0, 2.0])]
    ks = D.ks_2samp_columns(cols_r, cols_c, backend=backend)
    for j in range(5):
        assert ks.statistic[j] == stats.ks_2samp(cols_r[j], cols_c[j]).statistic
    assert ks.statistic[0] == 0 and ks.pvalue[0] == 1
    w = D.wasserstein_columns(cols_r, cols_c, backend=backend).statistic
    wn = D.wasserstein_normed_columns(cols_r, cols_c, backend=backend)
    assert w[0] == 0 and wn.statistic[0] == 0
    np.testing.assert_allclose(w[1], stats.wasserstein_distance(const, other), rtol=1e-12)
    np.testing.assert_allclose(wn.statistic[1], w[1] / 0.001, rtol=1e-12)  # std floor
    np.testing.assert_allclose(w[2], stats.wasserstein_distance(cols_r[2], cols_c[2]), rtol=1e-9)
    # np.std overflows on 1e300-sized values; the engine rescales first
    np.testing.assert_allclose(wn.statistic[2], w[2] / (np.std(huge / 1e300) * 1e300), rtol=1e-9)
    assert w[3] == 0.0  # equal masses at +-inf cancel (scipy: nan)
    assert w[4] == np.inf  # all reference mass at +inf
    assert wn.reason[3] == "reference standard deviation is not finite"
    psi = D.psi_columns(cols_r, cols_c, backend=backend).statistic
    assert psi[0] == 0
    h = D.histogram_columns(cols_r, cols_c, backend=backend)
    assert h.ref_counts[0].tolist() == [0] + [0] * 9 + [50, 0]  # constant: everything in the last inner bin
    assert h.ref_counts[3].tolist() == [1] + [0] * 9 + [1, 1]  # -inf under, 1.0 inside, +inf over
    assert np.isnan(h.edges[4]).all() and h.reason[4] == "reference column has no finite values"
    cvm = D.cvm_2samp_columns(cols_r, cols_c, backend=backend)
    for j in (0, 1, 2):
        np.testing.assert_allclose(cvm.statistic[j], stats.cramervonmises_2samp(cols_r[j], cols_c[j])
                                   .statistic, rtol=1e-12)


def test_sorted_columns_reuse_and_from_packed():
    rng = np.random.default_rng(10)
    ref = rng.normal(size=(1000, 3))
    cur = rng.normal(size=(800, 3)) + 0.2
    prof = D.sort_columns(ref)
    packed = D.SortedColumns.from_packed(np.sort(ref, axis=0).ravel(order="F"),
                                         np.arange(4) * 1000, assume_sorted=True)
    unsorted = D.SortedColumns.from_packed(ref.ravel(order="F"), np.arange(4) * 1000)
    base = D.ks_2samp_columns(ref, cur)
    for r in (prof, packed, unsorted):
        np.testing.assert_array_equal(D.ks_2samp_columns(r, cur).statistic, base.statistic)
    assert prof.n_columns == 3 and prof.counts.tolist() == [1000] * 3


def test_bad_inputs_raise_clear_errors():
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="ref has 2 columns but cur has 3"):
        D.ks_2samp_columns(x, np.zeros((5, 3)))
    with pytest.raises(TypeError, match="must hold real numbers"):
        D.ks_2samp_columns(np.array(["a", "b"]), x)
    with pytest.raises(ValueError, match="1-D .* or 2-D"):
        D.wasserstein_columns(np.zeros((2, 2, 2)), x)
    with pytest.raises(ValueError, match="n_bins must be >= 1"):
        D.psi_columns(x, x, n_bins=0)
    with pytest.raises(ValueError, match="eps must be in"):
        D.psi_columns(x, x, eps=0)
    with pytest.raises(ValueError, match="base must be"):
        D.jensenshannon_columns(x, x, base=1)
    with pytest.raises(ValueError, match="non-negative"):
        D.chi2_columns([[1, -2]], [[1, 2]])
    with pytest.raises(ValueError, match="column 0: ref_counts has 2 categories, cur_counts 3"):
        D.chi2_columns([[1, 2]], [[1, 2, 3]])
    with pytest.raises(ValueError, match="must not contain NaN"):
        D.SortedColumns.from_packed([1.0, np.nan], [0, 2])
    res = D.chi2_columns([[0, 0], [1, 2]], [[1, 2], [3, 4]])
    assert np.isnan(res.statistic[0]) and res.reason == ("reference counts sum to 0", None)
