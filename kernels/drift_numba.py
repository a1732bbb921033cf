"""Two-sample drift statistics, Numba CPU backend: one ``prange`` iteration per column.

Same contracts as the ``reference`` drift kernels (``reference.py``, section
"Drift statistics"); ``engine.kernels.drift`` validates, packs and dispatches.

Samples arrive *packed*: the non-NaN values of column ``c`` are
``values[offsets[c]:offsets[c + 1]]``, sorted ascending. Sorting is the
expensive step, so it is a kernel of its own (``sort_numba.py``, an LSD radix
sort on the order-preserving bit patterns of the floats) and the test kernels
here only walk already-sorted samples: a reference profile sorts once and is
reused for every batch. Count-based kernels take per-column counts packed the
same way.

The p-values come from ports of scipy's routines: ``ks_dist_numba.py``
(``scipy.stats.ks_2samp``, ``kstwo``) and ``distributions_numba.py``
(``cramervonmises_2samp``, the chi-square of ``chi2_contingency``).

numba's on-disk cache (``cache=True``) is invalidated by changes to the file
that defines a function, not to the files of the functions it calls: after
editing ``ks_dist_numba.py`` or ``distributions_numba.py``, clear
``kernels/__pycache__/*.nbi`` and ``*.nbc`` (or touch this file).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .distributions_numba import _chi2_sf, _cvm_from_u, _pairwise_sum
from .ks_dist_numba import _ks_2samp_pvalue

_JIT = dict(nogil=True, cache=True)
_PJIT = dict(parallel=True, nogil=True, cache=True)


# ---------------------------------------------------------------------------
# One merge of two sorted samples: KS statistic, Wasserstein-1 and CvM's U together
# ---------------------------------------------------------------------------


@numba.njit(**_JIT)
def _sq_run(a, c):
    """sum_{t=1..a} (c - 2t)^2: a tie group's share of 4U, in closed form."""
    if a == 0:
        return 0.0
    fa = float(a)
    fc = float(c)
    return fa * fc * fc - 2.0 * fc * fa * (fa + 1.0) + 4.0 * (fa * (fa + 1.0) * (2.0 * fa + 1.0) / 6.0)


@numba.njit(**_JIT)
def _merge_walk(x, y):
    """Walk two non-empty sorted samples once; returns ``(d, w1, u)``.

    * ``d``: the two-sided KS statistic exactly as scipy forms it, the largest
      ``i/n1 - j/n2`` (or ``j/n2 - i/n1``) at the end of any tie group. The
      running extremes are tracked on the exact integers ``i*n2 - j*n1``;
      the float is formed only where one is reached (distinct integers keep
      their order after rounding while ``n1*n2 < 2e15``).
    * ``w1``: ``sum |F_x - F_y| * gap`` between consecutive distinct values;
      a gap where the ECDFs agree adds nothing even if infinite.
    * ``u``: Anderson's (1962) U with mid-ranks, each tie group in closed form.

    The merge itself is branch-free (selects, clamped loads) because the
    interleaving of two random samples defeats branch prediction; it is the
    loop-carried chain that bounds the speed.
    """
    n1 = x.shape[0]
    n2 = y.shape[0]
    inv = 1.0 / (float(n1) * float(n2))
    i = 0
    j = 0
    i0 = 0
    j0 = 0
    hi_num = 0
    lo_num = 0
    hi = 0.0
    lo = 0.0
    w = 0.0
    sx = 0.0
    sy = 0.0
    xi = x[0]
    yj = y[0]
    for _ in range(n1 + n2):
        take = (i < n1) & ((j >= n2) | (xi <= yj))
        v = xi if take else yj
        i += 1 if take else 0
        j += 0 if take else 1
        xi = x[i if i < n1 else n1 - 1]
        yj = y[j if j < n2 else n2 - 1]
        nt = (i < n1) & ((j >= n2) | (xi <= yj))
        nxt = xi if nt else yj
        if (nxt != v) | ((i == n1) & (j == n2)):  # v's tie group ends here
            num = i * n2 - j * n1
            if num >= hi_num:
                f = i / n1 - j / n2
                hi = f if (num > hi_num or f > hi) else hi
                hi_num = num
            if num <= lo_num:
                f = i / n1 - j / n2
                lo = f if (num < lo_num or f < lo) else lo
                lo_num = num
            if num != 0:
                w += abs(num) * inv * (nxt - v)
            a = i - i0
            b = j - j0
            if a + b == 1:  # no tie: rank minus position is the other sample's count
                sx += float(a * (4 * j0 * j0))
                sy += float(b * (4 * i0 * i0))
            else:
                sx += _sq_run(a, 2 * j0 + a + b + 1)
                sy += _sq_run(b, 2 * i0 + a + b + 1)
            i0 = i
            j0 = j
    d = -lo if -lo > hi else hi
    return d, w, (n1 * sx + n2 * sy) / 4.0


@numba.njit(**_JIT)
def _std(x):
    """Population standard deviation of sorted ``x`` (numpy.std, ddof=0), two-pass.

    Values are divided by the largest magnitude first when their squares would
    overflow or underflow (numpy.std returns inf there). Blocked sums with
    eight accumulators keep the rounding error near NumPy's pairwise sum.
    """
    n = x.shape[0]
    scale = max(abs(x[0]), abs(x[n - 1]))
    if scale == 0.0 or not np.isfinite(scale) or 1e-150 < scale < 1e150:
        scale = 1.0  # squares stay in range (or the column is 0 or holds inf): no rescaling
    acc = np.zeros(8)
    for i in range(n):
        acc[i & 7] += x[i] / scale
    mean = acc.sum() / n
    acc[:] = 0.0
    for i in range(n):
        d = x[i] / scale - mean
        acc[i & 7] += d * d
    return math.sqrt(acc.sum() / n) * scale


@numba.njit(**_PJIT)
def _numeric_drift(rv, ro, cv, co, want_ks, want_w, want_cvm):
    k = ro.shape[0] - 1
    ks_stat = np.full(k, np.nan)
    ks_p = np.full(k, np.nan)
    w1 = np.full(k, np.nan)
    sd = np.full(k, np.nan)
    cvm_stat = np.full(k, np.nan)
    cvm_p = np.full(k, np.nan)
    for c in numba.prange(k):
        x = rv[ro[c]:ro[c + 1]]
        y = cv[co[c]:co[c + 1]]
        n1 = x.shape[0]
        n2 = y.shape[0]
        if want_w and n1 > 0:
            sd[c] = _std(x)
        if n1 == 0 or n2 == 0:
            continue
        d, w, u = _merge_walk(x, y)
        if want_ks:
            ks_stat[c], ks_p[c] = _ks_2samp_pvalue(d, n1, n2)
        if want_w:
            w1[c] = w
        if want_cvm and n1 >= 2 and n2 >= 2:
            cvm_stat[c], cvm_p[c] = _cvm_from_u(u, n1, n2)
    return ks_stat, ks_p, w1, sd, cvm_stat, cvm_p


# The single-test kernels share one compiled parallel kernel: each parallel
# kernel costs seconds of LLVM time on a cold cache, and the merge is the
# same for all three.


def numeric_drift(rv, ro, cv, co):
    """KS, Wasserstein-1 and Cramer-von Mises per column from one merge each.

    Returns ``(ks_stat, ks_p, w1, ref_std, cvm_stat, cvm_p)``; NaN where a
    sample is empty (CvM: has fewer than 2 values).
    """
    return _numeric_drift(rv, ro, cv, co, True, True, True)


def ks_2samp(rv, ro, cv, co):
    """Two-sided two-sample KS per column of packed sorted samples -> ``(statistic, pvalue)``."""
    out = _numeric_drift(rv, ro, cv, co, True, False, False)
    return out[0], out[1]


def wasserstein(rv, ro, cv, co):
    """W1 per column and the reference's population std -> ``(w1, ref_std)``."""
    out = _numeric_drift(rv, ro, cv, co, False, True, False)
    return out[2], out[3]


def cvm_2samp(rv, ro, cv, co):
    """Two-sample Cramer-von Mises per column -> ``(statistic, pvalue)``; NaN below 2 values."""
    out = _numeric_drift(rv, ro, cv, co, False, False, True)
    return out[4], out[5]


# ---------------------------------------------------------------------------
# Quantile bins of the reference, counts of both samples
# ---------------------------------------------------------------------------


@numba.njit(**_JIT)
def _search_left(a, v):
    lo = 0
    hi = a.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(**_JIT)
def _search_right(a, v):
    lo = 0
    hi = a.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(**_JIT)
def _bin_counts(x, edges, out):
    """out[0] = #(x < e0); out[b] = #(e_{b-1} <= x < e_b); last inner bin closed; out[-1] = #(x > e_B)."""
    nb = edges.shape[0] - 1
    prev = _search_left(x, edges[0])
    out[0] = prev
    for b in range(1, nb):
        cur = _search_left(x, edges[b])
        out[b] = cur - prev
        prev = cur
    top = _search_right(x, edges[nb])
    out[nb] = top - prev
    out[nb + 1] = x.shape[0] - top


@numba.njit(**_PJIT)
def quantile_bins(rv, ro, cv, co, q):
    """Edges = numpy.quantile(finite reference, q) (linear); counts of both samples per bin.

    Returns ``(edges (k, B+1), ref_counts (k, B+2), cur_counts (k, B+2))`` with
    ``B = len(q) - 1``; bin 0 is the underflow, bin B+1 the overflow. A column
    whose reference has no finite value gets NaN edges and zero counts.
    """
    k = ro.shape[0] - 1
    ne = q.shape[0]
    edges = np.full((k, ne), np.nan)
    rc = np.zeros((k, ne + 1))
    cc = np.zeros((k, ne + 1))
    for c in numba.prange(k):
        x = rv[ro[c]:ro[c + 1]]
        y = cv[co[c]:co[c + 1]]
        lo = 0
        hi = x.shape[0]
        while lo < hi and x[lo] == -np.inf:
            lo += 1
        while hi > lo and x[hi - 1] == np.inf:
            hi -= 1
        nf = hi - lo
        if nf == 0:
            continue
        xf = x[lo:hi]
        e = edges[c]
        for b in range(ne):
            vi = (nf - 1) * q[b]
            if vi >= nf - 1:
                e[b] = xf[nf - 1]
                continue
            if vi < 0:
                e[b] = xf[0]
                continue
            prev = math.floor(vi)
            gamma = vi - prev
            ip = int(prev)
            a0 = xf[ip]
            b0 = xf[ip + 1]
            diff = b0 - a0
            if gamma >= 0.5:
                e[b] = b0 - diff * (1 - gamma)
            else:
                e[b] = a0 + diff * gamma
        tmp = np.empty(ne + 1, dtype=np.int64)
        _bin_counts(x, e, tmp)
        for b in range(ne + 1):
            rc[c, b] = tmp[b]
        _bin_counts(y, e, tmp)
        for b in range(ne + 1):
            cc[c, b] = tmp[b]
    return edges, rc, cc


# ---------------------------------------------------------------------------
# Distances between count vectors (binned numeric or categorical)
# ---------------------------------------------------------------------------


@numba.njit(**_PJIT)
def psi(rc, cc, offsets, eps):
    """Population stability index: sum (p - q) ln(p / q), proportions clipped below at ``eps``."""
    k = offsets.shape[0] - 1
    out = np.full(k, np.nan)
    for c in numba.prange(k):
        lo = offsets[c]
        n = offsets[c + 1] - lo
        sp = _pairwise_sum(rc, lo, n)
        sq = _pairwise_sum(cc, lo, n)
        if not (sp > 0 and sq > 0):
            continue
        terms = np.empty(n)
        for i in range(n):
            p = max(rc[lo + i] / sp, eps)
            q = max(cc[lo + i] / sq, eps)
            terms[i] = (p - q) * math.log(p / q)
        out[c] = _pairwise_sum(terms, 0, n)
    return out


@numba.njit(**_JIT)
def _rel_entr(x, y):
    if x > 0 and y > 0:
        return x * math.log(x / y)
    if x == 0 and y >= 0:
        return 0.0
    return np.inf


@numba.njit(**_PJIT)
def jensenshannon(rc, cc, offsets, base):
    """scipy.spatial.distance.jensenshannon(ref_counts, cur_counts, base) per column."""
    k = offsets.shape[0] - 1
    out = np.full(k, np.nan)
    logb = math.log(base)
    for c in numba.prange(k):
        lo = offsets[c]
        n = offsets[c + 1] - lo
        sp = _pairwise_sum(rc, lo, n)
        sq = _pairwise_sum(cc, lo, n)
        if not (sp > 0 and sq > 0):
            continue
        left = np.empty(n)
        right = np.empty(n)
        for i in range(n):
            p = rc[lo + i] / sp
            q = cc[lo + i] / sq
            m = (p + q) / 2.0
            left[i] = _rel_entr(p, m)
            right[i] = _rel_entr(q, m)
        js = _pairwise_sum(left, 0, n) + _pairwise_sum(right, 0, n)
        js /= logb
        out[c] = math.sqrt(js / 2.0)
    return out


@numba.njit(**_PJIT)
def hellinger(rc, cc, offsets):
    """Hellinger distance sqrt(sum (sqrt p - sqrt q)^2 / 2) of the proportions."""
    k = offsets.shape[0] - 1
    out = np.full(k, np.nan)
    for c in numba.prange(k):
        lo = offsets[c]
        n = offsets[c + 1] - lo
        sp = _pairwise_sum(rc, lo, n)
        sq = _pairwise_sum(cc, lo, n)
        if not (sp > 0 and sq > 0):
            continue
        terms = np.empty(n)
        for i in range(n):
            d = math.sqrt(rc[lo + i] / sp) - math.sqrt(cc[lo + i] / sq)
            terms[i] = d * d
        out[c] = math.sqrt(_pairwise_sum(terms, 0, n) / 2.0)
    return out


@numba.njit(**_PJIT)
def linf(rc, cc, offsets):
    """L-infinity distance max |p - q| of the proportions (TFDV's categorical drift)."""
    k = offsets.shape[0] - 1
    out = np.full(k, np.nan)
    for c in numba.prange(k):
        lo = offsets[c]
        n = offsets[c + 1] - lo
        sp = _pairwise_sum(rc, lo, n)
        sq = _pairwise_sum(cc, lo, n)
        if not (sp > 0 and sq > 0):
            continue
        best = 0.0
        for i in range(n):
            d = abs(rc[lo + i] / sp - cc[lo + i] / sq)
            if d > best:
                best = d
        out[c] = best
    return out


# ---------------------------------------------------------------------------
# Chi-square / G-test on the 2 x K table
# ---------------------------------------------------------------------------


@numba.njit(**_PJIT)
def chi2_contingency(rc, cc, offsets, log_likelihood, correction):
    """scipy.stats.chi2_contingency on each column's 2 x K table -> ``(statistic, pvalue, dof)``.

    Categories absent from both rows are dropped (scipy would reject their
    zero expected frequency). Pearson's statistic, or the G statistic with
    ``log_likelihood``; Yates' correction when ``correction`` and dof == 1.
    """
    k = offsets.shape[0] - 1
    stat = np.full(k, np.nan)
    pval = np.full(k, np.nan)
    dof = np.full(k, -1, dtype=np.int64)
    for c in numba.prange(k):
        lo = offsets[c]
        n = offsets[c + 1] - lo
        kp = 0
        for i in range(n):
            if rc[lo + i] + cc[lo + i] > 0:
                kp += 1
        obs = np.empty(2 * kp)
        t = 0
        for i in range(n):
            if rc[lo + i] + cc[lo + i] > 0:
                obs[t] = rc[lo + i]
                obs[kp + t] = cc[lo + i]
                t += 1
        r0 = _pairwise_sum(obs, 0, kp)
        r1 = _pairwise_sum(obs, kp, kp)
        if not (r0 > 0 and r1 > 0):
            continue
        total = _pairwise_sum(obs, 0, 2 * kp)
        df = kp - 1
        dof[c] = df
        if df == 0:
            stat[c] = 0.0
            pval[c] = 1.0
            continue
        terms = np.empty(2 * kp)
        for t in range(kp):
            col = obs[t] + obs[kp + t]
            for row in range(2):
                e = ((r0 if row == 0 else r1) * col) / total
                o = obs[row * kp + t]
                if df == 1 and correction:
                    diff = e - o
                    sgn = 1.0 if diff > 0 else (-1.0 if diff < 0 else 0.0)
                    o = o + min(0.5, abs(diff)) * sgn
                if log_likelihood:
                    terms[row * kp + t] = 2.0 * (o * math.log(o / e)) if o != 0 else 0.0
                else:
                    d = o - e
                    terms[row * kp + t] = d * d / e
        s = _pairwise_sum(terms, 0, 2 * kp)
        stat[c] = s
        pval[c] = _chi2_sf(float(df), s)
    return stat, pval, dof
