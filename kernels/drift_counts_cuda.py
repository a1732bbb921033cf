"""Drift statistics on count vectors, ``cuda`` backend (CuPy; host emulation in tests).

PSI, Jensen-Shannon, Hellinger, L-infinity and the chi-square / G test of homogeneity on
per-column counts packed as ``counts[offsets[c]:offsets[c + 1]]`` (binned numeric
samples or categories). Same contracts as the ``reference`` kernels (``reference.py``)
and the ``numba`` ones (``drift_counts_numba.py``); host arrays in, host arrays out.

Thread mappings
---------------
``psi``, ``jensenshannon``, ``hellinger``, ``linf``
    ``mlops_counts_sums``: one thread per column, the totals of both rows;
    ``mlops_counts_terms``: one thread per (column, category), the category's term
    (``(p - q) ln(p / q)`` with clipped proportions, the two relative entropies against
    the midpoint, ``(sqrt p - sqrt q)^2``, ``|p - q|``);
    ``mlops_counts_reduce``: one thread per column, the terms summed in NumPy's
    pairwise order (or their maximum), then the distance.
``chi2``
    ``mlops_counts_chi2``: one thread per column (categories absent from both rows are
    dropped first, which needs the column's whole table), the table compacted into a
    scratch array, Pearson's or the G statistic summed pairwise; the p-value is computed
    on the host by the chi-square survival function the numba backend uses.

Every sum is NumPy's pairwise sum (``DEVICE_HELPERS`` of ``drift_cuda.py``), so the
emulation gives the numba backend's numbers bit for bit. Columns are processed in
batches of at most :data:`drift_cuda.BATCH_ELEMENTS` categories.
"""

from __future__ import annotations

import math

import numpy as np

from . import cuda_runtime
from .drift_cuda import DEVICE_HELPERS, _distributions, _f64, _i64, batches, launch

_PSI, _JS, _HELLINGER, _LINF = 0, 1, 2, 3

SRC = cuda_runtime.CudaSource("drift_counts", DEVICE_HELPERS + r"""
// One thread per column: the pairwise sums of both rows.
extern "C" __global__ void mlops_counts_sums(const double* __restrict__ rc, const double* __restrict__ cc,
                                             const i64* __restrict__ off, i64 k,
                                             double* __restrict__ sp, double* __restrict__ sq) {
    i64 c = MLOPS_GLOBAL_ID();
    if (c >= k) return;
    i64 lo = off[c], n = off[c + 1] - lo;
    sp[c] = mlops_pairwise_sum(rc + lo, n);
    sq[c] = mlops_pairwise_sum(cc + lo, n);
}

__device__ double mlops_rel_entr(double x, double y) {
    if (x > 0 && y > 0) return x * log(x / y);
    if (x == 0 && y >= 0) return 0.0;
    return MLOPS_INF_F64;
}

// One thread per (column, category) i: the category's term(s) of the distance `mode`.
extern "C" __global__ void mlops_counts_terms(const double* __restrict__ rc, const double* __restrict__ cc,
                                              const i64* __restrict__ off, i64 k, i64 n,
                                              const double* __restrict__ sp, const double* __restrict__ sq,
                                              i32 mode, double eps,
                                              double* __restrict__ a, double* __restrict__ b) {
    i64 i = MLOPS_GLOBAL_ID();
    if (i >= n) return;
    i64 c = mlops_drift_find(off, k, i);
    double s = sp[c], t = sq[c];
    a[i] = 0.0;
    b[i] = 0.0;
    if (!(s > 0 && t > 0)) return;
    double p = rc[i] / s, q = cc[i] / t;
    if (mode == 0) {         // PSI
        p = p > eps ? p : eps;
        q = q > eps ? q : eps;
        a[i] = (p - q) * log(p / q);
    } else if (mode == 1) {  // Jensen-Shannon
        double m = (p + q) / 2.0;
        a[i] = mlops_rel_entr(p, m);
        b[i] = mlops_rel_entr(q, m);
    } else if (mode == 2) {  // Hellinger
        double d = sqrt(p) - sqrt(q);
        a[i] = d * d;
    } else {                 // L-infinity
        a[i] = fabs(p - q);
    }
}

// One thread per column: the distance from its terms; NaN where a row sums to 0.
extern "C" __global__ void mlops_counts_reduce(const i64* __restrict__ off, i64 k,
                                               const double* __restrict__ sp, const double* __restrict__ sq,
                                               const double* __restrict__ a, const double* __restrict__ b,
                                               i32 mode, double logb, double* __restrict__ out) {
    i64 c = MLOPS_GLOBAL_ID();
    if (c >= k) return;
    if (!(sp[c] > 0 && sq[c] > 0)) { out[c] = MLOPS_NAN_F64; return; }
    i64 lo = off[c], n = off[c + 1] - lo;
    if (mode == 0) {
        out[c] = mlops_pairwise_sum(a + lo, n);
    } else if (mode == 1) {
        double js = mlops_pairwise_sum(a + lo, n) + mlops_pairwise_sum(b + lo, n);
        js /= logb;
        out[c] = sqrt(js / 2.0);
    } else if (mode == 2) {
        out[c] = sqrt(mlops_pairwise_sum(a + lo, n) / 2.0);
    } else {
        double best = 0.0;
        for (i64 i = lo; i < lo + n; i++) best = a[i] > best ? a[i] : best;
        out[c] = best;
    }
}

// One thread per column: chi-square (or G) statistic of its 2 x K' table, K' the categories
// present in either row; dof = K' - 1 (-1 and NaN where a row sums to 0). obs and terms are
// scratch arrays of 2 * off[k] values (column c uses [2 off[c], 2 off[c + 1])).
extern "C" __global__ void mlops_counts_chi2(const double* __restrict__ rc, const double* __restrict__ cc,
                                             const i64* __restrict__ off, i64 k,
                                             i32 log_likelihood, i32 correction,
                                             double* __restrict__ obs, double* __restrict__ terms,
                                             double* __restrict__ stat, i64* __restrict__ dof) {
    i64 c = MLOPS_GLOBAL_ID();
    if (c >= k) return;
    i64 lo = off[c], n = off[c + 1] - lo;
    double* ob = obs + 2 * lo;
    double* tm = terms + 2 * lo;
    i64 kp = 0;
    for (i64 i = 0; i < n; i++)
        if (rc[lo + i] + cc[lo + i] > 0) kp++;
    i64 t = 0;
    for (i64 i = 0; i < n; i++) {
        if (rc[lo + i] + cc[lo + i] > 0) {
            ob[t] = rc[lo + i];
            ob[kp + t] = cc[lo + i];
            t++;
        }
    }
    double r0 = mlops_pairwise_sum(ob, kp), r1 = mlops_pairwise_sum(ob + kp, kp);
    stat[c] = MLOPS_NAN_F64;
    dof[c] = -1;
    if (!(r0 > 0 && r1 > 0)) return;
    double total = mlops_pairwise_sum(ob, 2 * kp);
    i64 df = kp - 1;
    dof[c] = df;
    if (df == 0) { stat[c] = 0.0; return; }
    for (i64 j = 0; j < kp; j++) {
        double col = ob[j] + ob[kp + j];
        for (int row = 0; row < 2; row++) {
            double e = ((row == 0 ? r0 : r1) * col) / total;
            double o = ob[row * kp + j];
            if (df == 1 && correction) {
                double diff = e - o;
                double sgn = diff > 0 ? 1.0 : (diff < 0 ? -1.0 : 0.0);
                double ad = fabs(diff);
                o = o + (0.5 < ad ? 0.5 : ad) * sgn;
            }
            double term;
            if (log_likelihood) {
                term = o != 0 ? 2.0 * (o * log(o / e)) : 0.0;
            } else {
                double d = o - e;
                term = d * d / e;
            }
            tm[row * kp + j] = term;
        }
    }
    stat[c] = mlops_pairwise_sum(tm, 2 * kp);
}
""")


def _distance(rc, cc, offsets, mode: int, eps: float = 0.0, logb: float = 1.0) -> np.ndarray:
    dev = cuda_runtime.current()
    xp = dev.xp
    rc, cc, off = _f64(rc), _f64(cc), _i64(offsets)
    k = len(off) - 1
    out = np.full(k, np.nan)
    for c0, c1 in batches(np.diff(off)):
        kb = c1 - c0
        a0, a1 = int(off[c0]), int(off[c1])
        n = a1 - a0
        o_d = dev.to_device(off[c0:c1 + 1] - a0)
        r_d, c_d = dev.to_device(rc[a0:a1]), dev.to_device(cc[a0:a1])
        sp, sq, res = (xp.empty(kb, dtype=xp.float64) for _ in range(3))
        ta, tb = xp.empty(max(n, 1), dtype=xp.float64), xp.empty(max(n, 1), dtype=xp.float64)
        launch(dev, SRC, "mlops_counts_sums", kb, r_d, c_d, o_d, kb, sp, sq)
        launch(dev, SRC, "mlops_counts_terms", n, r_d, c_d, o_d, kb, n, sp, sq, mode, eps, ta, tb)
        launch(dev, SRC, "mlops_counts_reduce", kb, o_d, kb, sp, sq, ta, tb, mode, logb, res)
        out[c0:c1] = dev.to_host(res)
    return out


def psi(rc, cc, offsets, eps):
    """Population stability index sum (p - q) ln(p / q), proportions clipped below at ``eps``."""
    return _distance(rc, cc, offsets, _PSI, eps=float(eps))


def jensenshannon(rc, cc, offsets, base):
    """scipy.spatial.distance.jensenshannon(ref_counts, cur_counts, base) per column."""
    return _distance(rc, cc, offsets, _JS, logb=math.log(base))


def hellinger(rc, cc, offsets):
    """Hellinger distance sqrt(sum (sqrt p - sqrt q)^2 / 2) of the proportions."""
    return _distance(rc, cc, offsets, _HELLINGER)


def linf(rc, cc, offsets):
    """L-infinity distance max |p - q| of the proportions (TFDV's categorical drift)."""
    return _distance(rc, cc, offsets, _LINF)


def chi2(rc, cc, offsets, log_likelihood, correction):
    """scipy.stats.chi2_contingency on each column's 2 x K table -> ``(statistic, pvalue, dof)``.

    Categories absent from both rows are dropped; Pearson's statistic, or the G statistic
    with ``log_likelihood``; Yates' correction when ``correction`` and dof == 1.
    """
    dev = cuda_runtime.current()
    xp = dev.xp
    rc, cc, off = _f64(rc), _f64(cc), _i64(offsets)
    k = len(off) - 1
    stat, dof = np.full(k, np.nan), np.full(k, -1, dtype=np.int64)
    for c0, c1 in batches(np.diff(off)):
        kb = c1 - c0
        a0, a1 = int(off[c0]), int(off[c1])
        scratch = max(2 * (a1 - a0), 1)
        s_d, d_d = xp.empty(kb, dtype=xp.float64), xp.empty(kb, dtype=xp.int64)
        launch(dev, SRC, "mlops_counts_chi2", kb, dev.to_device(rc[a0:a1]), dev.to_device(cc[a0:a1]),
               dev.to_device(off[c0:c1 + 1] - a0), kb, 1 if log_likelihood else 0,
               1 if correction else 0, xp.empty(scratch, dtype=xp.float64),
               xp.empty(scratch, dtype=xp.float64), s_d, d_d)
        stat[c0:c1], dof[c0:c1] = dev.to_host(s_d), dev.to_host(d_d)
    chi2_sf = _distributions()[2]
    pval = np.full(k, np.nan)
    pval[dof == 0] = 1.0
    for c in np.flatnonzero(dof > 0):
        pval[c] = chi2_sf(float(dof[c]), float(stat[c]))
    return stat, pval, dof


__all__ = ["SRC", "chi2", "hellinger", "jensenshannon", "linf", "psi"]
