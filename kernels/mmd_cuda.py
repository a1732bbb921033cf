"""MMD² of a split and of its permutations, ``cuda`` backend of kernel ``mmd2_permutations``
(CuPy; host emulation in tests). Contract and reference: :mod:`engine.kernels.reference_mmd`.

The formulation is the numba backend's (``mmd_numba.py``): a permutation enters only
through the 0/1 indicator ``c`` of the rows it puts on the smaller side, and its MMD²
follows from ``cᵀKc``, ``c·r`` and ``c·diag K`` (``reference_mmd.mmd2_from_sums``, run
on the host over the ``P + 1`` triples copied back). On the device:

1. ``G = z zᵀ`` (``xp.matmul``, cuBLAS), then ``mlops_rbf_gram``: one thread per entry
   ``(i, j)`` of ``G`` (grid-strided); a thread of the upper triangle (``j >= i``)
   computes ``exp(-max(|z_i|² + |z_j|² - 2 G_ij, 0) / (2 bw²))`` (``|z_i|²`` read from
   a copy of ``G``'s diagonal) and writes it to ``(i, j)`` and ``(j, i)``, so ``K`` is
   exactly symmetric and no thread reads what another writes; the others return.
   ``r = K 1`` and ``diag K`` by ``xp.sum`` and ``xp.diagonal``.
2. Per batch of split columns (at most :data:`BATCH_BYTES` per ``N × B`` matrix; column
   0 of the first batch is the given split, the others the permutations, of which only
   the batch's rows are copied to the device): ``mlops_mmd_indicators``, one thread per
   (column, row of the smaller side), writes the 1s of ``C`` (zeroed by ``xp.zeros``;
   rows of one permutation are distinct, so no two threads write one entry); ``K C`` by
   ``xp.matmul`` (one GEMM, cuBLAS); ``cᵀKc`` of every column as ``xp.sum(C * KC,
   axis=0)`` and ``c·r``, ``c·diag K`` as one more product ``[r, diag]ᵀ C``.

Device memory: ``K`` (``8 N²`` bytes, 3.2 GB at ``N = 20 000``) and three ``N × B``
matrices of doubles.
"""

from __future__ import annotations

import numpy as np

from . import cuda_runtime
from .reference_mmd import check_mmd_args, mmd2_from_sums, split_batches

SRC = cuda_runtime.CudaSource("mmd", r"""
extern "C" __global__ void mlops_rbf_gram(double* __restrict__ g, const double* __restrict__ sq,
                                          i64 n, double denom) {
    i64 total = n * n;
    for (i64 t = MLOPS_GLOBAL_ID(); t < total; t += MLOPS_GLOBAL_STRIDE()) {
        i64 i = t / n, j = t - i * n;
        if (j < i) continue;  // the lower triangle is written by the thread of (j, i)
        double d2 = sq[i] + sq[j] - 2.0 * g[t];
        if (d2 < 0.0) d2 = 0.0;
        double v = exp(-d2 / denom);
        g[t] = v;
        g[j * n + i] = v;
    }
}

extern "C" __global__ void mlops_mmd_indicators(const i64* __restrict__ perms, i64 pbase, i64 n,
                                                i64 off, i64 s, i64 v0, i64 cols,
                                                double* __restrict__ c) {
    // column j of c marks rows off .. off + s of split v0 + j: the identity for split 0,
    // permutation v - 1 (row v - 1 - pbase of this batch's perms) for split v
    i64 total = cols * s;
    for (i64 t = MLOPS_GLOBAL_ID(); t < total; t += MLOPS_GLOBAL_STRIDE()) {
        i64 j = t / s, i = t - j * s;
        i64 v = v0 + j;
        i64 row = v == 0 ? off + i : perms[(v - 1 - pbase) * n + off + i];
        c[row * cols + j] = 1.0;
    }
}
""")

_BLOCK = 256
_MAX_GRID = 1 << 20

#: Bytes of one ``N × B`` matrix of doubles per batch of splits (three are live at once).
BATCH_BYTES = 512 << 20


def _launch(dev, kernel, items, *args):
    grid = cuda_runtime.launch_grid(items, _BLOCK, _MAX_GRID)
    dev.launch(SRC, kernel, grid, _BLOCK, args)


def mmd2_permutations(z, n, perms, bandwidth):
    """``(stat, perm_stats)``, as ``reference_mmd.mmd2_permutations`` (see the module docstring)."""
    z, n, perms, bandwidth = check_mmd_args(z, n, perms, bandwidth)
    dev = cuda_runtime.current()
    xp = dev.xp
    big = z.shape[0]
    m = big - n
    dz = dev.to_device(z)
    k = xp.ascontiguousarray(xp.matmul(dz, dz.T), dtype=xp.float64)
    sq = xp.ascontiguousarray(xp.diagonal(k), dtype=xp.float64)
    _launch(dev, "mlops_rbf_gram", big * big, k, sq, big, 2.0 * bandwidth * bandwidth)
    r = xp.sum(k, axis=1)
    diag = xp.ascontiguousarray(xp.diagonal(k))
    rd = xp.ascontiguousarray(xp.stack([r, diag]))  # (2, N)
    r_h, diag_h = dev.to_host(rd)
    x_side, off, s, batches = split_batches(n, m, len(perms), BATCH_BYTES)
    qc, cr, cd = (np.empty(len(perms) + 1, dtype=np.float64) for _ in range(3))
    for v0, cols in batches:
        pbase = max(v0 - 1, 0)
        rows = perms[pbase:v0 + cols - 1]
        dp = dev.to_device(rows if len(rows) else np.zeros((1, big), np.int64))
        c = xp.zeros((big, cols), dtype=xp.float64)
        _launch(dev, "mlops_mmd_indicators", cols * s, dp, pbase, big, off, s, v0, cols, c)
        kc = xp.matmul(k, c)
        q = xp.sum(c * kc, axis=0)
        sums = xp.matmul(rd, c)  # (2, cols): c·r, c·diag
        qc[v0:v0 + cols] = dev.to_host(q)
        cr[v0:v0 + cols], cd[v0:v0 + cols] = dev.to_host(xp.ascontiguousarray(sums))
        del c, kc, q, sums, dp
    out = mmd2_from_sums(qc, cr, cd, float(r_h.sum()), float(diag_h.sum()), n, m, x_side)
    return float(out[0]), out[1:].copy()
