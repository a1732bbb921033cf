"""Two-sample drift statistics on samples, Numba CPU backend: one ``prange`` iteration per column.

Same contracts as the ``reference`` drift kernels (``reference.py``, section
"Drift statistics"); ``engine.kernels.drift`` validates, packs and dispatches.

Samples arrive *packed*: the non-NaN values of column ``c`` are
``values[offsets[c]:offsets[c + 1]]``, sorted ascending. Sorting is the
expensive step, so it is a kernel of its own (``sort_numba.py``, an LSD radix
sort on the order-preserving bit patterns of the floats) and the test kernels
here only walk already-sorted samples: a reference profile sorts once and is
reused for every batch. The kernels on per-column counts (PSI, Jensen-Shannon,
Hellinger, L-infinity, chi-square) are in ``drift_counts_numba.py``.

The p-values come from ports of scipy's routines: ``ks_dist_numba.py``
(``scipy.stats.ks_2samp``, ``kstwo``) and ``distributions_numba.py``
(``cramervonmises_2samp``).

numba's on-disk cache (``cache=True``) is invalidated by changes to the file
that defines a function, not to the files of the functions it calls: after
editing ``ks_dist_numba.py`` or ``distributions_numba.py``, clear
``kernels/__pycache__/*.nbi`` and ``*.nbc`` (or touch this file).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._registry import renamed_module_attrs
from .distributions_numba import _cvm_from_u
from .ks_dist_numba import _ks_2samp_pvalue

_JIT = dict(nogil=True, cache=True)
_PJIT = dict(parallel=True, nogil=True, cache=True)

# Names before kernel ids and function names became one (deprecated, one release).
__getattr__ = renamed_module_attrs(__name__, {"std_columns": "std", "quantile_bins": "histogram"})


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


@numba.njit(inline="always", **_JIT)
def _end_group(i, j, i0, j0, n1, n2, inv, gap, hi, hi_num, lo, lo_num, w, sx, sy):
    """Fold the tie group that ends at merge position (i, j) into the KS extremes, the
    W1 sum and the CvM rank sums (one place for both loops of ``_merge_walk``)."""
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
        w += abs(num) * inv * gap
    a = i - i0
    b = j - j0
    if a + b == 1:  # no tie: rank minus position is the other sample's count
        sx += float(a * (4 * j0 * j0))
        sy += float(b * (4 * i0 * i0))
    else:
        sx += _sq_run(a, 2 * j0 + a + b + 1)
        sy += _sq_run(b, 2 * i0 + a + b + 1)
    return hi, hi_num, lo, lo_num, w, sx, sy


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

    The merge itself is branch-free (selects) because the interleaving of two
    random samples defeats branch prediction; it is the loop-carried chain
    (index, load, compare, index) that bounds the speed. So the main loop runs
    while both samples have values left, with no clamping of the loads in that
    chain, and a second loop (clamped loads) finishes the sample that is left.
    Both fold the tie groups in the same order, with the same arithmetic.
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
    take = xi <= yj
    v = xi if take else yj  # the value just taken
    while True:
        ti = 1 if take else 0
        i += ti
        j += 1 - ti
        if i == n1 or j == n2:
            break
        xi = x[i]
        yj = y[j]
        take = xi <= yj
        nxt = xi if take else yj
        if nxt != v:  # v's tie group ends here
            hi, hi_num, lo, lo_num, w, sx, sy = _end_group(
                i, j, i0, j0, n1, n2, inv, nxt - v, hi, hi_num, lo, lo_num, w, sx, sy)
            i0 = i
            j0 = j
        v = nxt
    # One sample is used up: the rest of the other, then the last group's end at (n1, n2).
    for _ in range(n1 + n2 - i - j + 1):
        xi = x[i if i < n1 else n1 - 1]
        yj = y[j if j < n2 else n2 - 1]
        nt = (i < n1) & ((j >= n2) | (xi <= yj))
        nxt = xi if nt else yj
        if (nxt != v) | ((i == n1) & (j == n2)):
            hi, hi_num, lo, lo_num, w, sx, sy = _end_group(
                i, j, i0, j0, n1, n2, inv, nxt - v, hi, hi_num, lo, lo_num, w, sx, sy)
            i0 = i
            j0 = j
        if (i == n1) & (j == n2):
            break
        i += 1 if nt else 0
        j += 0 if nt else 1
        v = nxt
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
def std(values, offsets):
    """Population std (``_std``) of every packed sorted column; NaN where a column is empty."""
    k = offsets.shape[0] - 1
    out = np.full(k, np.nan)
    for c in numba.prange(k):
        if offsets[c + 1] > offsets[c]:
            out[c] = _std(values[offsets[c]:offsets[c + 1]])
    return out


@numba.njit(**_PJIT)
def _numeric_drift(rv, ro, cv, co, want_ks, want_w, want_cvm, sd_in):
    """``sd_in``: the reference's std per column when already known, else an empty array."""
    k = ro.shape[0] - 1
    ks_stat = np.full(k, np.nan)
    ks_p = np.full(k, np.nan)
    w1 = np.full(k, np.nan)
    sd = np.full(k, np.nan)
    cvm_stat = np.full(k, np.nan)
    cvm_p = np.full(k, np.nan)
    known = sd_in.shape[0] == k
    for c in numba.prange(k):
        x = rv[ro[c]:ro[c + 1]]
        y = cv[co[c]:co[c + 1]]
        n1 = x.shape[0]
        n2 = y.shape[0]
        if want_w and n1 > 0:
            sd[c] = sd_in[c] if known else _std(x)
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


_NO_SD = np.zeros(0)


def numeric_drift(rv, ro, cv, co, ref_std=None):
    """KS, Wasserstein-1 and Cramer-von Mises per column from one merge each.

    Returns ``(ks_stat, ks_p, w1, ref_std, cvm_stat, cvm_p)``; NaN where a
    sample is empty (CvM: has fewer than 2 values). ``ref_std``, the
    reference's std per column from an earlier call, skips computing it again.
    """
    sd_in = _NO_SD if ref_std is None else np.ascontiguousarray(ref_std, dtype=np.float64)
    return _numeric_drift(rv, ro, cv, co, True, True, True, sd_in)


def ks_2samp(rv, ro, cv, co):
    """Two-sided two-sample KS per column of packed sorted samples -> ``(statistic, pvalue)``."""
    out = _numeric_drift(rv, ro, cv, co, True, False, False, _NO_SD)
    return out[0], out[1]


def wasserstein(rv, ro, cv, co):
    """W1 per column and the reference's population std -> ``(w1, ref_std)``."""
    out = _numeric_drift(rv, ro, cv, co, False, True, False, _NO_SD)
    return out[2], out[3]


def cvm_2samp(rv, ro, cv, co):
    """Two-sample Cramer-von Mises per column -> ``(statistic, pvalue)``; NaN below 2 values."""
    out = _numeric_drift(rv, ro, cv, co, False, False, True, _NO_SD)
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


@numba.njit(**_JIT)  # binary searches only: less work than waking the threads
def bin_sorted(values, offsets, edges):
    """Counts of each sorted column in the bins of its row of ``edges`` (k, B+1) -> (k, B+2).

    The bins of :func:`histogram`: underflow, ``[e_{b-1}, e_b)`` with the
    last one closed, overflow. A row whose first edge is not finite (a
    reference without finite values) gets zero counts.
    """
    k = offsets.shape[0] - 1
    out = np.zeros((k, edges.shape[1] + 1), dtype=np.int64)
    for c in range(k):
        e = edges[c]
        if np.isfinite(e[0]):
            _bin_counts(values[offsets[c]:offsets[c + 1]], e, out[c])
    return out


@numba.njit(**_PJIT)
def histogram(rv, ro, cv, co, q):
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
