"""The lean drift path through the public API: packed sort, bins of sorted columns, spread.

The kernels ``sort_packed``, ``bin_sorted`` and ``std`` are compared with their
references backend by backend in ``tests/test_kernels.py`` (on the columns of
``tests/kernel_cases.py``: ties, NaN, +-inf, -0.0, constant, values a few ulps
apart, empty, one value). Here: what the reference does not pin down (the
order of -0.0 and +0.0), the packing of ``engine.kernels.drift``, agreement
with NumPy and with the profile's own binning.
"""

import numpy as np
import pytest
from kernel_cases import unsorted_columns

from engine.kernels import drift as D
from engine.kernels import get, usable_backends

BACKENDS = usable_backends("sort_packed")
FAST_BACKENDS = [b for b in BACKENDS if b != "reference"]
needs_fast = pytest.mark.skipif(not FAST_BACKENDS, reason="no accelerated drift backend here")


def _columns(seed):
    """Columns of every kind the sort and the bins must get right (those of kernel_cases)."""
    rng = np.random.default_rng(seed)
    return [c[rng.permutation(len(c))] for c in unsorted_columns()]


def _packed(cols):
    offsets = np.zeros(len(cols) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(c) for c in cols])
    return np.concatenate(cols), offsets


@needs_fast
@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_sort_packed_puts_negative_zero_first(backend):
    cols = _columns(0)
    values, offsets = _packed(cols)
    new, _ = get("sort_packed", backend)(values, offsets)
    for j in range(len(cols)):
        got = values[new[j]:new[j + 1]]
        z = got == 0
        assert not np.any(z[:-1] & z[1:] & ~np.signbit(got[:-1]) & np.signbit(got[1:]))


@needs_fast
@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_sort_columns_of_lists_and_matrices_agree_with_reference(backend):
    cols = _columns(2)
    a = D.sort_columns(cols, backend=backend)
    b = D.sort_columns(cols, backend="reference")
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_array_equal(a.nan_counts, b.nan_counts)
    m = np.stack([c[:2000] for c in cols if len(c) >= 2000], axis=1)
    a = D.sort_columns(m, backend=backend)
    b = D.sort_columns(list(m.T), backend=backend)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.nan_counts, b.nan_counts)


def test_sort_columns_leaves_the_input_alone():
    cols = _columns(3)
    before = [c.copy() for c in cols]
    D.sort_columns(cols)
    m = np.stack([c[:2000] for c in cols if len(c) >= 2000], axis=1)
    for x in (m, np.asfortranarray(m), m[:, ::2], m[:, 3]):
        x0 = x.copy()
        D.sort_columns(x)
        np.testing.assert_array_equal(x, x0)
    for c, b in zip(cols, before):
        np.testing.assert_array_equal(c, b)


def _edges_for(cols, rng, bins=10):
    """Quantile edges of each column (NaN rows for columns without finite values), some tied."""
    out = []
    for c in cols:
        f = c[np.isfinite(c)]
        if len(f) == 0:
            out.append(np.full(bins + 1, np.nan))
        else:
            e = np.quantile(f, np.linspace(0, 1, bins + 1))
            if rng.random() < 0.3:
                e[3:6] = e[3]  # tied edges leave empty bins
            out.append(e)
    return np.array(out)


@pytest.mark.parametrize("backend", usable_backends("bin_sorted"))
@pytest.mark.parametrize("seed", [0, 1])
def test_bin_sorted_equals_profile_hist(backend, seed):
    from engine.monitor.profile_numeric import hist_sorted

    rng = np.random.default_rng(seed)
    cols = [np.sort(c[~np.isnan(c)]) for c in _columns(seed)]
    edges = _edges_for(cols, rng)
    edges[5] = _edges_for([cols[6]], rng)[0]  # another column's edges: values outside them
    values, offsets = _packed(cols)
    got = D.bin_sorted_columns(D.SortedColumns(values, offsets, np.zeros(len(cols), np.int64)),
                               edges, backend=backend)
    assert got.dtype == np.int64 and got.shape == (len(cols), 12)
    for j, c in enumerate(cols):
        np.testing.assert_array_equal(got[j], hist_sorted(c, edges[j]))
        if np.isfinite(edges[j, 0]):
            assert got[j].sum() == len(c)
        else:
            assert not got[j].any()


def test_bin_sorted_columns_api():
    x = [np.array([3.0, np.nan, 1.0, 2.0, 2.0, 9.0]), np.zeros(0)]
    out = D.bin_sorted_columns(x, [[1.0, 2.0, 3.0], [0.0, 1.0, 2.0]])
    assert out.tolist() == [[0, 1, 3, 1], [0, 0, 0, 0]]
    with pytest.raises(ValueError, match="edges must be"):
        D.bin_sorted_columns(x, [[1.0, 2.0]])
    with pytest.raises(ValueError, match="edges must be"):
        D.bin_sorted_columns(x, [[1.0], [2.0]])


@pytest.mark.parametrize("backend", usable_backends("std"))
def test_std_columns_equals_numpy(backend):
    rng = np.random.default_rng(4)
    cols = [np.zeros(0), np.array([3.0]), rng.normal(size=10_000), rng.normal(size=500) * 1e300,
            rng.normal(size=500) * 1e-300, np.full(100, -2.0), np.array([1.0, np.inf]),
            np.array([-np.inf, np.inf]), np.round(rng.normal(size=999)), np.array([-0.0, 0.0])]
    got = D.std_columns(cols, backend=backend)
    ref = D.std_columns(cols, backend="reference")
    assert np.isnan(got[0]) and np.isnan(ref[0])
    np.testing.assert_allclose(got, ref, rtol=1e-12, equal_nan=True)
    with np.errstate(invalid="ignore", over="ignore"):
        for j in (1, 2, 5, 8, 9):
            assert got[j] == pytest.approx(np.std(cols[j]), rel=1e-12, abs=0)
    assert got[3] == pytest.approx(np.std(cols[3] / 1e300) * 1e300, rel=1e-12)
    assert got[4] == pytest.approx(np.std(cols[4] * 1e300) / 1e300, rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_numeric_drift_with_known_reference_std(backend):
    rng = np.random.default_rng(5)
    ref = D.sort_columns([rng.normal(size=3000), np.full(50, 1.0), np.zeros(0), rng.normal(size=7)])
    cur = [rng.normal(size=2000) + 0.1, rng.normal(size=40), rng.normal(size=10), np.zeros(0)]
    plain = D.numeric_drift_columns(ref, cur, backend=backend)
    sd = D.std_columns(ref, backend=backend)
    known = D.numeric_drift_columns(ref, cur, backend=backend, ref_std=sd)
    for name in plain:
        np.testing.assert_array_equal(plain[name].statistic, known[name].statistic, err_msg=name)
        assert plain[name].reason == known[name].reason
    with pytest.raises(ValueError, match="ref_std must have one value per column"):
        D.numeric_drift_columns(ref, cur, backend=backend, ref_std=sd[:2])
