"""Drift statistics on count vectors, Numba CPU backend: one ``prange`` iteration per column.

PSI, Jensen-Shannon, Hellinger, L-infinity and the chi-square / G test of
homogeneity on per-column counts packed as ``counts[offsets[c]:offsets[c + 1]]``
(binned numeric samples or categories). Same contracts as the ``reference``
kernels (``reference.py``); ``engine.kernels.drift`` validates, packs and
dispatches. The chi-square p-value comes from ``distributions_numba.py``
(after editing it, clear ``kernels/__pycache__/*.nbi`` and ``*.nbc``, or
touch this file: numba's cache does not see changes of callees).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._registry import renamed_module_attrs
from .distributions_numba import _chi2_sf, _pairwise_sum

_JIT = dict(nogil=True, cache=True)
_PJIT = dict(parallel=True, nogil=True, cache=True)

# The name before kernel ids and function names became one (deprecated, one release).
__getattr__ = renamed_module_attrs(__name__, {"chi2_contingency": "chi2"})


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
def chi2(rc, cc, offsets, log_likelihood, correction):
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
