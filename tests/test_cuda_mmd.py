"""Kernel ``mmd2_permutations`` (``reference_mmd``, ``mmd_numba``, ``mmd_cuda``) and the MMD
permutation test of ``engine.monitor.mmd`` that calls it.

The ``cuda`` backend runs on the host emulation (threads in order and reversed) and on a
GPU where there is one (the ``cuda_device`` fixture); ``tests/test_kernels.py`` runs every
backend on the shared cases of ``kernel_cases.py``. This file adds batches of permutations
(a small ``BATCH_BYTES``), shifted and degenerate samples, the argument checks, and the
monitor's test against the loop over permuted kernel matrices it used before the kernel.
"""

import numpy as np
import pytest

from engine.kernels import mmd_cuda as C
from engine.kernels import mmd_numba as N
from engine.kernels import reference_mmd as R
from engine.kernels import usable_backends
from engine.monitor import mmd as M

EPS = np.finfo(np.float64).eps
NUMBA = "numba" in usable_backends("mmd2_permutations")


def perms_for(rng, big, count):
    out = np.empty((count, big), dtype=np.int64)
    for i in range(count):
        out[i] = rng.permutation(big)
    return out


def assert_close(got, want, big):
    tol = 16.0 * big * EPS
    assert isinstance(got[0], float)
    assert got[1].dtype == np.float64 and got[1].shape == want[1].shape
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=tol)
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=tol)


def samples(seed, n, m, d, shift=0.0):
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(size=(n, d)), rng.normal(size=(m, d)) + shift]), rng


# ---------------------------------------------------------------------------
# the kernel, cuda backend
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "m"), [(150, 150), (40, 230), (230, 40), (2, 2)])
def test_cuda_matches_reference_in_batches(cuda_device, monkeypatch, n, m):
    z, rng = samples(1, n, m, 6)
    perms = perms_for(rng, n + m, 33)
    want = R.mmd2_permutations(z, n, perms, 2.5)
    assert_close(C.mmd2_permutations(z, n, perms, 2.5), want, n + m)
    # batches of 5 splits: the given split and 32 permutations over 7 batches
    monkeypatch.setattr(C, "BATCH_BYTES", 8 * (n + m) * 5)
    assert_close(C.mmd2_permutations(z, n, perms, 2.5), want, n + m)


def test_cuda_shifted_sample_has_a_small_p_value(cuda_device):
    z, rng = samples(2, 120, 90, 4, shift=0.8)
    perms = perms_for(rng, 210, 99)
    stat, perm_stats = C.mmd2_permutations(z, 120, perms, M.median_bandwidth(z))
    want = R.mmd2_permutations(z, 120, perms, M.median_bandwidth(z))
    assert_close((stat, perm_stats), want, 210)
    assert stat > 0.05 and perm_stats.max() < stat
    assert (np.count_nonzero(perm_stats >= stat) + 1) / 100 == 0.01


def test_cuda_same_distribution_is_not_significant(cuda_device):
    z, rng = samples(3, 100, 100, 3)
    perms = perms_for(rng, 200, 99)
    stat, perm_stats = C.mmd2_permutations(z, 100, perms, M.median_bandwidth(z))
    assert (np.count_nonzero(perm_stats >= stat) + 1) / 100 > 0.05


def test_cuda_all_equal_and_duplicated_rows(cuda_device):
    z = np.full((37, 4), -1.25)
    perms = perms_for(np.random.default_rng(4), 37, 12)
    stat, perm_stats = C.mmd2_permutations(z, 20, perms, 1.0)
    assert stat == 0.0 and np.array_equal(perm_stats, np.zeros(12))
    base, rng = samples(5, 6, 4, 2)
    dup = np.vstack([base, base, base[::-1]])
    perms = perms_for(rng, 30, 20)
    assert_close(C.mmd2_permutations(dup, 11, perms, 0.9), R.mmd2_permutations(dup, 11, perms, 0.9), 30)


def test_cuda_one_permutation_none_and_the_identity(cuda_device):
    z, rng = samples(6, 9, 14, 3)
    one = perms_for(rng, 23, 1)
    assert_close(C.mmd2_permutations(z, 9, one, 1.7), R.mmd2_permutations(z, 9, one, 1.7), 23)
    stat, none = C.mmd2_permutations(z, 9, np.zeros((0, 23), np.int64), 1.7)
    assert none.shape == (0,) and none.dtype == np.float64
    ident = np.arange(23, dtype=np.int64)[None]
    s2, (p,) = C.mmd2_permutations(z, 9, ident, 1.7)
    assert s2 == stat and abs(p - stat) <= 16 * 23 * EPS


def test_cuda_larger_sample(cuda_device):
    """A pooled sample of 1500 rows (more threads than the grid-strided kernels' first pass on
    the emulator is cheap enough for), against the numba backend or the reference."""
    big = 1500 if not cuda_device.emulated else 600
    z, rng = samples(7, big // 2 + 17, big - big // 2 - 17, 8, shift=0.05)
    n = big // 2 + 17
    perms = perms_for(rng, big, 64)
    want = (N if NUMBA else R).mmd2_permutations(z, n, perms, 4.0)
    assert_close(C.mmd2_permutations(z, n, perms, 4.0), want, big)


# ---------------------------------------------------------------------------
# the kernel, numba backend and the argument checks of every backend
# ---------------------------------------------------------------------------


@pytest.mark.skipif(not NUMBA, reason="numba does not load here")
@pytest.mark.parametrize(("n", "m"), [(200, 160), (3, 300), (301, 2)])
def test_numba_matches_reference_in_batches(monkeypatch, n, m):
    z, rng = samples(8, n, m, 5, shift=0.1)
    perms = perms_for(rng, n + m, 41)
    want = R.mmd2_permutations(z, n, perms, 3.0)
    assert_close(N.mmd2_permutations(z, n, perms, 3.0), want, n + m)
    monkeypatch.setattr(N, "BATCH_BYTES", 8 * (n + m) * 4)
    assert_close(N.mmd2_permutations(z, n, perms, 3.0), want, n + m)


@pytest.mark.skipif(not NUMBA, reason="numba does not load here")
def test_numba_kernel_matrix_is_symmetric_with_unit_diagonal():
    z, _ = samples(9, 51, 50, 3)  # an odd number of rows: the middle row pairs with itself
    g = z @ z.T
    N._rbf_in_place(g, 2.0 * 1.3 * 1.3)
    assert np.array_equal(g, g.T) and np.array_equal(np.diag(g), np.ones(101))
    np.testing.assert_allclose(g, R.rbf_gram(z, 1.3), rtol=0, atol=1e-14)


def _backends():
    out = [("reference", R.mmd2_permutations), ("cuda", C.mmd2_permutations)]
    return out + ([("numba", N.mmd2_permutations)] if NUMBA else [])


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_arguments_are_checked(backend):
    fn = dict(_backends()).get(backend)
    if fn is None:
        pytest.skip("numba does not load here")
    _check_arguments(fn)


def test_cuda_arguments_are_checked(cuda_device):
    _check_arguments(C.mmd2_permutations)


def _check_arguments(fn):
    z = np.zeros((6, 2))
    good = np.arange(6, dtype=np.int64)[None]
    for bad in [(z, 1, good, 1.0), (z, 5, good, 1.0), (z, 3, good[:, :5], 1.0),
                (z, 3, good + 1, 1.0), (z, 3, good - 1, 1.0), (z, 3, good, 0.0),
                (z, 3, good, float("nan")), (z[0], 3, good, 1.0),
                (z, 3, good.astype(np.float64), 1.0)]:
        with pytest.raises(ValueError):
            fn(*bad)


# ---------------------------------------------------------------------------
# the monitor's permutation test
# ---------------------------------------------------------------------------


def old_permutation_test(x, y, permutations=200, max_rows=1000, seed=0):
    """``engine.monitor.mmd.mmd_permutation_test`` before the kernel: one permuted kernel
    matrix per permutation (kept here to show the results did not change)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if len(x) > max_rows:
        x = x[rng.choice(len(x), max_rows, replace=False)]
    if len(y) > max_rows:
        y = y[rng.choice(len(y), max_rows, replace=False)]
    if len(x) < 2 or len(y) < 2:
        return float("nan"), float("nan"), len(x), len(y)
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd[sd == 0] = 1.0
    z = (np.vstack([x, y]) - mu) / sd
    sq = np.einsum("ij,ij->i", z, z)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    iu = np.triu_indices(len(z), 1)
    med = float(np.median(np.sqrt(d2[iu])))
    bw = med if med > 0 else 1.0
    k = np.exp(-d2 / (2.0 * bw * bw))
    n = len(x)
    stat = R.mmd2_unbiased(k, n)
    hits = 0
    for _ in range(permutations):
        p = rng.permutation(len(z))
        if R.mmd2_unbiased(k[np.ix_(p, p)], n) >= stat:
            hits += 1
    return stat, (hits + 1) / (permutations + 1), len(x), len(y)


def _route(backend, monkeypatch):
    """Make the monitor's kernel call run ``backend`` (cuda: the function itself, on the
    fixture's device, since the registry's loader needs a GPU)."""
    if backend == "numba" and not NUMBA:
        pytest.skip("numba does not load here")
    if backend == "cuda":
        def call(kernel, *args):
            assert kernel == "mmd2_permutations"
            return C.mmd2_permutations(*args)
        monkeypatch.setattr(M, "call", call)
    else:
        monkeypatch.setenv("MLOPS_BACKEND", f"mmd2_permutations={backend}")


MONITOR_INPUTS = [  # (n, m, d, shift, max_rows, permutations, seed)
    (300, 300, 4, 0.0, 1000, 99, 0),
    (300, 300, 4, 0.5, 1000, 99, 1),
    (120, 80, 3, 0.15, 1000, 200, 2),
    (400, 350, 2, 0.1, 150, 60, 3),   # subsampled on both sides
    (60, 9, 5, 0.4, 1000, 50, 4),
]


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_monitor_results_are_unchanged(backend, monkeypatch):
    _check_monitor_unchanged(backend, monkeypatch)


def test_monitor_results_are_unchanged_on_cuda(cuda_device, monkeypatch):
    _check_monitor_unchanged("cuda", monkeypatch)


def _check_monitor_unchanged(backend, monkeypatch):
    _route(backend, monkeypatch)
    for n, m, d, shift, max_rows, perms, seed in MONITOR_INPUTS:
        rng = np.random.default_rng(100 + seed)
        x, y = rng.normal(size=(n, d)), rng.normal(size=(m, d)) + shift
        y[:, 0] = np.round(y[:, 0], 1)  # ties in one column
        got = M.mmd_permutation_test(x, y, permutations=perms, max_rows=max_rows, seed=seed)
        want = old_permutation_test(x, y, permutations=perms, max_rows=max_rows, seed=seed)
        assert got[1:] == want[1:], (n, m, shift)
        assert abs(got[0] - want[0]) <= 16 * (len(x) + len(y)) * EPS
    # too few rows: NaN, as before
    got = M.mmd_permutation_test(np.zeros((1, 2)), np.ones((5, 2)), permutations=5)
    assert np.isnan(got[0]) and np.isnan(got[1]) and got[2:] == (1, 5)


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_monitor_counts_a_permutation_that_keeps_the_split(backend, monkeypatch):
    """2 + 2 rows have 6 splits: a permutation drawing the observed one (or, with n = m,
    its mirror) ties with the statistic mathematically, and counts on every backend,
    whatever order each sums in."""
    _check_ties(backend, monkeypatch)


def test_monitor_counts_a_permutation_that_keeps_the_split_on_cuda(cuda_device, monkeypatch):
    _check_ties("cuda", monkeypatch)


def _check_ties(backend, monkeypatch):
    _route(backend, monkeypatch)
    x = np.array([[0.0, 0.0], [0.3, 0.1]])
    y = np.array([[2.0, 1.0], [2.2, 1.5]])
    stat, p, _, _ = M.mmd_permutation_test(x, y, permutations=300, seed=7)
    rng = np.random.default_rng(7)
    keeps = sum(set(rng.permutation(4)[:2].tolist()) in ({0, 1}, {2, 3}) for _ in range(300))
    assert keeps > 0 and p == (keeps + 1) / 301


def test_median_bandwidth_is_the_median_pairwise_distance(monkeypatch):
    z, _ = samples(10, 70, 61, 3)
    sq = np.einsum("ij,ij->i", z, z)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    want = float(np.median(np.sqrt(d2[np.triu_indices(131, 1)])))
    assert M.median_bandwidth(z) == want
    monkeypatch.setattr(M, "_BLOCK_ELEMENTS", 131 * 9)  # blocks of 9 rows
    assert M.median_bandwidth(z) == pytest.approx(want, rel=1e-14)
    assert M.median_bandwidth(np.ones((5, 2))) == 1.0 and M.median_bandwidth(z[:1]) == 1.0
    k, bw = M.rbf_kernel_matrix(z)
    assert bw == want and np.array_equal(k, R.rbf_gram(z, want))
