"""Plain NumPy reference of the MMD permutation kernel (the ground truth for ``mmd_numba`` and
``mmd_cuda``), and the host arithmetic the fast backends share.

Kernel ``mmd2_permutations(z, n, perms, bandwidth)``
    ``z`` (float64, ``(N, d)``) is the pooled sample, its first ``n`` rows the sample
    ``x``, the other ``m = N - n`` rows ``y`` (``n >= 2``, ``m >= 2``); ``perms``
    (int64, ``(P, N)``) holds ``P`` permutations of ``range(N)`` (drawn by the caller, so
    that every backend sees the same ones); ``bandwidth`` (``> 0``) is the RBF kernel's.
    Returns ``(stat, perm_stats)``: the unbiased MMD² (Gretton et al., JMLR 13, 2012) of
    ``x`` against ``y``, and, for each permutation ``p``, that of the first ``n`` rows of
    ``z[p]`` against the rest (float64, ``(P,)``).

The kernel matrix is ``K[i, j] = exp(-max(|z_i|² + |z_j|² - 2 z_i·z_j, 0) / (2 bw²))``.
The reference computes each MMD² directly from the permuted matrix
``K[np.ix_(p, p)]`` (:func:`mmd2_unbiased`), as ``engine.monitor.mmd`` did before this
kernel: ``O(P N²)`` with fancy indexing. The fast backends use that a permutation only
matters through the 0/1 indicator of the rows it puts on one side; see
:func:`mmd2_from_sums`.
"""

from __future__ import annotations

import numpy as np


def check_mmd_args(z, n, perms, bandwidth) -> tuple[np.ndarray, int, np.ndarray, float]:
    """Validated ``(z, n, perms, bandwidth)`` of ``mmd2_permutations`` (every backend calls it).

    ``z`` becomes a C-contiguous float64 ``(N, d)`` array, ``perms`` a C-contiguous int64
    ``(P, N)`` array whose values lie in ``[0, N)`` (that each row is a permutation is
    the caller's promise: the fast backends read a row as the set of its first ``n``
    entries). Raises ValueError otherwise.
    """
    z = np.ascontiguousarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"z must be 2-D (rows, features), got shape {z.shape}")
    big = z.shape[0]
    n = int(n)
    if n < 2 or big - n < 2:
        raise ValueError(f"both samples need at least 2 rows: n={n} of {big} rows")
    perms = np.asarray(perms)
    if perms.ndim != 2 or perms.shape[1] != big or perms.dtype.kind not in "iu":
        raise ValueError(f"perms must be an integer array of shape (P, {big}), got "
                         f"{perms.dtype}{perms.shape}")
    perms = np.ascontiguousarray(perms, dtype=np.int64)
    if perms.size and (int(perms.min()) < 0 or int(perms.max()) >= big):
        raise ValueError(f"perms must hold row indices in [0, {big})")
    bandwidth = float(bandwidth)
    if not (np.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth must be a finite number > 0, got {bandwidth}")
    return z, n, perms, bandwidth


def rbf_gram(z: np.ndarray, bandwidth: float) -> np.ndarray:
    """The RBF kernel matrix of the rows of ``z`` (see the module docstring)."""
    sq = np.einsum("ij,ij->i", z, z)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    return np.exp(-d2 / (2.0 * bandwidth * bandwidth))


def mmd2_unbiased(k: np.ndarray, n: int) -> float:
    """Unbiased MMD² of the first ``n`` rows against the rest of a pooled kernel matrix."""
    m = k.shape[0] - n
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    sxx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def mmd2_permutations(z: np.ndarray, n: int, perms: np.ndarray,
                      bandwidth: float) -> tuple[float, np.ndarray]:
    """``(stat, perm_stats)``: unbiased MMD² of the split and of each permutation (see the
    module docstring).

    Examples
    --------
    >>> z = np.array([[0.0], [0.1], [3.0], [3.1]])
    >>> stat, perm = mmd2_permutations(z, 2, np.array([[0, 1, 2, 3], [0, 2, 1, 3]]), 1.0)
    >>> round(stat, 6) == round(float(perm[0]), 6), bool(perm[1] < stat)
    (True, True)
    """
    z, n, perms, bandwidth = check_mmd_args(z, n, perms, bandwidth)
    k = rbf_gram(z, bandwidth)
    stat = mmd2_unbiased(k, n)
    out = np.empty(len(perms), dtype=np.float64)
    for i, p in enumerate(perms):
        out[i] = mmd2_unbiased(k[np.ix_(p, p)], n)
    return stat, out


def mmd2_from_sums(qc, cr, cd, total: float, trace: float, n: int, m: int,
                   x_side: bool) -> np.ndarray:
    """Unbiased MMD² of splits from sums over the kernel matrix ``K``, one per split.

    A split is the 0/1 indicator ``c`` of the rows on one side, of ``s`` rows (``s = n``
    with ``x_side``, else ``s = m``, ``c`` marking ``y``). With ``r = K 1``,
    ``total = 1ᵀK1`` and ``trace = tr K``, the inputs are ``qc = cᵀKc``, ``cr = c·r``
    and ``cd = c·diag K``; then the sums of ``K`` over the side's pairs, the other
    side's pairs and the cross pairs are ``qc``, ``total - 2 cr + qc`` and
    ``cr - qc``, and the diagonal terms ``cd`` and ``trace - cd`` are removed from the
    first two. The fast backends compute ``qc`` of all splits by one matrix product,
    ``K C`` (``C`` the ``N × P`` indicators), for the smaller side, so that the
    difference ``total - 2 cr + qc`` is taken for the larger side, whose sum it is of
    the same magnitude as ``total``.
    """
    qc, cr, cd = (np.asarray(a, dtype=np.float64) for a in (qc, cr, cd))
    s, o = (n, m) if x_side else (m, n)
    s_same = (qc - cd) / (s * (s - 1))
    o_same = (total - 2.0 * cr + qc - (trace - cd)) / (o * (o - 1))
    cross = (cr - qc) / (s * o)
    return s_same + o_same - 2.0 * cross


def split_batches(n: int, m: int, n_perms: int, batch_bytes: int):
    """How the fast backends walk the splits: ``(x_side, off, s, batches)``.

    The indicators mark the smaller side (``x_side``: the ``s = n`` rows of ``x`` from
    ``off = 0``; else the ``s = m`` rows of ``y`` from ``off = n``), as
    :func:`mmd2_from_sums` expects. The ``n_perms + 1`` splits (the observed one first)
    go in ``batches`` of ``(first split, count)``, each ``N × count`` matrix of doubles
    within ``batch_bytes`` (at least one split per batch).

    Examples
    --------
    >>> split_batches(3, 2, 4, 8 * 5 * 2)
    (False, 3, 2, [(0, 2), (2, 2), (4, 1)])
    """
    x_side = n <= m
    off, s = (0, n) if x_side else (n, m)
    splits = n_perms + 1
    width = max(1, min(splits, batch_bytes // (8 * (n + m))))
    return x_side, off, s, [(v0, min(width, splits - v0)) for v0 in range(0, splits, width)]


__all__ = ["check_mmd_args", "mmd2_from_sums", "mmd2_permutations", "mmd2_unbiased", "rbf_gram", "split_batches"]
