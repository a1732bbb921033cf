"""MMD² of a split and of its permutations, Numba CPU backend of kernel ``mmd2_permutations``
(contract and reference: :mod:`engine.kernels.reference_mmd`).

Instead of one ``O(N²)`` pass over a permuted kernel matrix per permutation, a
permutation enters only through the 0/1 indicator ``c`` of the rows it puts on the
smaller side, and its MMD² follows from ``cᵀKc``, ``c·r`` and ``c·diag K``
(``reference_mmd.mmd2_from_sums``). All of them come from one matrix product ``K C``
per batch of indicators (``C``, ``N × B``), which NumPy's BLAS runs on every core:

1. ``G = z zᵀ`` (BLAS), then ``K`` in place from ``G`` (``_rbf_in_place``, ``prange`` over
   pairs of rows ``i`` and ``N - 1 - i``, so the triangle is shared evenly; each entry of
   the upper triangle is computed once and mirrored, so ``K`` is exactly symmetric and
   its diagonal is 1), its row sums ``r`` and diagonal (``_row_sums``, ``prange`` over rows);
2. per batch of at most :data:`BATCH_BYTES` of indicators: ``C`` (``_indicators``,
   ``prange`` over columns; column 0 of the first batch is the given split, the others
   the permutations), ``KC`` (BLAS), and per column the sums of ``KC``, ``r`` and
   ``diag K`` over its rows (``_column_sums``, ``prange`` over columns, each sum in row
   order, so the result does not depend on the number of threads).

Memory: ``K`` (``8 N²`` bytes) and two ``N × B`` matrices.
"""

from __future__ import annotations

import numba
import numpy as np

from .reference_mmd import check_mmd_args, mmd2_from_sums, split_batches

_PJIT = dict(parallel=True, nogil=True, cache=True)

#: Bytes of one ``N × B`` matrix of indicators (and of its product with ``K``) per batch.
BATCH_BYTES = 256 << 20


@numba.njit(nogil=True, cache=True, inline="always")
def _rbf_row(g, sq, i, denom):
    big = g.shape[0]
    for j in range(i, big):
        d2 = sq[i] + sq[j] - 2.0 * g[i, j]
        if d2 < 0.0:
            d2 = 0.0
        v = np.exp(-d2 / denom)
        g[i, j] = v
        g[j, i] = v


@numba.njit(**_PJIT)
def _rbf_in_place(g, denom):
    """``g`` (the Gram matrix ``z zᵀ``) becomes ``exp(-max(g_ii + g_jj - 2 g_ij, 0) / denom)``."""
    big = g.shape[0]
    sq = np.empty(big, dtype=np.float64)
    for i in range(big):
        sq[i] = g[i, i]
    half = (big + 1) // 2
    for t in numba.prange(half):
        _rbf_row(g, sq, np.int64(t), denom)
        u = np.int64(big - 1) - np.int64(t)
        if u != t:
            _rbf_row(g, sq, u, denom)


@numba.njit(**_PJIT)
def _row_sums(k, r, diag):
    for i in numba.prange(k.shape[0]):
        s = 0.0
        for j in range(k.shape[1]):
            s += k[i, j]
        r[i] = s
        diag[i] = k[i, i]


@numba.njit(**_PJIT)
def _indicators(perms, v0, off, s, c):
    """Column ``j`` of ``c`` (zeroed) marks rows ``off .. off + s`` of split ``v0 + j``: the
    identity for split 0, ``perms[v - 1]`` for split ``v``."""
    for j in numba.prange(c.shape[1]):
        v = v0 + j
        for i in range(s):
            row = off + i if v == 0 else perms[v - 1, off + i]
            c[row, j] = 1.0


@numba.njit(**_PJIT)
def _column_sums(perms, v0, off, s, kc, r, diag, qc, cr, cd):
    for j in numba.prange(kc.shape[1]):
        v = v0 + j
        a = 0.0
        b = 0.0
        d = 0.0
        for i in range(s):
            row = off + i if v == 0 else perms[v - 1, off + i]
            a += kc[row, j]
            b += r[row]
            d += diag[row]
        qc[v0 + j] = a
        cr[v0 + j] = b
        cd[v0 + j] = d


def mmd2_permutations(z, n, perms, bandwidth):
    """``(stat, perm_stats)``, as ``reference_mmd.mmd2_permutations`` (see the module docstring)."""
    z, n, perms, bandwidth = check_mmd_args(z, n, perms, bandwidth)
    big = z.shape[0]
    m = big - n
    k = z @ z.T
    _rbf_in_place(k, 2.0 * bandwidth * bandwidth)
    r = np.empty(big, dtype=np.float64)
    diag = np.empty(big, dtype=np.float64)
    _row_sums(k, r, diag)
    x_side, off, s, batches = split_batches(n, m, len(perms), BATCH_BYTES)
    qc, cr, cd = (np.empty(len(perms) + 1, dtype=np.float64) for _ in range(3))
    for v0, cols in batches:
        c = np.zeros((big, cols), dtype=np.float64)
        _indicators(perms, v0, off, s, c)
        kc = k @ c
        _column_sums(perms, v0, off, s, kc, r, diag, qc, cr, cd)
    out = mmd2_from_sums(qc, cr, cd, float(r.sum()), float(diag.sum()), n, m, x_side)
    return float(out[0]), out[1:].copy()
